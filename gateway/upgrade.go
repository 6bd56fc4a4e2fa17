package gateway

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// The upgrade reads the HTTP request straight from the socket with
// ws.Upgrader: no net/http, no http.Request, no header map. The callbacks
// copy the few values we need (token, user, origin) into a pooled
// handshake, so a successful upgrade allocates nothing until the connection
// itself is created.

// Upgrade results, the label values of wsgate_upgrades_total.
const (
	resultOK           = "ok"
	resultBadRequest   = "bad_request"
	resultNotFound     = "not_found"
	resultUnauthorized = "unauthorized"
	resultForbidden    = "forbidden"
	resultTooLarge     = "too_large"
	resultUnavailable  = "unavailable"
	resultTimeout      = "timeout"
	resultBusy         = "busy"
	resultError        = "error"
)

var upgradeResults = []string{resultOK, resultBadRequest, resultNotFound, resultUnauthorized,
	resultForbidden, resultTooLarge, resultUnavailable, resultTimeout, resultBusy, resultError}

// Rejections, built once so that refusing costs no allocation either.
var (
	rejectNotFound     = reject(http.StatusNotFound, "not found")
	rejectUnauthorized = reject(http.StatusUnauthorized, "unauthorized")
	rejectForbidden    = reject(http.StatusForbidden, "origin not allowed")
	rejectUnavailable  = reject(http.StatusServiceUnavailable, "unavailable")
)

func reject(status int, reason string) error {
	return ws.RejectConnectionError(ws.RejectionStatus(status), ws.RejectionReason(reason))
}

// handshake is the pooled state of one upgrade. Its Upgrader's callbacks
// are bound to it once, when the pool makes it.
type handshake struct {
	srv    *Server
	u      ws.Upgrader
	conn   limitedConn
	token  []byte // from ?token=
	bearer []byte // from Authorization: Bearer
	cookie []byte // from the wsgate_token cookie
	user   []byte
	origin []byte
	// hasOrigin records whether the request had an Origin header.
	hasOrigin bool
	result    string
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
	}
	return h
}

func (h *handshake) reset() {
	h.token, h.bearer, h.cookie = h.token[:0], h.bearer[:0], h.cookie[:0]
	h.user, h.origin = h.user[:0], h.origin[:0]
	h.hasOrigin = false
	h.result = ""
	h.id = Identity{}
	h.authErr = nil
	h.conn.Conn = nil
}

// run upgrades nc. On success the identity is in h.id; on failure the
// client has had its HTTP answer (if it could get one) and the error says
// why.
func (h *handshake) run(nc net.Conn) error {
	s := h.srv
	h.conn = limitedConn{Conn: nc, left: s.cfg.MaxHandshakeSize}
	if err := nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout)); err != nil {
		h.result = resultError
		return err
	}
	_, err := h.u.Upgrade(&h.conn)
	if err == nil {
		err = nc.SetDeadline(time.Time{})
		if err != nil {
			h.result = resultError
		}
		return err
	}
	var ne net.Error
	switch {
	case h.result != "":
	case errors.Is(err, ErrHandshakeTooLarge):
		h.result = resultTooLarge
		nc.Write(tooLargeResponse)
	case errors.As(err, &ne) && ne.Timeout():
		h.result = resultTimeout
	default:
		h.result = resultBadRequest
	}
	return err
}

var tooLargeResponse = []byte("HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")

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
		const bearer = "bearer "
		if len(value) > len(bearer) && bytes.EqualFold(value[:len(bearer)], []byte(bearer)) {
			h.bearer = append(h.bearer[:0], bytes.TrimSpace(value[len(bearer):])...)
		}
	case "Cookie":
		if v, ok := cookieValue(value, "wsgate_token"); ok {
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
	token := h.token
	if len(token) == 0 {
		token = h.bearer
	}
	if len(token) == 0 {
		token = h.cookie
	}
	id, err := s.cfg.Auth.Authenticate(Credentials{Token: token, User: h.user})
	if err != nil {
		h.result = resultUnauthorized
		h.authErr = err
		return nil, rejectUnauthorized
	}
	if s.draining.Load() || s.closed.Load() || !s.bus.Connected() {
		h.result = resultUnavailable
		return nil, rejectUnavailable
	}
	h.id = id
	return nil, nil
}

// limitedConn bounds the bytes read during the handshake.
type limitedConn struct {
	net.Conn
	left int
}

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, ErrHandshakeTooLarge
	}
	if len(p) > l.left {
		p = p[:l.left]
	}
	n, err := l.Conn.Read(p)
	l.left -= n
	return n, err
}

// originRule is one entry of Config.AllowedOrigins, parsed once.
type originRule struct {
	any    bool   // "*"
	exact  []byte // "https://app.example.com"
	scheme []byte // "https://" of "https://*.example.com"
	domain []byte // ".example.com" of "https://*.example.com"
}

func parseOrigins(allowed []string) []originRule {
	rules := make([]originRule, 0, len(allowed))
	for _, a := range allowed {
		r := originRule{any: a == "*", exact: []byte(a)}
		if scheme, domain, ok := strings.Cut(a, "://*."); ok {
			r.scheme, r.domain = []byte(scheme+"://"), []byte("."+domain)
		}
		rules = append(rules, r)
	}
	return rules
}

// originAllowed reports whether origin matches a rule; no rules allow all.
func originAllowed(rules []originRule, origin []byte) bool {
	if len(rules) == 0 {
		return true
	}
	for _, r := range rules {
		switch {
		case r.any, bytes.EqualFold(r.exact, origin):
			return true
		case r.domain != nil && len(origin) > len(r.scheme)+len(r.domain) &&
			bytes.EqualFold(origin[:len(r.scheme)], r.scheme) &&
			bytes.EqualFold(origin[len(origin)-len(r.domain):], r.domain):
			return true
		}
	}
	return false
}

// cookieValue finds name=value in a Cookie header.
func cookieValue(header []byte, name string) ([]byte, bool) {
	for len(header) > 0 {
		var part []byte
		part, header, _ = bytes.Cut(header, []byte{';'})
		k, v, ok := bytes.Cut(bytes.TrimSpace(part), []byte{'='})
		if ok && string(k) == name {
			return bytes.Trim(v, `"`), true
		}
	}
	return nil, false
}

// appendUnescaped appends the URL query value v with %XX and + decoded.
// Malformed escapes are kept as they are; the authenticator rejects them.
func appendUnescaped(dst, v []byte) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '+':
			dst = append(dst, ' ')
		case c == '%' && i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]):
			dst = append(dst, unhex(v[i+1])<<4|unhex(v[i+2]))
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
