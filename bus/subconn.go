package bus

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/lograte"
)

// subConn is the bus's second connection to NATS. It carries the
// subscriptions Interest makes, one per channel, and the messages they
// bring, and nothing else: publishing, JetStream and the control plane use
// nats.go's connection (Bus.Conn).
//
// Why a connection of its own: a gateway subscribes once per connected
// user, and nats.go keeps a 240-byte Subscription and an entry in its own
// map for each, about 300 bytes per user on top of the bus's bookkeeping.
// Here a subscription is the bus's shard entry (channel, sid, count) and
// nothing more, because a message is routed by its subject, not by the
// subscription that brought it.
//
// The connection authenticates with the same options as nats.go's (creds
// file, nkey, user and password, token, TLS; the creds file is read again
// at each connect), reconnects forever with the same pause and jitter,
// learns the cluster's other servers from INFO, and on each connect sends
// the SUB of every channel before anything waits on it.
type subConn struct {
	b    *Bus
	opts *nats.Options // credentials, TLS and timing, resolved from Config.Connect
	log  *zap.Logger

	kick chan struct{}   // capacity 1: wakes the writer when out has bytes
	errs lograte.Limiter // failed connects, logged at most so often

	// ctx ends a dial or handshake in progress at Close.
	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex // protects the fields below
	// out holds protocol lines for the writer; emptied when a connection
	// is lost, since the next one is sent every SUB again.
	out []byte
	// active: a connection is up and out goes to it.
	active bool
	// walked is how many shards the current connection has been sent the
	// SUBs of (resubscribe). An Interest or DropInterest in a shard not yet
	// walked writes nothing: the walk sends the shard as it is then.
	walked int
	// writable: every shard is walked; a flush may queue its PING.
	writable bool
	// up is closed when the connection becomes writable; a new one is made
	// when it is lost.
	up chan struct{}
	// pongs has one entry per PING in flight, oldest first: the channel of
	// a flush, or nil for a keep-alive PING.
	pongs []chan error
	// pingsOut counts keep-alive PINGs without an answer since the last PONG.
	pingsOut int
	// servers are the ones to try, the configured ones first, then those
	// the servers announced (INFO connect_urls); next is the one after the
	// last tried. Only appended to.
	servers []*natsServer
	next    int
	conn    net.Conn // the connection being made or served, closed by Close; nil between connections

	// synced: the current connection has confirmed the SUB of every
	// channel; Connected and the fast path of acquire need it.
	synced atomic.Bool
	// connects counts established connections; the first is not a reconnect.
	connects atomic.Uint64
	// firstSync is closed when the first connection has confirmed its
	// subscriptions; New waits for it when the server is reachable.
	firstSync     chan struct{}
	firstSyncOnce sync.Once
}

// subConnSuffix names the subscription connection after nats.go's, in
// the server's monitoring: "wsgate" and "wsgate.subscriptions".
const subConnSuffix = ".subscriptions"

// errLost is what a flush waiting for a PONG gets when the connection
// goes; flush then waits for the next one.
var errLost = errors.New("bus: nats connection lost")

// Timeouts of the subscription connection.
const (
	dialTimeout      = 2 * time.Second // nats.go's default
	handshakeTimeout = 5 * time.Second // INFO, TLS, CONNECT and its PONG
	writeTimeout     = 10 * time.Second
	readBufferSize   = 32 << 10
	maxKeptBuffer    = 64 << 10
)

