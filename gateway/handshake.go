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
// the few values we need (token, user, origin) into a pooled upgrader, and
// the answer goes out with one non-blocking write.

var crlfcrlf = []byte("\r\n\r\n")

// upgrade is the read task of a connection still in stateHandshake: it
// takes what the kernel holds of the upgrade request and, once the request
// is complete, answers it and welcomes the connection.
func (c *Conn) upgrade() {
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
			s.refuse(c, resultTooLarge, errHandshakeTooLarge, nil)
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
	u := s.upgraders.Get().(*upgrader)
	u.conn = c
	err := u.run(req)
	id, result, authErr, deflate := u.id, u.result, u.authErr, u.deflate
	var resume urlResume
	if err == nil && len(u.resume) > 0 {
		resume = parseResumeParam(u.resume)
	}
	var resp []byte
	if err != nil {
		// A fresh socket's buffer always takes an HTTP answer at once.
		if len(u.resp.b) == 0 { // gobwas/ws answers a malformed request with nothing
			u.resp.b = append(u.resp.b, badRequestResponse...)
		}
		rawio.Write(c.rc, u.resp.b)
	} else {
		resp = make([]byte, len(u.resp.b), len(u.resp.b)+128)
		copy(resp, u.resp.b)
	}
	u.reset()
	s.upgraders.Put(u)
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
	if !s.welcome(c, id, resp, resume) {
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

// upgrader is the pooled state of one upgrade: a ws.Upgrader whose
// callbacks are bound to it once, when the pool makes it, and what they
// pick out of the request.
type upgrader struct {
	srv    *Server
	conn   *Conn // the connection upgrading; nil in tests of the parser alone
	up     ws.Upgrader
	io     handshakeIO
	resp   respWriter // the HTTP answer, sent by the caller
	token  []byte     // from ?token=
	bearer []byte     // from Authorization: Bearer
	cookie []byte     // from the wsgate_token cookie
	user   []byte
	resume []byte // from ?resume=: positions to resume at the welcome (resume.go)
	origin []byte
	// deflate: permessage-deflate was accepted (deflate.go).
	deflate bool
	// hasOrigin records whether the request had an Origin header.
	hasOrigin bool
	result    upgradeResult
	id        Identity
	authErr   error
}

func (s *Server) newUpgrader() any {
	u := &upgrader{srv: s}
	u.up = ws.Upgrader{
		ReadBufferSize:  4096,
		OnRequest:       u.onRequest,
		OnHeader:        u.onHeader,
		OnBeforeUpgrade: u.onBeforeUpgrade,
		// ExtensionCustom, not Negotiate: see negotiate.
		ExtensionCustom: u.negotiate,
	}
	return u
}

func (u *upgrader) reset() {
	u.token, u.bearer, u.cookie = u.token[:0], u.bearer[:0], u.cookie[:0]
	u.user, u.origin, u.resume = u.user[:0], u.origin[:0], u.resume[:0]
	u.hasOrigin = false
	u.conn = nil
	u.deflate = false
	u.result = 0
	u.id = Identity{}
	u.authErr = nil
	u.io.r.Reset(nil)
	u.io.w = nil
	u.resp.b = u.resp.b[:0]
}

// run answers the complete upgrade request req into u.resp.b. On success
// the identity is in u.id and u.resp.b holds the 101; on failure u.resp.b
// holds the HTTP answer and u.result says why. Sending it is the caller's:
// the 101 goes out in one write with the welcome frame.
func (u *upgrader) run(req []byte) error {
	return u.runWith(req, &u.resp)
}

// runWith answers req on w.
func (u *upgrader) runWith(req []byte, w io.Writer) error {
	u.io.r.Reset(req)
	u.io.w = w
	_, err := u.up.Upgrade(&u.io)
	if err != nil && u.result == 0 {
		u.result = resultBadRequest
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

// onRequest checks the path and picks ?token=, ?user= and ?resume= out of
// the query.
func (u *upgrader) onRequest(uri []byte) error {
	path, query, _ := bytes.Cut(uri, []byte{'?'})
	if string(path) != u.srv.cfg.Path {
		u.result = resultNotFound
		return rejectNotFound
	}
	for len(query) > 0 {
		var pair []byte
		pair, query, _ = bytes.Cut(query, []byte{'&'})
		key, value, _ := bytes.Cut(pair, []byte{'='})
		switch string(key) {
		case "token":
			u.token = appendUnescaped(u.token[:0], value)
		case "user":
			u.user = appendUnescaped(u.user[:0], value)
		case "resume":
			u.resume = appendUnescaped(u.resume[:0], value)
		}
	}
	return nil
}

// onHeader picks the Origin, the bearer token and the wsgate_token cookie.
// Keys arrive canonicalized.
func (u *upgrader) onHeader(key, value []byte) error {
	switch string(key) {
	case "Origin":
		u.hasOrigin = true
		u.origin = append(u.origin[:0], value...)
	case "Authorization":
		if v, ok := bearerToken(value); ok {
			u.bearer = append(u.bearer[:0], v...)
		}
	case "Cookie":
		if v, ok := cookieValue(value, tokenCookie); ok {
			u.cookie = append(u.cookie[:0], v...)
		}
	}
	return nil
}

// onBeforeUpgrade runs once the whole request is read: origin, identity,
// and whether the gateway takes connections now.
func (u *upgrader) onBeforeUpgrade() (ws.HandshakeHeader, error) {
	s := u.srv
	if u.hasOrigin && !originAllowed(s.origins, u.origin) {
		u.result = resultForbidden
		return nil, rejectForbidden
	}
	id, err := s.cfg.Auth.Authenticate(u.credentials())
	if err != nil {
		u.result = resultUnauthorized
		u.authErr = err
		return nil, rejectUnauthorized
	}
	if s.cfg.Revocations != nil && s.cfg.Revocations.Revoked(id.User, id.TokenID, id.IssuedAt) {
		u.result = resultRevoked
		u.authErr = errRevoked
		return nil, rejectUnauthorized
	}
	if s.stopping.Load() || !s.bus.Connected() {
		u.result = resultUnavailable
		return nil, rejectUnavailable
	}
	if u.conn != nil {
		switch u.result = s.admit(u.conn); u.result {
		case resultIPLimit:
			return nil, rejectIPLimit
		case resultConnLimit:
			return nil, rejectConnLimit
		}
	}
	u.id = id
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
	c.free()
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
	resultRevoked

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
	resultRevoked:      "revoked",
}

// String returns the result's metric label, e.g. "conn_limit".
func (r upgradeResult) String() string {
	if r == 0 || int(r) >= len(resultLabels) {
		return "unknown"
	}
	return resultLabels[r]
}
