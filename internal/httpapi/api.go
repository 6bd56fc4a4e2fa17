package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/control"
	"github.com/wsgate/wsgate/internal/lograte"
)

// Defaults of Config.
const (
	// DefaultMaxBody is the largest request body: a notification of a few
	// KiB fits many times over, while a body that would sit in every
	// client's write queue stays out. A larger limit is bounded in turn by
	// the NATS server's max_payload (1 MiB by default; beyond it, 413).
	DefaultMaxBody = 64 << 10
	// DefaultTimeout bounds each call: longer than the control client's
	// scatter-gather (2s by default) and JetStream's ack, short enough
	// that a caller retries before its own HTTP timeout.
	DefaultTimeout = 5 * time.Second
)

// Config configures New.
type Config struct {
	// Keys are the API keys a caller may present; each is at least
	// MinKeyLen bytes of printable ASCII (LoadKeys reads them). Empty,
	// without Insecure, turns the API off: every call is answered 403
	// with code "api_disabled", which says that no key is configured.
	Keys []string
	// Insecure accepts calls without a key (development, --auth=none).
	// Keys are then ignored.
	Insecure bool
	// Publisher publishes what POST /api/v1/publish is given. Required.
	Publisher *bus.Publisher
	// Control asks the fleet for presence, disconnects, subscriptions
	// and stats. Required.
	Control *control.Client
	// MaxBody is the largest request body in bytes; a larger one is
	// answered 413. Zero means DefaultMaxBody (64 KiB).
	MaxBody int64
	// Timeout bounds each call, from the request's arrival to the answer
	// of NATS or of the fleet; a call that runs out is answered 504. Zero
	// means DefaultTimeout (5s).
	Timeout time.Duration
	// Logger logs failed calls: 5xx at warn (rate-limited per error code),
	// 4xx at debug. It never sees keys nor request headers. Nil means
	// zap.NewNop().
	Logger *zap.Logger
}

// handler serves the API; its fields are set by New and never change.
type handler struct {
	keys     keyring
	insecure bool
	pub      *bus.Publisher
	ctl      *control.Client
	maxBody  int64
	timeout  time.Duration
	log      *zap.Logger
	limits   map[string]*lograte.Limiter // by error code, for 5xx logs; read-only map
	routes   map[string]route            // by path; read-only
}

// route is one endpoint: the method it takes and what it does. serve gets
// the body (nil for GET) and returns the answer to encode with status 200.
type route struct {
	method string
	serve  func(h *handler, ctx context.Context, r *http.Request, body []byte) (any, error)
}

// New returns the API's handler. It serves paths under /api/v1/ and
// expects the full request path: mount it with mux.Handle("/api/", h),
// without http.StripPrefix. New fails with ErrInvalidConfig for a missing
// Publisher or Control or a negative limit, and with ErrInvalidKey for a
// key that LoadKeys would refuse.
func New(cfg Config) (http.Handler, error) {
	if cfg.Publisher == nil || cfg.Control == nil {
		return nil, fmt.Errorf("%w: Publisher and Control are required", ErrInvalidConfig)
	}
	if cfg.MaxBody < 0 || cfg.Timeout < 0 {
		return nil, fmt.Errorf("%w: negative MaxBody or Timeout", ErrInvalidConfig)
	}
	keys, err := newKeyring(cfg.Keys)
	if err != nil {
		return nil, err
	}
	h := &handler{
		keys:     keys,
		insecure: cfg.Insecure,
		pub:      cfg.Publisher,
		ctl:      cfg.Control,
		maxBody:  cfg.MaxBody,
		timeout:  cfg.Timeout,
		log:      cfg.Logger,
		limits:   make(map[string]*lograte.Limiter),
	}
	if h.maxBody == 0 {
		h.maxBody = DefaultMaxBody
	}
	if h.timeout == 0 {
		h.timeout = DefaultTimeout
	}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	for _, code := range serverCodes {
		h.limits[code] = new(lograte.Limiter)
	}
	h.routes = map[string]route{
		"/api/v1/publish":     {http.MethodPost, (*handler).publish},
		"/api/v1/presence":    {http.MethodGet, (*handler).presence},
		"/api/v1/disconnect":  {http.MethodPost, (*handler).disconnect},
		"/api/v1/subscribe":   {http.MethodPost, (*handler).subscribe},
		"/api/v1/unsubscribe": {http.MethodPost, (*handler).unsubscribe},
		"/api/v1/stats":       {http.MethodGet, (*handler).stats},
	}
	if len(h.keys) == 0 && !h.insecure {
		h.log.Warn("http api off: no API key configured")
	}
	return h, nil
}