// newSubConn resolves the servers of urls (comma-separated) and returns a
// connection that starts dialing with run.
func newSubConn(b *Bus, urls string, opts *nats.Options) (*subConn, error) {
	c := &subConn{b: b, opts: opts, log: b.log, kick: make(chan struct{}, 1), up: make(chan struct{}), firstSync: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for s := range strings.SplitSeq(urls, ",") {
		u, err := parseServerURL(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%w: URL %s: %w", ErrInvalidConfig, RedactURL(s), err)
		}
		c.servers = append(c.servers, &natsServer{url: u})
	}
	if !opts.NoRandomize {
		rand.Shuffle(len(c.servers), func(i, j int) { c.servers[i], c.servers[j] = c.servers[j], c.servers[i] })
	}
	return c, nil
}

// natsServer is a NATS server the connection may use.
type natsServer struct {
	url  *url.URL
	last time.Time // the last attempt to connect; used by run's goroutine only
}

// run connects, serves the connection until it is lost, and again, until
// Close. It goes through the servers in turn, as nats.go does: a lost
// connection is followed at once by an attempt at the next server, so that
// a gateway moves to a surviving node in milliseconds, while a server
// tried less than ReconnectWait ago is tried again only once that has
// passed, plus up to ReconnectJitter (a fleet of gateways must not come
// back in one wave, nor loop on a server that takes and drops it).
func (c *subConn) run() {
	defer c.b.wg.Done()
	for {
		s := c.nextServer()
		if !c.waitTurn(s) {
			return
		}
		conn, br, info, err := c.connect(s.url)
		if err != nil {
			if ok, held := c.errs.Allow(); ok {
				c.log.Warn("nats subscription connection failed", zap.String("url", RedactURL(s.url.Redacted())),
					zap.Error(c.b.redact.error(err)), zap.Int("suppressed", held))
			}
			continue
		}
		c.serve(s.url, conn, br, info)
	}
}

// waitTurn waits until s may be tried again and records the attempt;
// false when Close came first.
func (c *subConn) waitTurn(s *natsServer) bool {
	select {
	case <-c.b.done:
		return false
	default:
	}
	if since := time.Since(s.last); since < c.opts.ReconnectWait {
		d := c.opts.ReconnectWait - since
		if j := c.opts.ReconnectJitter; j > 0 {
			d += rand.N(j)
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.b.done:
			return false
		}
	}
	s.last = time.Now()
	return true
}

func (c *subConn) nextServer() *natsServer {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.servers[c.next%len(c.servers)]
	c.next++
	return s
}

// serve runs one connection: the writer in a goroutine, the SUB of every
// channel, then the reader here until the connection fails or Close.
func (c *subConn) serve(u *url.URL, conn net.Conn, br *bufio.Reader, info serverInfo) {
	maxBody := info.MaxPayload
	if maxBody <= 0 {
		maxBody = 1 << 20
	}
	maxBody += 64 << 10 // headers a stream adds when it republishes

	c.mu.Lock()
	c.active, c.walked, c.out = true, 0, c.out[:0]
	c.mu.Unlock()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { c.write(conn, stop) })
	if n := c.connects.Add(1); n > 1 {
		c.log.Info("nats subscription connection reconnected", zap.String("url", RedactURL(u.Redacted())))
		c.b.reconnected()
		c.b.reconnects.Add(1) // after, as in nats.go's handler
	}
	synced := c.resubscribe()
	err := c.read(br, maxBody, synced)
	close(stop)
	wg.Wait()
	c.lose(conn)
	select {
	case <-c.b.done:
	default:
		c.log.Warn("nats subscription connection lost", zap.String("url", RedactURL(u.Redacted())), zap.Error(c.b.redact.error(err)))
	}
}

// resubscribe sends the SUB of every channel the bus holds, shard by
// shard, then makes the connection writable and queues a PING; the
// returned channel gets the PONG.
func (c *subConn) resubscribe() chan error {
	b := c.b
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		c.mu.Lock()
		for ch, e := range s.m {
			c.out = c.appendSub(c.out, ch, e.sid)
		}
		c.walked = i + 1
		c.mu.Unlock()
		s.mu.Unlock()
		c.wake() // the writer sends while the walk goes on
	}
	done := make(chan error, 1)
	c.mu.Lock()
	c.writable = true
	close(c.up)
	c.out = append(c.out, "PING\r\n"...)
	c.pongs = append(c.pongs, done)
	c.mu.Unlock()
	c.wake()
	return done
}

