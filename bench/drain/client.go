package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// client is one simulated user: connected to gateway A until A closes it,
// then reconnected to B at once, as a client behind a load balancer that
// has taken A out would be. Its goroutine writes the fields; the harness
// reads them only after the goroutine has signalled done.
type client struct {
	id int

	dialErr error // the first connection to A failed; nothing else is set

	endAt    time.Time     // when the connection to A ended (close frame or error)
	code     ws.StatusCode // A's close code; 0 without a close frame
	reason   string        // A's close reason
	closeErr error         // why A's connection ended without a close frame

	welcomeB  time.Time // when B's welcome arrived; zero if the reconnect failed
	reconnErr error
}

// got1001 reports whether A closed the client the way a drain should.
func (c *client) got1001() bool { return c.closeErr == nil && c.code == ws.StatusGoingAway }

// dialer opens WebSocket connections and reads their welcome.
type dialer struct {
	sources []net.IP      // local addresses to spread over; empty lets the kernel pick
	timeout time.Duration // connect, upgrade and welcome together
}

// dial connects to url as user and returns once the welcome has arrived.
// Closing ctx aborts the dial.
func (d *dialer) dial(ctx context.Context, url, user string, k int) (*conn, error) {
	wd := ws.Dialer{Timeout: d.timeout}
	if len(d.sources) > 0 {
		nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: d.sources[k%len(d.sources)]}}
		wd.NetDial = nd.DialContext
	}
	deadline := time.Now().Add(d.timeout)
	nc, br, _, err := wd.Dial(ctx, url+"?user="+user)
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc, br: br}
	nc.SetReadDeadline(deadline)
	f, err := c.next()
	if err == nil {
		var m struct{ Type string }
		if json.Unmarshal(f.Payload, &m) != nil || m.Type != "welcome" {
			err = fmt.Errorf("first frame is not a welcome: %.80q", f.Payload)
		}
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetReadDeadline(time.Time{})
	return c, nil
}

// conn is a client-side WebSocket connection that first returns the bytes
// the dialer read past the 101 response (the welcome often comes with it).
type conn struct {
	net.Conn
	br *bufio.Reader // nil once drained
}

func (c *conn) Read(p []byte) (int, error) {
	if c.br != nil {
		if n := c.br.Buffered(); n > 0 {
			return c.br.Read(p[:min(len(p), n)])
		}
		ws.PutReader(c.br)
		c.br = nil
	}
	return c.Conn.Read(p)
}

// next returns the next data frame, answering pings on the way. A close
// frame is answered too and ends with a wsutil.ClosedError that carries
// its code, even when the answer can no longer be written.
func (c *conn) next() (ws.Frame, error) {
	for {
		f, err := readFrame(c)
		if err != nil {
			return f, err
		}
		switch f.Header.OpCode {
		case ws.OpPing:
			if err := ws.WriteFrame(c.Conn, ws.MaskFrameInPlace(ws.NewPongFrame(f.Payload))); err != nil {
				return f, err
			}
		case ws.OpPong:
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(f.Payload)
			if code.Empty() {
				code = ws.StatusNoStatusRcvd
			}
			// RFC 6455 asks for the code back; the server may be gone already.
			ws.WriteFrame(c.Conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(code, ""))))
			return f, wsutil.ClosedError{Code: code, Reason: reason}
		default:
			return f, nil
		}
	}
}

// maxFrame bounds what the harness reads of one frame: the gateway sends
// small JSON notifications and control frames.
const maxFrame = 64 << 10

// readFrame reads one frame of at most maxFrame bytes and unmasks it.
func readFrame(r io.Reader) (ws.Frame, error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return ws.Frame{}, err
	}
	if h.Length > maxFrame {
		return ws.Frame{}, fmt.Errorf("drain: a %d-byte frame from the gateway", h.Length)
	}
	f := ws.Frame{Header: h, Payload: make([]byte, h.Length)}
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		return f, err
	}
	if h.Masked {
		ws.Cipher(f.Payload, h.Mask, 0)
	}
	return f, nil
}

// run connects c to A (signalling up when connected or failed), waits for
// A to close it, reconnects to B (signalling done), then keeps reading B,
// answering its pings, until ctx ends. Closing ctx closes every socket.
func (c *client) run(ctx context.Context, d *dialer, urlA, urlB string, sem chan struct{}, up, done func()) {
	user := "drain" + strconv.Itoa(c.id)
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		c.dialErr = ctx.Err()
		up()
		done()
		return
	}
	a, err := d.dial(ctx, urlA, user, c.id)
	<-sem
	if err != nil {
		c.dialErr = err
		up()
		done()
		return
	}
	stop := context.AfterFunc(ctx, func() { a.Close() })
	up()
	for err == nil {
		_, err = a.next() // data frames other than the welcome are not expected; skip them
	}
	c.endAt = time.Now()
	if ce, ok := errors.AsType[wsutil.ClosedError](err); ok {
		c.code, c.reason = ce.Code, ce.Reason
	} else {
		c.closeErr = err
	}
	stop()
	a.Close()
	if ctx.Err() != nil { // the harness gave up waiting
		if c.closeErr != nil { // closing A was its doing
			c.closeErr = errDeadline
		}
		c.reconnErr = errDeadline
		done()
		return
	}
	b, err := d.dial(ctx, urlB, user, c.id)
	if err != nil {
		c.reconnErr = err
		done()
		return
	}
	c.welcomeB = time.Now()
	done()
	defer context.AfterFunc(ctx, func() { b.Close() })()
	for err == nil {
		_, err = b.next()
	}
	b.Close()
}

// errDeadline marks a client the harness stopped waiting for.
var errDeadline = errors.New("drain: nothing before the deadline")

// kind names an error for the report, without the addresses that make
// every socket error unique.
func kind(err error) string {
	if ce, ok := errors.AsType[wsutil.ClosedError](err); ok {
		return "close " + strconv.Itoa(int(ce.Code))
	}
	if se, ok := errors.AsType[ws.StatusError](err); ok {
		return "http " + strconv.Itoa(int(se))
	}
	switch {
	case errors.Is(err, errDeadline):
		return "deadline"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no local port"
	case errors.Is(err, syscall.EMFILE):
		return "fd limit"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	if oe, ok := errors.AsType[*net.OpError](err); ok {
		return oe.Err.Error()
	}
	return err.Error()
}
