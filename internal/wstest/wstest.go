// Package wstest is the test kit shared by the tests of every package that
// talks to a gateway: one WebSocket client that speaks wsgate's JSON
// protocol, and one polling helper. Like net/http/httptest it is imported
// only by tests.
//
//	c, err := wstest.Dial(ctx, ws.Dialer{}, "ws://127.0.0.1:8080/ws?user=42")
//	w, err := c.Welcome(time.Now().Add(5 * time.Second))
//	c.Send(t, map[string]any{"op": "subscribe", "channel": "topic.x", "ref": 1})
//	m := c.Next(t) // the next JSON frame, or t fails after 5 s
//
//	wstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error { ... })
//
// A Client may be used from any one goroutine at a time; the methods that
// take a testing.TB call its Fatal, so they belong on the test's goroutine,
// and the others return errors for use elsewhere.
package wstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// NextTimeout is how long Next, ClosedWith and CloseCode wait for a frame.
const NextTimeout = 5 * time.Second

// CheckFor calls f every poll until it returns nil, and fails t with f's
// last error once total has passed.
func CheckFor(t testing.TB, total, poll time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", total, err)
		}
		time.Sleep(poll)
	}
}

// Client is a real WebSocket client (gobwas/ws client side: masked frames;
// pings and the server's close are answered while reading, except by
// ReadFrame).
type Client struct {
	Conn net.Conn      // the TCP connection, for raw writes and deadlines
	rw   io.ReadWriter // Conn, behind what the dialer buffered

	// Extensions are the extensions the server accepted in its 101
	// answer (permessage-deflate, when the dialer offered it).
	Extensions []httphead.Option

	// ID and User are the connection and user ids of the welcome frame,
	// once Welcome has read it.
	ID, User string
}

// MaxFrame is the largest frame ReadFrame takes from a server.
const MaxFrame = 1 << 20

// Dial opens a WebSocket to url with d. The client has read nothing yet:
// call Welcome to read the welcome frame.
func Dial(ctx context.Context, d ws.Dialer, url string) (*Client, error) {
	conn, br, hs, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	c := &Client{Conn: conn, rw: conn, Extensions: hs.Extensions}
	// The first frames may have arrived with the 101 response, in the
	// dialer's buffer.
	if br != nil {
		c.rw = struct {
			io.Reader
			io.Writer
		}{io.MultiReader(br, conn), conn}
	}
	return c, nil
}

// Connect dials url with header, reads the welcome, and closes the
// connection when t ends; t fails on any error.
func Connect(t testing.TB, url string, header http.Header) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), NextTimeout)
	defer cancel()
	c, err := Dial(ctx, ws.Dialer{Header: ws.HandshakeHeaderHTTP(header)}, url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Conn.Close() })
	if _, err := c.Welcome(time.Now().Add(NextTimeout)); err != nil {
		t.Fatal(err)
	}
	return c
}

// Welcome reads the first frame before deadline, checks that it is a
// welcome with a connection id and a user, and records both.
func (c *Client) Welcome(deadline time.Time) (map[string]any, error) {
	m, err := c.Read(deadline)
	if err != nil {
		return nil, fmt.Errorf("reading the welcome: %w", err)
	}
	id, _ := m["conn"].(string)
	user, _ := m["user"].(string)
	if m["type"] != "welcome" || id == "" || user == "" {
		return nil, fmt.Errorf("first frame %v, want a welcome with a connection id and a user", m)
	}
	c.ID, c.User = id, user
	return m, nil
}

// Read reads the next text message before deadline and decodes it as a JSON
// object. Control frames are answered on the way; the server's close frame
// ends in a wsutil.ClosedError (see CloseStatus).
func (c *Client) Read(deadline time.Time) (map[string]any, error) {
	data, err := c.ReadText(deadline)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("frame %q: %w", data, err)
	}
	return m, nil
}

// ReadText reads the next text message before deadline, as it is; binary
// messages are skipped and control frames answered on the way, and the
// server's close frame ends in a wsutil.ClosedError (see CloseStatus).
func (c *Client) ReadText(deadline time.Time) ([]byte, error) {
	c.Conn.SetReadDeadline(deadline)
	return wsutil.ReadServerText(c.rw)
}

// ReadData reads the next data message, text or binary, before deadline.
// Control frames are answered on the way; the server's close frame ends in
// a wsutil.ClosedError (see CloseStatus).
func (c *Client) ReadData(deadline time.Time) ([]byte, ws.OpCode, error) {
	c.Conn.SetReadDeadline(deadline)
	return wsutil.ReadServerData(c.rw)
}

// ReadFrame reads the next frame before deadline exactly as the server
// sent it, control frames included and unanswered: for tests of what is on
// the wire (reserved bits, compressed payloads, the order of pongs). A
// frame over MaxFrame bytes is an error.
func (c *Client) ReadFrame(deadline time.Time) (ws.Header, []byte, error) {
	c.Conn.SetReadDeadline(deadline)
	h, err := ws.ReadHeader(c.rw)
	if err != nil {
		return h, nil, err
	}
	if h.Length > MaxFrame {
		return h, nil, fmt.Errorf("a frame of %d bytes", h.Length)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.rw, p); err != nil {
		return h, nil, err
	}
	return h, p, nil
}

// Next reads the next JSON frame, failing t after NextTimeout.
func (c *Client) Next(t testing.TB) map[string]any {
	t.Helper()
	m, err := c.Read(time.Now().Add(NextTimeout))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

// Silent fails t unless nothing arrives within d.
func (c *Client) Silent(t testing.TB, d time.Duration) {
	t.Helper()
	m, err := c.Read(time.Now().Add(d))
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v, %v; want nothing", m, err)
	}
}

// WriteText sends p as one masked text frame.
func (c *Client) WriteText(p []byte) error {
	return wsutil.WriteClientText(c.Conn, p)
}

// Send sends v as JSON in one text frame, failing t on error.
func (c *Client) Send(t testing.TB, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteText(b); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// ClosedWith reads until the server's close frame and returns its code
// and reason; frames before it are skipped. t fails when the connection
// ends any other way or nothing comes within NextTimeout.
func (c *Client) ClosedWith(t testing.TB) (ws.StatusCode, string) {
	t.Helper()
	for {
		_, err := c.Read(time.Now().Add(NextTimeout))
		if err == nil {
			continue
		}
		if code, reason, ok := CloseStatus(err); ok {
			return code, reason
		}
		t.Fatalf("read %v; want a close frame", err)
	}
}

// CloseCode is ClosedWith's code.
func (c *Client) CloseCode(t testing.TB) ws.StatusCode {
	t.Helper()
	code, _ := c.ClosedWith(t)
	return code
}

// Close closes the TCP connection without a close frame.
func (c *Client) Close() error { return c.Conn.Close() }

// CloseStatus reports the code and reason of a close frame that ended a
// read with err.
func CloseStatus(err error) (code ws.StatusCode, reason string, ok bool) {
	var ce wsutil.ClosedError
	if errors.As(err, &ce) {
		return ce.Code, ce.Reason, true
	}
	return 0, "", false
}
