package gateway

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"

	"github.com/gobwas/ws"
	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/rawio"
)

// The upgrade is read like everything else: an accepted socket is
// registered with the poller at once, and each readable event runs a read
// task that takes what the kernel holds without blocking. A request that is
// not complete yet waits in the connection's readState (a slow client holds
// bytes, never a worker); the sweeper drops it after HandshakeTimeout. Once
// the blank line has arrived, ws.Upgrader parses the request from those
// bytes: no net/http, no http.Request, no header map. The callbacks copy
// the few values we need (token, user, origin) into a pooled handshake, and
// the answer goes out with one non-blocking write.

var crlfcrlf = []byte("\r\n\r\n")

// handshake is the read task of a connection still in stateHandshake: it
// takes what the kernel holds of the upgrade request and, once the request
// is complete, answers it and welcomes the connection.
func (c *Conn) handshake() {
	s := c.srv
	limit := s.cfg.MaxHandshakeSize
	bp := readBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	if c.rs != nil {
		buf = append(buf, c.rs.pending...)
		c.rs = nil
	}
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(2*cap(buf), limit))
			copy(nb, buf)
			buf = nb
		}
		n, err := c.sysRead(buf[len(buf):min(cap(buf), limit)])
		if n > 0 {
			buf = buf[:len(buf)+n]
			continue
		}
		if err != nil { // EOF or error: the client left mid-request
			s.refuse(c, resultAborted, err, nil)
			putReadBuf(bp)
			return
		}
		break // EAGAIN
	}
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 {
		if len(buf) >= limit {
			rawio.Write(c.rc, tooLargeResponse)
			s.refuse(c, resultTooLarge, ErrHandshakeTooLarge, nil)
			putReadBuf(bp)
			return
		}
		c.readState().pending = append([]byte(nil), buf...)
		putReadBuf(bp)
		c.resume()
		return
	}
	req, rest := buf[:end+len(crlfcrlf)], buf[end+len(crlfcrlf):]
	if refusal := preCheck(req); refusal != nil {
		rawio.Write(c.rc, refusal)
		s.refuse(c, resultBadRequest, ws.ErrMalformedRequest, nil)
		putReadBuf(bp)
		return
	}
	h := s.handshakes.Get().(*handshake)
	h.conn = c
	err := h.run(req)
	id, result, authErr, deflate := h.id, h.result, h.authErr, h.deflate
	var resp []byte
	if err != nil {
		// A fresh socket's buffer always takes an HTTP answer at once.
		if len(h.resp.b) == 0 { // gobwas/ws answers a malformed request with nothing
			h.resp.b = append(h.resp.b, badRequestResponse...)
		}
		rawio.Write(c.rc, h.resp.b)
	} else {
		resp = make([]byte, len(h.resp.b), len(h.resp.b)+128)
		copy(resp, h.resp.b)
	}
	h.reset()
	s.handshakes.Put(h)
	if err != nil {
		s.refuse(c, result, err, authErr)
		putReadBuf(bp)
		return
	}
	if len(rest) > 0 {
		// A client may send frames right behind its request.
		c.readState().pending = append([]byte(nil), rest...)
	}
	putReadBuf(bp)
	c.deflate = deflate // before the welcome makes c visible to fan-out
	if !s.welcome(c, id, resp) {
		return
	}
	if c.rs != nil {
		c.readTask() // handles the early frames, then resumes
		return
	}
	c.resume()
}

func putReadBuf(bp *[]byte) {
	*bp = (*bp)[:0]
	readBufs.Put(bp)
}