// ServeHTTP checks, in order, the key (401, 403), the path (404), the
// method (405), the content type (415) and the body's size (413), then
// decodes the body (400) and makes the call.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")

	if e := h.authenticate(r); e != nil {
		if e.status == http.StatusUnauthorized {
			challenge := `Bearer realm="wsgate"`
			if e.code == codeInvalidKey {
				challenge += `, error="invalid_token"`
			}
			hdr.Set("WWW-Authenticate", challenge)
		}
		h.fail(w, r, e)
		return
	}
	rt, ok := h.routes[r.URL.Path]
	if !ok {
		h.fail(w, r, &apiError{http.StatusNotFound, codeNotFound, "no such route: " + r.URL.Path + " (see docs/api.yaml)", nil})
		return
	}
	if r.Method != rt.method {
		hdr.Set("Allow", rt.method)
		h.fail(w, r, &apiError{http.StatusMethodNotAllowed, codeMethodNotAllowed, r.URL.Path + " takes " + rt.method, nil})
		return
	}
	var body []byte
	if rt.method == http.MethodPost {
		if e := checkContentType(r.Header.Get("Content-Type")); e != nil {
			h.fail(w, r, e)
			return
		}
		var e *apiError
		if body, e = h.readBody(w, r); e != nil {
			h.fail(w, r, e)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	res, err := rt.serve(h, ctx, r, body)
	if err != nil {
		h.fail(w, r, classify(ctx, err))
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// presentedKey returns the key in "Authorization: Bearer <key>" or, when
// there is no Authorization header, in "X-API-Key"; else "". An
// Authorization header of another scheme presents no key.
func presentedKey(r *http.Request) string {
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, key, ok := strings.Cut(a, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(key)
		}
		return ""
	}
	return strings.TrimSpace(r.Header.Get("X-API-Key"))
}

func (h *handler) authenticate(r *http.Request) *apiError {
	if h.insecure {
		return nil
	}
	if len(h.keys) == 0 {
		return &apiError{http.StatusForbidden, codeAPIDisabled, "the HTTP API is off: no API key is configured on this gateway", nil}
	}
	key := presentedKey(r)
	if key == "" {
		return &apiError{http.StatusUnauthorized, codeUnauthorized, `missing API key: send "Authorization: Bearer <key>" or "X-API-Key: <key>"`, nil}
	}
	if !h.keys.match(key) {
		return &apiError{http.StatusUnauthorized, codeInvalidKey, "invalid API key", nil}
	}
	return nil
}

// checkContentType accepts application/json, with no charset or UTF-8.
func checkContentType(ct string) *apiError {
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		if cs, ok := params["charset"]; !ok || strings.EqualFold(cs, "utf-8") {
			return nil
		}
	}
	return &apiError{http.StatusUnsupportedMediaType, codeUnsupportedMediaType, `Content-Type must be "application/json"`, nil}
}

// readBody reads at most h.maxBody bytes of the body.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	tooLarge := &apiError{http.StatusRequestEntityTooLarge, codeBodyTooLarge, fmt.Sprintf("the body is larger than %d bytes", h.maxBody), nil}
	if r.ContentLength > h.maxBody {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge
		}
		return nil, &apiError{http.StatusBadRequest, codeBadRequest, "reading the body failed", err}
	}
	return body, nil
}
