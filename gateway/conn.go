package gateway

import (
	"io"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/wsgate/wsgate/netpoll"
)

// A connection goes through these stages, one file each, in this order:
//
//	accept.go      the accept loop takes the socket and registers it with the poller
//	handshake.go   the upgrade request is read without blocking and answered
//	origin.go      the Origin rules it must pass
//	credentials.go the token or user it presents, for the Authenticator (auth.go)
//	limit.go       the admission limits it must pass (and the message rate)
//	welcome.go     it joins its user channel and gets the welcome frame
//	read.go        its frames are read and handled (client ops: protocol.go)
//	write.go       frames are written to it without blocking, or queued
//	close.go       it ends, by one close path
//
// The Conn below carries it through all of them; onEvent turns the
// poller's events into its read and flush tasks.

// Connection states. A connection only moves forward.
const (
	stateHandshake uint32 = iota // accepted; the upgrade request is being read
	stateOpen                    // welcomed
	stateClosing                 // our close frame is out; waiting for the client's
	stateClosed                  // the socket is freed
)

// Conn is one WebSocket connection, from accept on. It owns no goroutine
// and no buffer: a few words here, one entry per channel in the hub, and one
// registration in the poller. Buffers exist only while a request or frame is
// incomplete (readState) or the socket does not take what is written
// (writeQueue).
type Conn struct {
	srv    *Server
	rc     syscall.RawConn // the socket's fd, for non-blocking reads and writes
	closer io.Closer       // closes the socket; the poller calls it after its barrier
	sock   fdSock          // the socket itself when it was accepted as a bare fd
	desc   *netpoll.Desc   // set under wmu right after accept
	id     uint64
	user   string // set under wmu at the welcome
	// grants are the patterns the token allows (grants.go); set at the
	// welcome, read-only after.
	grants *grants
	// expires is the unix second when the credentials expire; 0 means never.
	expires uint32

	state    atomic.Uint32
	lastRead atomic.Uint32 // server clock (ms) of the last byte read
	lastPing atomic.Uint32 // server clock (ms) of the last ping sent
	// since is the server clock of the accept during the handshake, of the
	// write queue's last progress while it is not empty, or of the close
	// frame while closing; 0 otherwise.
	since atomic.Uint32

	wmu sync.Mutex // protects wq, topics, reason, peerClosed, and the order of bytes on the socket
	// msgTAT is the server clock (ms) from which the next client message is
	// within MessageRate; owned by the read task (see allowMessage).
	msgTAT uint32
	wq     *writeQueue // nil while nothing waits for the socket
	topics []string    // topic channels joined by this connection
	reason CloseReason
	// peerClosed: the client's close frame came in; once our answer has
	// left the write queue, the socket goes.
	peerClosed bool
	// admitted: the connection holds a place under MaxConns (see admit).
	admitted bool
	// replaced: a newer connection of the user takes this one's place
	// (CloseOldest); guarded by the user channel's hub shard lock.
	replaced bool
	// deflate: permessage-deflate was negotiated; set before the welcome,
	// read-only after.
	deflate bool
	// replaying: a channel of this connection replays (resume.go); its
	// replays are in Server.replays. It costs no byte: it fills padding.
	replaying bool
	// upstreaming: the connection has sent upstream ops, and its rate and
	// requests are in Server.upstreams (upstream.go); guarded by that
	// set's lock. It fills padding too.
	upstreaming bool
	// ipKey is the key of the peer address counted under MaxConnsPerIP, or 0.
	ipKey uint64

	rs *readState // owned by the read task; nil unless a frame or message is incomplete
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

// schedule runs fn(c) on the pool without ever blocking: it is called from
// the poller goroutine, which must not wait for a worker (a worker may be
// waiting for the poller's Desc lock). When the pool is saturated the task
// waits in the backlog, which holds at most one read and one flush task per
// connection.
func (s *Server) schedule(c *Conn, fn func(*Conn)) {
	t := s.tasks.Get().(*task)
	t.c, t.fn = c, fn
	if s.pool.TrySchedule(t.run) {
		return
	}
	s.backlog.push(t)
}

// backlog holds the tasks the poller could not hand to a saturated pool;
// one goroutine feeds them to the pool in order.
type backlog struct {
	mu      sync.Mutex // protects tasks
	tasks   []*task
	wake    chan struct{} // capacity 1
	pending atomic.Int64  // tasks pushed and not yet handed to the pool
}

func (b *backlog) push(t *task) {
	b.pending.Add(1)
	b.mu.Lock()
	b.tasks = append(b.tasks, t)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// len returns how many tasks wait for the pool.
func (b *backlog) len() int { return int(b.pending.Load()) }

// drainBacklog feeds the backlog to the pool, waiting for workers as long as
// it must, until Close.
func (s *Server) drainBacklog() {
	defer s.wg.Done()
	var batch []*task
	for {
		select {
		case <-s.done:
			return
		case <-s.backlog.wake:
		}
		s.backlog.mu.Lock()
		batch, s.backlog.tasks = s.backlog.tasks, batch[:0]
		s.backlog.mu.Unlock()
		for i, t := range batch {
			if s.pool.Schedule(t.run) != nil {
				return // closed: the connections are going too
			}
			s.backlog.pending.Add(-1)
			batch[i] = nil
		}
	}
}
