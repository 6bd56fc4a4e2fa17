package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/control"
	"github.com/wsgate/wsgate/internal/natstest"
	"github.com/wsgate/wsgate/internal/wstest"
)

// publishBody is a volatile publish that needs only NATS, used where a
// test needs any call that succeeds.
const publishBody = `{"channel":"user.42","data":{"n":1}}`

func TestAuth(t *testing.T) {
	srv := natstest.Run(t, false)
	withKeys := newEnv(t, srv, Config{Keys: []string{key1, key2}}, 0)
	noKeys := newEnv(t, srv, Config{}, 0)
	insecure := newEnv(t, srv, Config{Insecure: true}, 0)

	tests := []struct {
		name      string
		env       *env
		hdr       http.Header
		status    int
		code      string
		challenge string // WWW-Authenticate
	}{
		{name: "bearer", env: withKeys, hdr: http.Header{"Authorization": {"Bearer " + key1}}, status: 200},
		{name: "bearer second key", env: withKeys, hdr: http.Header{"Authorization": {"Bearer " + key2}}, status: 200},
		{name: "bearer lower case", env: withKeys, hdr: http.Header{"Authorization": {"bearer " + key1}}, status: 200},
		{name: "x-api-key", env: withKeys, hdr: http.Header{"X-Api-Key": {key2}}, status: 200},
		{name: "missing", env: withKeys, hdr: http.Header{}, status: 401, code: "unauthorized", challenge: `Bearer realm="wsgate"`},
		{name: "wrong key", env: withKeys, hdr: http.Header{"Authorization": {"Bearer " + key1 + "x"}}, status: 401, code: "invalid_key", challenge: `Bearer realm="wsgate", error="invalid_token"`},
		{name: "wrong x-api-key", env: withKeys, hdr: http.Header{"X-Api-Key": {"nope-nope-nope-nope"}}, status: 401, code: "invalid_key", challenge: `Bearer realm="wsgate", error="invalid_token"`},
		{name: "prefix of a key", env: withKeys, hdr: http.Header{"Authorization": {"Bearer " + key1[:16]}}, status: 401, code: "invalid_key", challenge: `Bearer realm="wsgate", error="invalid_token"`},
		{name: "basic scheme", env: withKeys, hdr: http.Header{"Authorization": {"Basic " + key1}}, status: 401, code: "unauthorized", challenge: `Bearer realm="wsgate"`},
		{name: "no keys configured", env: noKeys, hdr: http.Header{"Authorization": {"Bearer " + key1}}, status: 403, code: "api_disabled"},
		{name: "no keys configured, no key", env: noKeys, hdr: http.Header{}, status: 403, code: "api_disabled"},
		{name: "insecure without key", env: insecure, hdr: http.Header{}, status: 200},
		{name: "insecure with any key", env: insecure, hdr: http.Header{"Authorization": {"Bearer whatever"}}, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.hdr.Set("Content-Type", "application/json")
			r := tt.env.do(t, http.MethodPost, "/api/v1/publish", tt.hdr, publishBody)
			if r.status != tt.status || r.errorCode() != tt.code {
				t.Fatalf("status %d code %q, want %d %q (%s)", r.status, r.errorCode(), tt.status, tt.code, r.raw)
			}
			if got := r.header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.challenge)
			}
		})
	}
}

// TestAuthBeforeRouting: without a key, an unknown path or a wrong method
// is 401, so that a caller without a key learns nothing about the API.
func TestAuthBeforeRouting(t *testing.T) {
	e := newEnv(t, natstest.Run(t, false), Config{Keys: []string{key1}}, 0)
	for _, c := range []struct{ method, path string }{{"GET", "/api/v1/nope"}, {"GET", "/api/v1/publish"}} {
		if r := e.call(t, c.method, c.path, "", ""); r.status != 401 {
			t.Errorf("%s %s without key: status %d, want 401", c.method, c.path, r.status)
		}
	}
}

