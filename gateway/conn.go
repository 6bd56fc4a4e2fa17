package gateway

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/gobwas/ws"
	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/channel"
	"github.com/wsgate/wsgate/netpoll"
)

// Connection states. A connection only moves forward.
const (
	stateOpen    uint32 = iota
	stateClosing        // our close frame is out; waiting for the client's
	stateClosed         // the socket is released
)

// closeMode says how a connection closes.
type closeMode uint8

const (
	closeDrop      closeMode = iota // no close frame: the peer is gone or unusable
	closeReply                      // send a close frame and drop the socket now
	closeHandshake                  // send a close frame and wait for the client's
)

// Conn is one WebSocket connection. After the upgrade it owns no goroutine
// and no buffer: a few words here, one entry per channel in the hub, and one
// registration in the poller. Buffers exist only while a frame is incomplete
// (readState) or the socket does not take what is written (writeQueue).
type Conn struct {
	srv  *Server
	nc   net.Conn
	rc   syscall.RawConn
	desc *netpoll.Desc // set before the connection is published in the hub
	id   uint64
	user string
	// channels are the patterns of the topics the user may join; read-only.
	channels []string
	// expires is the unix second when the credentials expire; 0 means never.
	expires uint32

	state    atomic.Uint32
	lastRead atomic.Uint32 // server clock (ms) of the last byte read
	lastPing atomic.Uint32 // server clock (ms) of the last ping sent
	// since is the server clock of the write queue's last progress while it
	// is not empty, or of the close frame while closing; 0 otherwise.
	since atomic.Uint32

	wmu    sync.Mutex  // protects wq, topics, reason, and the order of bytes on the socket
	wq     *writeQueue // nil while nothing waits for the socket
	topics []string    // topic channels joined by this connection
	reason CloseReason

	rs *readState // owned by the read task; nil unless a frame or message is incomplete
}

// ID returns the connection id sent in the welcome frame.
func (c *Conn) ID() string { return c.srv.connID(c.id) }

// User returns the connection's user id.
func (c *Conn) User() string { return c.user }

// close ends the connection for reason r, with the close handshake when r
// has a close code. It is safe from any goroutine, any number of times; the
// first call wins.
func (c *Conn) close(r CloseReason) {
	code, ok := r.Code()
	mode := closeDrop
	if ok {
		mode = closeHandshake
	}
	c.shut(r, code, r.closeText(), mode)
}

// shut is the one close path. It leaves every channel, counts and logs the
// reason once, sends the close frame as mode says, and releases the socket
// now or, for closeHandshake, when the client answers or CloseTimeout passes.
func (c *Conn) shut(r CloseReason, code ws.StatusCode, text string, mode closeMode) {
	c.wmu.Lock()
	if c.state.Load() != stateOpen {
		c.wmu.Unlock()
		return
	}
	c.reason = r
	if mode != closeDrop && c.writeControlLocked(closeFrame(code, text)) != nil {
		mode = closeDrop
	}
	if mode == closeHandshake && c.desc == nil {
		mode = closeReply // not observed yet: the reply could not be read
	}
	if mode == closeHandshake {
		c.since.Store(c.srv.clock())
		c.state.Store(stateClosing)
	} else {
		c.state.Store(stateClosed)
	}
	topics := c.topics
	c.topics = nil
	c.wmu.Unlock()

	c.srv.detach(c, topics, r)
	if mode != closeHandshake {
		c.release()
	}
}

// finishClose releases a connection that was waiting for the client's close
// frame.
func (c *Conn) finishClose() {
	if c.state.CompareAndSwap(stateClosing, stateClosed) {
		c.release()
	}
}

// release frees the socket of a closed connection. It runs once.
func (c *Conn) release() {
	c.srv.hub.removeConn(c)
	if c.desc == nil {
		c.nc.Close()
		return
	}
	// The poller closes the socket once no stale event for its fd can be in
	// flight.
	if err := c.srv.poller.Release(c.desc, c.nc); err != nil {
		c.nc.Close()
	}
}

// detach removes a connection that stopped being open from its channels and
// drops the bus interest they held.
func (s *Server) detach(c *Conn, topics []string, r CloseReason) {
	if s.hub.leave(c, channel.User(c.user)) {
		s.bus.Release(channel.User(c.user))
	}
	for _, t := range topics {
		if s.hub.leave(c, t) {
			s.bus.Release(t)
		}
	}
	if c.desc != nil {
		s.metrics.connections.Dec()
	}
	s.metrics.closes[r].Inc()
	if r == ReasonSlowConsumer {
		s.metrics.slowConsumers.Inc()
	}
	if ce := s.log.Check(zap.DebugLevel, "connection closed"); ce != nil {
		ce.Write(zap.String("conn", c.ID()), zap.String("user", c.user), zap.Stringer("reason", r))
	}
}

// onEvent is the poller callback. It runs on the poller goroutine and only
// schedules work on the pool. EventRead and EventWrite each mean that their
// one-shot interest fired, so there is never more than one read task and
// one flush task per connection; a hang-up or error surfaces in the read
// or write itself.
func (c *Conn) onEvent(ev netpoll.Event) {
	if ev&netpoll.EventRead != 0 {
		c.srv.schedule(c, (*Conn).readTask)
	}
	if ev&netpoll.EventWrite != 0 {
		c.srv.schedule(c, (*Conn).flush)
	}
}

// task is a pooled pool task that runs one method of one connection, so
// that scheduling costs no allocation and a connection holds no closures.
type task struct {
	srv *Server
	c   *Conn
	fn  func(*Conn)
	run func()
}

func (t *task) do() {
	c, fn := t.c, t.fn
	t.c, t.fn = nil, nil
	t.srv.tasks.Put(t)
	fn(c)
}

func (s *Server) schedule(c *Conn, fn func(*Conn)) {
	t := s.tasks.Get().(*task)
	t.c, t.fn = c, fn
	if s.pool.Schedule(t.run) != nil {
		t.c, t.fn = nil, nil
		s.tasks.Put(t)
	}
}