var (
	tooLargeResponse = []byte("HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
	// gobwas/ws answers a method other than GET with 405 but no Allow
	// header (RFC 9110 15.5.6 requires one), and a request line it cannot
	// parse with nothing at all; these are sent instead.
	methodResponse     = []byte("HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
	badRequestResponse = []byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
)

// preCheck returns the answer to a request that gobwas/ws would answer
// wrongly, or nil: a method other than GET gets 405 with Allow, and a
// Sec-WebSocket-Key that is not the base64 of 16 bytes 400.
func preCheck(req []byte) []byte {
	method, _, _ := bytes.Cut(req, []byte{' '})
	switch {
	case string(method) == "GET":
	case len(method) > 0 && bytes.IndexFunc(method, func(r rune) bool { return r < 'A' || r > 'Z' }) < 0:
		return methodResponse
	default:
		return badRequestResponse // not an HTTP request line (TLS on the plain port, say)
	}
	switch {
	case badSecKey(req):
		return badRequestResponse
	}
	return nil
}

var secKeyHeader = []byte("\r\nsec-websocket-key:")

// badSecKey reports whether req has a Sec-WebSocket-Key that is not the
// base64 of 16 bytes, or more than one (RFC 6455 4.2.1, 11.3.1). gobwas/ws
// checks only the length of the last one, and does not pass the header to
// OnHeader.
func badSecKey(req []byte) bool {
	seen := false
	for i := 0; i+len(secKeyHeader) <= len(req); i++ {
		if req[i] != '\r' || !bytes.EqualFold(req[i:i+len(secKeyHeader)], secKeyHeader) {
			continue
		}
		if seen {
			return true
		}
		seen = true
		v := req[i+len(secKeyHeader):]
		v = bytes.TrimSpace(v[:max(bytes.IndexByte(v, '\r'), 0)])
		if len(v) != 24 { // Decode would write past key
			return true
		}
		var key [18]byte
		if n, err := base64.StdEncoding.Decode(key[:], v); err != nil || n != 16 {
			return true
		}
	}
	return false // none: gobwas/ws answers that
}

// handshake is the pooled state of one upgrade. Its Upgrader's callbacks
// are bound to it once, when the pool makes it.
type handshake struct {
	srv    *Server
	conn   *Conn // the connection upgrading; nil in tests of the parser alone
	u      ws.Upgrader
	io     handshakeIO
	resp   respWriter // the HTTP answer, sent by the caller
	token  []byte     // from ?token=
	bearer []byte     // from Authorization: Bearer
	cookie []byte     // from the wsgate_token cookie
	user   []byte
	origin []byte
	// deflate: permessage-deflate was accepted (deflate.go).
	deflate bool
	// hasOrigin records whether the request had an Origin header.
	hasOrigin bool
	result    upgradeResult
	id        Identity
	authErr   error
}

func (s *Server) newHandshake() any {
	h := &handshake{srv: s}
	h.u = ws.Upgrader{
		ReadBufferSize:  4096,
		OnRequest:       h.onRequest,
		OnHeader:        h.onHeader,
		OnBeforeUpgrade: h.onBeforeUpgrade,
		// ExtensionCustom, not Negotiate: see negotiate.
		ExtensionCustom: h.negotiate,
	}
	return h
}

func (h *handshake) reset() {
	h.token, h.bearer, h.cookie = h.token[:0], h.bearer[:0], h.cookie[:0]
	h.user, h.origin = h.user[:0], h.origin[:0]
	h.hasOrigin = false
	h.conn = nil
	h.deflate = false
	h.result = 0
	h.id = Identity{}
	h.authErr = nil
	h.io.r.Reset(nil)
	h.io.w = nil
	h.resp.b = h.resp.b[:0]
}

// run answers the complete upgrade request req into h.resp.b. On success
// the identity is in h.id and h.resp.b holds the 101; on failure h.resp.b
// holds the HTTP answer and h.result says why. Sending it is the caller's:
// the 101 goes out in one write with the welcome frame.
func (h *handshake) run(req []byte) error {
	return h.runWith(req, &h.resp)
}

// runWith answers req on w.
func (h *handshake) runWith(req []byte, w io.Writer) error {
	h.io.r.Reset(req)
	h.io.w = w
	_, err := h.u.Upgrade(&h.io)
	if err != nil && h.result == 0 {
		h.result = resultBadRequest
	}
	return err
}

// handshakeIO is what ws.Upgrader reads the request from and writes the
// answer to.
type handshakeIO struct {
	r bytes.Reader
	w io.Writer
}

func (h *handshakeIO) Read(p []byte) (int, error) { return h.r.Read(p) }

func (h *handshakeIO) Write(p []byte) (int, error) { return h.w.Write(p) }

// respWriter collects the HTTP answer in a reusable buffer.
type respWriter struct{ b []byte }

func (w *respWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// onRequest checks the path and picks ?token= and ?user= out of the query.
func (h *handshake) onRequest(uri []byte) error {
	path, query, _ := bytes.Cut(uri, []byte{'?'})
	if string(path) != h.srv.cfg.Path {
		h.result = resultNotFound
		return rejectNotFound
	}
	for len(query) > 0 {
		var pair []byte
		pair, query, _ = bytes.Cut(query, []byte{'&'})
		key, value, _ := bytes.Cut(pair, []byte{'='})
		switch string(key) {
		case "token":
			h.token = appendUnescaped(h.token[:0], value)
		case "user":
			h.user = appendUnescaped(h.user[:0], value)
		}
	}
	return nil
}

// onHeader picks the Origin, the bearer token and the wsgate_token cookie.
// Keys arrive canonicalized.
func (h *handshake) onHeader(key, value []byte) error {
	switch string(key) {
	case "Origin":
		h.hasOrigin = true
		h.origin = append(h.origin[:0], value...)
	case "Authorization":
		if v, ok := bearerToken(value); ok {
			h.bearer = append(h.bearer[:0], v...)
		}
	case "Cookie":
		if v, ok := cookieValue(value, tokenCookie); ok {
			h.cookie = append(h.cookie[:0], v...)
		}
	}
	return nil
}

// onBeforeUpgrade runs once the whole request is read: origin, identity,
// and whether the gateway takes connections now.
func (h *handshake) onBeforeUpgrade() (ws.HandshakeHeader, error) {
	s := h.srv
	if h.hasOrigin && !originAllowed(s.origins, h.origin) {
		h.result = resultForbidden
		return nil, rejectForbidden
	}
	id, err := s.cfg.Auth.Authenticate(h.credentials())
	if err != nil {
		h.result = resultUnauthorized
		h.authErr = err
		return nil, rejectUnauthorized
	}
	if s.stopping.Load() || !s.bus.Connected() {
		h.result = resultUnavailable
		return nil, rejectUnavailable
	}
	if h.conn != nil {
		switch h.result = s.admit(h.conn); h.result {
		case resultIPLimit:
			return nil, rejectIPLimit
		case resultConnLimit:
			return nil, rejectConnLimit
		}
	}
	h.id = id
	return nil, nil
}

// Rejections, built once so that refusing costs no allocation either.
var (
	rejectNotFound     = reject(http.StatusNotFound, "not found")
	rejectUnauthorized = reject(http.StatusUnauthorized, "unauthorized")
	rejectForbidden    = reject(http.StatusForbidden, "origin not allowed")
	rejectUnavailable  = reject(http.StatusServiceUnavailable, "unavailable", retryAfter)
	rejectConnLimit    = reject(http.StatusServiceUnavailable, "too many connections", retryAfter)
	rejectIPLimit      = reject(http.StatusTooManyRequests, "too many connections from this address", retryAfter)
)

var retryAfter = ws.RejectionHeader(ws.HandshakeHeaderString("Retry-After: 1\r\n"))

func reject(status int, reason string, opts ...ws.RejectOption) error {
	return ws.RejectConnectionError(append([]ws.RejectOption{ws.RejectionStatus(status), ws.RejectionReason(reason)}, opts...)...)
}

// refuse drops a connection whose upgrade failed and counts why. It does
// nothing once the connection has left its handshake (the sweeper may race
// with a welcome).
func (s *Server) refuse(c *Conn, result upgradeResult, err, authErr error) {
	c.wmu.Lock()
	if c.state.Load() != stateHandshake {
		c.wmu.Unlock()
		return
	}
	c.state.Store(stateClosed)
	c.wmu.Unlock()
	c.release()
	s.metrics.upgrades[result].Inc()
	if ce := s.log.Check(zap.DebugLevel, "upgrade refused"); ce != nil {
		ce.Write(zap.Stringer("result", result), zap.String("remote", c.remoteAddr()),
			zap.Error(err), zap.NamedError("auth", authErr))
	}
}

// upgradeResult is how an upgrade attempt ended: the label of
// wsgate_upgrades_total and the log field of a refusal.
type upgradeResult uint8

// The upgrade results. The zero value is not a result: the upgrade is still
// under way.
const (
	resultOK upgradeResult = iota + 1
	resultBadRequest
	resultNotFound
	resultUnauthorized
	resultForbidden
	resultTooLarge
	resultUnavailable
	resultTimeout
	resultAborted
	resultBusy
	resultConnLimit
	resultIPLimit
	resultUserLimit
	resultError

	numResults = iota + 1
)

var resultLabels = [numResults]string{
	resultOK:           "ok",
	resultBadRequest:   "bad_request",
	resultNotFound:     "not_found",
	resultUnauthorized: "unauthorized",
	resultForbidden:    "forbidden",
	resultTooLarge:     "too_large",
	resultUnavailable:  "unavailable",
	resultTimeout:      "timeout",
	resultAborted:      "aborted",
	resultBusy:         "busy",
	resultConnLimit:    "conn_limit",
	resultIPLimit:      "ip_limit",
	resultUserLimit:    "user_limit",
	resultError:        "error",
}

// String returns the result's metric label, e.g. "conn_limit".
func (r upgradeResult) String() string {
	if r == 0 || int(r) >= len(resultLabels) {
		return "unknown"
	}
	return resultLabels[r]
}