func TestPublishVolatile(t *testing.T) {
	srv := natstest.Run(t, false)
	e := newEnv(t, srv, Config{Keys: []string{key1}}, 0)
	sub := connect(t, srv)

	// The data is passed through byte for byte: white space, key order,
	// escapes, numbers as written.
	data := `{ "b":1, "a" : [1.50, "x\u00e9\n"], "z":null }`
	tests := []struct {
		channel, subject string
		data             string
	}{
		{channel: "user.42", subject: "notify.user.42", data: data},
		{channel: "topic.news", subject: "notify.topic.news", data: data},
		{channel: "topic.team-7.eu", subject: "notify.topic.team-7.eu", data: `"just a string"`},
		{channel: "broadcast", subject: "notify.broadcast", data: `12`},
		{channel: "user.u_9", subject: "notify.user.u_9", data: `null`},
	}
	for _, tt := range tests {
		t.Run(tt.channel, func(t *testing.T) {
			s, err := sub.SubscribeSync(tt.subject)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Unsubscribe()
			if err := sub.Flush(); err != nil {
				t.Fatal(err)
			}
			r := e.call(t, "POST", "/api/v1/publish", key1, `{"channel":"`+tt.channel+`","data":`+tt.data+`}`)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			if got, want := string(r.raw), `{"channel":"`+tt.channel+`","durable":false}`+"\n"; got != want {
				t.Errorf("answer %s, want %s", got, want)
			}
			m, err := s.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("no message on %s: %v", tt.subject, err)
			}
			if string(m.Data) != tt.data {
				t.Errorf("payload %q, want %q", m.Data, tt.data)
			}
		})
	}
}

func TestPublishDurable(t *testing.T) {
	srv := natstest.Run(t, true)
	e := newEnv(t, srv, Config{Keys: []string{key1}}, 0)
	applyStream(t, e.nc)
	sub := connect(t, srv)
	live, err := sub.SubscribeSync("notify.user.42")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}

	body := `{"channel":"user.42","data":{"order":7},"durable":true,"id":"order-7-shipped","ttl":"10m"}`
	first := e.call(t, "POST", "/api/v1/publish", key1, body)
	if first.status != 200 {
		t.Fatalf("status %d: %s", first.status, first.raw)
	}
	if first.body["stream"] != "NOTIFY" || first.body["durable"] != true || first.body["duplicate"] != false || first.num("seq") < 1 {
		t.Fatalf("first publish: %s", first.raw)
	}
	// The stream republishes what it stored to the live subject.
	m, err := live.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("stored notification not republished: %v", err)
	}
	if string(m.Data) != `{"order":7}` {
		t.Errorf("republished payload %q", m.Data)
	}

	again := e.call(t, "POST", "/api/v1/publish", key1, body)
	if again.status != 200 || again.body["duplicate"] != true || again.num("seq") != first.num("seq") {
		t.Fatalf("retry with the same id: %s, want duplicate of seq %v", again.raw, first.num("seq"))
	}

	for _, ch := range []string{"topic.news", "broadcast"} {
		r := e.call(t, "POST", "/api/v1/publish", key1, `{"channel":"`+ch+`","data":1,"durable":true}`)
		if r.status != 200 || r.num("seq") <= first.num("seq") || r.body["channel"] != ch {
			t.Errorf("durable %s: %d %s", ch, r.status, r.raw)
		}
	}
}