// lose ends a connection: it is closed, what was queued for it is
// dropped, and every flush waiting on it learns so.
func (c *subConn) lose(conn net.Conn) {
	conn.Close()
	c.synced.Store(false)
	c.mu.Lock()
	c.conn, c.active, c.walked, c.writable, c.pingsOut = nil, false, 0, false, 0
	c.out = c.out[:0]
	pongs := c.pongs
	c.pongs = nil
	if isClosed(c.up) {
		c.up = make(chan struct{})
	}
	c.mu.Unlock()
	for _, p := range pongs {
		if p != nil {
			p <- errLost
		}
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// write sends out to conn whenever it is kicked, and a keep-alive PING
// every pingInterval; after maxPingsOut PINGs without a PONG the server is
// gone (half-open TCP) and the connection is closed, which ends the reader.
func (c *subConn) write(conn net.Conn, stop <-chan struct{}) {
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	var buf []byte
	for {
		select {
		case <-stop:
			return
		case <-c.kick:
		case <-t.C:
			c.mu.Lock()
			stale := c.pingsOut >= maxPingsOut
			c.pingsOut++
			c.out = append(c.out, "PING\r\n"...)
			c.pongs = append(c.pongs, nil)
			c.mu.Unlock()
			if stale {
				c.log.Warn("nats subscription connection stale: no PONG", zap.Int("pings", maxPingsOut))
				conn.Close()
				return
			}
		}
		c.mu.Lock()
		buf, c.out = c.out, buf[:0]
		c.mu.Unlock()
		if len(buf) == 0 {
			continue
		}
		conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := conn.Write(buf); err != nil {
			conn.Close()
			return
		}
		if cap(buf) > maxKeptBuffer {
			buf = nil // the resubscription of a million channels is not kept
		}
	}
}

// wake kicks the writer.
func (c *subConn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// read handles what the server sends until the connection fails. Messages
// go to the dispatch queue of their channel; a full queue drops them
// (Dropped counts them).
func (c *subConn) read(br *bufio.Reader, maxBody int, synced chan error) error {
	b := c.b
	n := len(b.prefix) + 1
	for {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		o, err := parseOp(line, maxBody)
		if err != nil {
			return err
		}
		switch o.kind {
		case opMsg:
			m := &message{subject: string(o.subject)}
			body := make([]byte, o.size+2)
			if _, err := io.ReadFull(br, body); err != nil {
				return err
			}
			if string(body[o.size:]) != "\r\n" {
				return fmt.Errorf("%w: a message's body is not followed by CRLF", errProto)
			}
			body = body[:o.size:o.size]
			if o.hdr > 0 {
				h, err := nats.DecodeHeadersMsg(body[:o.hdr])
				if err != nil {
					b.badPositions.Add(1)
				}
				m.header = h
			}
			m.data = body[o.hdr:]
			if len(m.subject) <= n {
				continue
			}
			select {
			case b.queue(m.subject[n:]) <- m:
			default:
				b.dropped.Add(1)
			}
		case opPing:
			c.send("PONG\r\n")
		case opPong:
			c.mu.Lock()
			var p chan error
			if len(c.pongs) > 0 {
				p = c.pongs[0]
				c.pongs = c.pongs[1:]
			}
			c.pingsOut = 0
			c.mu.Unlock()
			if p != nil && p == synced {
				c.synced.Store(true)
				c.firstSyncOnce.Do(func() { close(c.firstSync) })
			}
			if p != nil {
				p <- nil
			}
		case opErr:
			if ok, held := b.asyncErrs.Allow(); ok {
				b.log.Warn("nats error on the subscription connection", zap.ByteString("error", o.arg), zap.Int("suppressed", held))
			}
		case opInfo:
			c.learn(o.arg)
		}
	}
}

// send queues a protocol line for the current connection, if any.
func (c *subConn) send(line string) {
	c.mu.Lock()
	if c.active {
		c.out = append(c.out, line...)
	}
	c.mu.Unlock()
	c.wake()
}

// readLine reads one line without its CRLF; the slice is valid until the
// next read. A line longer than maxControlLine is a protocol error.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > maxControlLine {
		return nil, fmt.Errorf("%w: a line longer than %d bytes", errProto, maxControlLine)
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}

// subscribed queues the SUB of a new channel ch in shard i; the caller
// holds that shard's lock. Before the connection has walked shard i, the
// walk will send it.
func (c *subConn) subscribed(i int, ch string, sid uint64) {
	c.mu.Lock()
	queued := c.active && i < c.walked
	if queued {
		c.out = c.appendSub(c.out, ch, sid)
	}
	c.mu.Unlock()
	if queued {
		c.wake()
	}
}

// unsubscribed queues the UNSUB of sid in shard i; the caller holds that
// shard's lock and has removed the channel.
func (c *subConn) unsubscribed(i int, sid uint64) {
	c.mu.Lock()
	queued := c.active && i < c.walked
	if queued {
		c.out = append(c.out, "UNSUB "...)
		c.out = strconv.AppendUint(c.out, sid, 10)
		c.out = append(c.out, "\r\n"...)
	}
	c.mu.Unlock()
	if queued {
		c.wake()
	}
}

// appendSub appends "SUB <prefix>.<ch> <sid>\r\n" to buf.
func (c *subConn) appendSub(buf []byte, ch string, sid uint64) []byte {
	buf = append(buf, "SUB "...)
	buf = append(buf, c.b.prefix...)
	buf = append(buf, '.')
	buf = append(buf, ch...)
	buf = append(buf, ' ')
	buf = strconv.AppendUint(buf, sid, 10)
	return append(buf, "\r\n"...)
}

// flush waits until the server has processed every SUB queued before it:
// a PING, and its PONG. While no connection is up it waits for one; a
// connection lost with the PING in flight means PING again on the next,
// which is sent every SUB first.
func (c *subConn) flush(deadline time.Time) error {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		c.mu.Lock()
		if !c.writable {
			up := c.up
			c.mu.Unlock()
			select {
			case <-up:
				continue
			case <-c.b.done:
				return ErrClosed
			case <-t.C:
				return ErrSubscribeTimeout
			}
		}
		done := make(chan error, 1)
		c.out = append(c.out, "PING\r\n"...)
		c.pongs = append(c.pongs, done)
		c.mu.Unlock()
		c.wake()
		c.b.flushes.Add(1)
		select {
		case err := <-done:
			if err == nil {
				return nil
			}
		case <-c.b.done:
			return ErrClosed
		case <-t.C:
			return ErrSubscribeTimeout
		}
	}
}

// close ends a dial and closes the current connection; run sees
// Bus.done and ends.
func (c *subConn) close() {
	c.cancel()
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// message is a message of a subscribed channel on its way to a dispatcher.
type message struct {
	subject string
	data    []byte
	header  nats.Header // nil unless the message had headers
}
