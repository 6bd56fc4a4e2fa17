package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/control"
)

// Error codes, the "code" of an error answer. docs/api.yaml lists them.
const (
	codeBadRequest           = "bad_request"            // 400
	codeUnauthorized         = "unauthorized"           // 401, no key
	codeInvalidKey           = "invalid_key"            // 401, a wrong key
	codeAPIDisabled          = "api_disabled"           // 403, no key configured
	codeNotFound             = "not_found"              // 404
	codeMethodNotAllowed     = "method_not_allowed"     // 405
	codeBodyTooLarge         = "body_too_large"         // 413
	codeUnsupportedMediaType = "unsupported_media_type" // 415
	codeInternal             = "internal"               // 500
	codeNoGateways           = "no_gateways"            // 503
	codeNATSUnavailable      = "nats_unavailable"       // 503
	codeJetStreamUnavailable = "jetstream_unavailable"  // 503
	codeNoStream             = "no_stream"              // 503
	codeCanceled             = "canceled"               // 503, the caller went away
	codeTimeout              = "timeout"                // 504
)

// serverCodes are the codes of 5xx answers, each logged under its own rate
// limit.
var serverCodes = []string{codeInternal, codeNoGateways, codeNATSUnavailable, codeJetStreamUnavailable, codeNoStream, codeCanceled, codeTimeout}

// apiError is a failed call: the status, the code and the message the
// caller gets, and the cause that is logged.
type apiError struct {
	status  int
	code    string
	message string
	cause   error // may be nil
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return e.message + ": " + e.cause.Error()
	}
	return e.message
}

func (e *apiError) Unwrap() error { return e.cause }

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// classify maps an error of a call to its answer. Callers' mistakes are
// 400; a missing fleet, NATS or JetStream is 503; running out of time is
// 504, also when the fleet gave no answer because the call's own deadline
// came first. The messages of bus and control errors name channels and users,
// never keys, and are returned as they are.
func classify(ctx context.Context, err error) *apiError {
	if e, ok := errors.AsType[*apiError](err); ok {
		return e
	}
	switch {
	case errors.Is(err, errBadRequest), errors.Is(err, control.ErrInvalid), errors.Is(err, bus.ErrInvalidName), errors.Is(err, bus.ErrInvalidConfig):
		return &apiError{http.StatusBadRequest, codeBadRequest, err.Error(), err}
	case errors.Is(err, nats.ErrMaxPayload):
		return &apiError{http.StatusRequestEntityTooLarge, codeBodyTooLarge, "the notification is larger than the NATS server's max_payload", err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, control.ErrTimeout),
		errors.Is(ctx.Err(), context.DeadlineExceeded):
		msg := "no answer in time"
		if errors.Is(err, bus.ErrJetStreamUnavailable) {
			msg = "JetStream did not acknowledge in time: the notification may or may not be stored; retry with the same id"
		}
		return &apiError{http.StatusGatewayTimeout, codeTimeout, msg, err}
	case errors.Is(err, control.ErrNoGateways):
		return &apiError{http.StatusServiceUnavailable, codeNoGateways, "no gateway answered: is any gateway connected to this NATS?", err}
	case errors.Is(err, bus.ErrNoStream):
		return &apiError{http.StatusServiceUnavailable, codeNoStream, "no JetStream stream stores durable notifications: create it with `wsgate stream apply`", err}
	case errors.Is(err, bus.ErrJetStreamUnavailable):
		return &apiError{http.StatusServiceUnavailable, codeJetStreamUnavailable, "JetStream is not available: durable notifications cannot be stored", err}
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return &apiError{http.StatusServiceUnavailable, codeCanceled, "the request was canceled", err}
	case errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, nats.ErrNoResponders):
		return &apiError{http.StatusServiceUnavailable, codeNATSUnavailable, "NATS is not reachable: " + err.Error(), err}
	default:
		return &apiError{http.StatusInternalServerError, codeInternal, "internal error", err}
	}
}

// fail answers e and logs it: 5xx at warn, rate-limited per code, 4xx at
// debug. Only the method, the path (without the query) and the error are
// logged, never headers, so never a key.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, e *apiError) {
	writeJSON(w, e.status, errorBody{errorDetail{Code: e.code, Message: e.message}})
	level := zapcore.DebugLevel
	held := 0
	if e.status >= 500 {
		ok := false
		if ok, held = h.limits[e.code].Allow(); !ok {
			return
		}
		level = zapcore.WarnLevel
	}
	if ce := h.log.Check(level, "api call failed"); ce != nil {
		fields := []zap.Field{
			zap.String("method", r.Method),
			zap.String("path", r.URL.Path),
			zap.Int("status", e.status),
			zap.String("code", e.code),
		}
		if e.cause != nil {
			fields = append(fields, zap.Error(e.cause))
		}
		if held > 0 {
			fields = append(fields, zap.Int("held", held))
		}
		ce.Write(fields...)
	}
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Every answer is a struct of strings, numbers and slices:
		// marshalling cannot fail.
		panic("httpapi: marshal answer: " + err.Error())
	}
	b = append(b, '\n')
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