func TestPublishUnavailable(t *testing.T) {
	t.Run("no stream", func(t *testing.T) {
		e := newEnv(t, natstest.Run(t, true), Config{Insecure: true}, 0)
		r := e.call(t, "POST", "/api/v1/publish", "", `{"channel":"user.42","data":1,"durable":true}`)
		if r.status != 503 || r.errorCode() != "no_stream" {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
	})
	t.Run("no jetstream", func(t *testing.T) {
		e := newEnv(t, natstest.Run(t, false), Config{Insecure: true}, 0)
		r := e.call(t, "POST", "/api/v1/publish", "", `{"channel":"user.42","data":1,"durable":true}`)
		if r.status != 503 || r.errorCode() != "jetstream_unavailable" {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
	})
	t.Run("nats closed", func(t *testing.T) {
		srv := natstest.Run(t, false)
		nc := connect(t, srv)
		e := newEnv(t, srv, Config{Insecure: true, Publisher: bus.NewPublisher(nc, "")}, 0)
		nc.Close()
		r := e.call(t, "POST", "/api/v1/publish", "", publishBody)
		if r.status != 503 || r.errorCode() != "nats_unavailable" {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
	})
	t.Run("nats down", func(t *testing.T) {
		// While the client reconnects, a publish lands in its reconnect
		// buffer: the flush tells the caller NATS does not have it.
		srv := natstest.Run(t, false)
		nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		e := newEnv(t, srv, Config{Insecure: true, Publisher: bus.NewPublisher(nc, "")}, 0)
		srv.Shutdown()
		srv.WaitForShutdown()
		wstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
			if nc.IsConnected() {
				return errors.New("the client did not notice the server is gone")
			}
			return nil
		})
		r := e.call(t, "POST", "/api/v1/publish", "", publishBody)
		if r.status != 503 || r.errorCode() != "nats_unavailable" {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		// A Timeout of 1ns has run out before the call is made.
		e := newEnv(t, natstest.Run(t, true), Config{Insecure: true, Timeout: time.Nanosecond}, 0)
		for _, body := range []string{publishBody, `{"channel":"user.42","data":1,"durable":true}`} {
			r := e.call(t, "POST", "/api/v1/publish", "", body)
			if r.status != 504 || r.errorCode() != "timeout" {
				t.Errorf("%s: status %d: %s", body, r.status, r.raw)
			}
		}
	})
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, natstest.Run(t, false), Config{Keys: []string{key1}, MaxBody: 256}, 0)
	big := `{"channel":"user.42","data":"` + strings.Repeat("x", 300) + `"}`
	json := http.Header{"Content-Type": {"application/json"}}
	tests := []struct {
		name         string
		method, path string
		hdr          http.Header // Content-Type; the key is added
		body         string
		status       int
		code         string
		allow        string
	}{
		{name: "malformed", method: "POST", path: "/api/v1/publish", hdr: json, body: `{"channel":"user.42",`, status: 400, code: "bad_request"},
		{name: "unknown field", method: "POST", path: "/api/v1/publish", hdr: json, body: `{"channel":"user.42","data":1,"urgent":true}`, status: 400, code: "bad_request"},
		{name: "trailing data", method: "POST", path: "/api/v1/publish", hdr: json, body: `{"channel":"user.42","data":1} {}`, status: 400, code: "bad_request"},
		{name: "not an object", method: "POST", path: "/api/v1/publish", hdr: json, body: `["user.42"]`, status: 400, code: "bad_request"},
		{name: "empty body", method: "POST", path: "/api/v1/subscribe", hdr: json, body: ``, status: 400, code: "bad_request"},
		{name: "wrong type", method: "POST", path: "/api/v1/publish", hdr: json, body: `{"channel":42,"data":1}`, status: 400, code: "bad_request"},
		{name: "no data", method: "POST", path: "/api/v1/publish", hdr: json, body: `{"channel":"user.42"}`, status: 400, code: "bad_request"},
		{name: "invalid channel", method: "POST", path: "/api/v1/publish", hdr: json, body: `{"channel":"user.*","data":1}`, status: 400, code: "bad_request"},
		{name: "unknown channel kind", method: "POST", path: "/api/v1/publish", hdr: json, body: `{"channel":"room.1","data":1}`, status: 400, code: "bad_request"},
		{name: "id without durable", method: "POST", path: "/api/v1/publish", hdr: json, body: `{"channel":"user.42","data":1,"id":"x"}`, status: 400, code: "bad_request"},
		{name: "ttl without durable", method: "POST", path: "/api/v1/publish", hdr: json, body: `{"channel":"user.42","data":1,"ttl":"1m"}`, status: 400, code: "bad_request"},
		{name: "bad ttl", method: "POST", path: "/api/v1/publish", hdr: json, body: `{"channel":"user.42","data":1,"durable":true,"ttl":"soon"}`, status: 400, code: "bad_request"},
		{name: "short ttl", method: "POST", path: "/api/v1/publish", hdr: json, body: `{"channel":"user.42","data":1,"durable":true,"ttl":"10ms"}`, status: 400, code: "bad_request"},
		{name: "bad reason", method: "POST", path: "/api/v1/disconnect", hdr: json, body: `{"user":"42","reason":"bored"}`, status: 400, code: "bad_request"},
		{name: "no reason", method: "POST", path: "/api/v1/disconnect", hdr: json, body: `{"user":"42"}`, status: 400, code: "bad_request"},
		{name: "disconnect nobody", method: "POST", path: "/api/v1/disconnect", hdr: json, body: `{"reason":"logout"}`, status: 400, code: "bad_request"},
		{name: "bad user", method: "POST", path: "/api/v1/subscribe", hdr: json, body: `{"user":"a.b","topic":"topic.x"}`, status: 400, code: "bad_request"},
		{name: "topic without prefix", method: "POST", path: "/api/v1/unsubscribe", hdr: json, body: `{"user":"42","topic":"team-7"}`, status: 400, code: "bad_request"},
		{name: "presence user and topic", method: "GET", path: "/api/v1/presence?user=42&topic=topic.x", status: 400, code: "bad_request"},
		{name: "presence unknown parameter", method: "GET", path: "/api/v1/presence?who=42", status: 400, code: "bad_request"},
		{name: "presence repeated user", method: "GET", path: "/api/v1/presence?user=1&user=2", status: 400, code: "bad_request"},
		{name: "presence bad user", method: "GET", path: "/api/v1/presence?user=", status: 400, code: "bad_request"},
		{name: "too large", method: "POST", path: "/api/v1/publish", hdr: json, body: big, status: 413, code: "body_too_large"},
		{name: "no content type", method: "POST", path: "/api/v1/publish", hdr: http.Header{}, body: publishBody, status: 415, code: "unsupported_media_type"},
		{name: "text content type", method: "POST", path: "/api/v1/publish", hdr: http.Header{"Content-Type": {"text/plain"}}, body: publishBody, status: 415, code: "unsupported_media_type"},
		{name: "latin1 charset", method: "POST", path: "/api/v1/publish", hdr: http.Header{"Content-Type": {"application/json; charset=iso-8859-1"}}, body: publishBody, status: 415, code: "unsupported_media_type"},
		{name: "utf-8 charset", method: "POST", path: "/api/v1/publish", hdr: http.Header{"Content-Type": {"application/json; charset=UTF-8"}}, body: publishBody, status: 200},
		{name: "GET publish", method: "GET", path: "/api/v1/publish", status: 405, code: "method_not_allowed", allow: "POST"},
		{name: "POST stats", method: "POST", path: "/api/v1/stats", hdr: json, body: `{}`, status: 405, code: "method_not_allowed", allow: "GET"},
		{name: "DELETE presence", method: "DELETE", path: "/api/v1/presence", status: 405, code: "method_not_allowed", allow: "GET"},
		{name: "unknown path", method: "GET", path: "/api/v1/nope", status: 404, code: "not_found"},
		{name: "unknown version", method: "POST", path: "/api/v2/publish", hdr: json, body: publishBody, status: 404, code: "not_found"},
		{name: "trailing slash", method: "POST", path: "/api/v1/publish/", hdr: json, body: publishBody, status: 404, code: "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := tt.hdr.Clone()
			if hdr == nil {
				hdr = http.Header{}
			}
			hdr.Set("Authorization", "Bearer "+key1)
			r := e.do(t, tt.method, tt.path, hdr, tt.body)
			if r.status != tt.status || r.errorCode() != tt.code {
				t.Fatalf("status %d code %q, want %d %q (%s)", r.status, r.errorCode(), tt.status, tt.code, r.raw)
			}
			if tt.code != "" {
				if msg, _ := r.body["error"].(map[string]any)["message"].(string); msg == "" {
					t.Errorf("no message: %s", r.raw)
				}
			}
			if got := r.header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
}

// TestTooLargeChunked: a body without Content-Length is cut at MaxBody
// too.
func TestTooLargeChunked(t *testing.T) {
	e := newEnv(t, natstest.Run(t, false), Config{Insecure: true, MaxBody: 64}, 0)
	req, err := http.NewRequest("POST", e.url+"/api/v1/publish", strings.NewReader(strings.Repeat(" ", 100)+publishBody))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1 // chunked
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

func TestNew(t *testing.T) {
	nc := connect(t, natstest.Run(t, false))
	pub, ctl := bus.NewPublisher(nc, ""), &control.Client{}
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{name: "ok", cfg: Config{Publisher: pub, Control: ctl, Keys: []string{key1}}},
		{name: "no keys", cfg: Config{Publisher: pub, Control: ctl}},
		{name: "no publisher", cfg: Config{Control: ctl}, want: ErrInvalidConfig},
		{name: "no control", cfg: Config{Publisher: pub}, want: ErrInvalidConfig},
		{name: "negative body", cfg: Config{Publisher: pub, Control: ctl, MaxBody: -1}, want: ErrInvalidConfig},
		{name: "negative timeout", cfg: Config{Publisher: pub, Control: ctl, Timeout: -1}, want: ErrInvalidConfig},
		{name: "short key", cfg: Config{Publisher: pub, Control: ctl, Keys: []string{"short"}}, want: ErrInvalidKey},
		{name: "key with space", cfg: Config{Publisher: pub, Control: ctl, Keys: []string{"0123456789 abcdef"}}, want: ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("New: %v, want %v", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "0123456789") {
				t.Errorf("error %q shows the key", err)
			}
		})
	}
}
