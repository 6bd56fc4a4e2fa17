//go:build integration && linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/internal/wstest"
)

// testAPIKey is an HTTP API key the fleet's first gateway accepts.
const testAPIKey = "test-key-0123456789abcdef"

// fleet is three gateway processes on one NATS server: the first runs it
// embedded, with JetStream (the stream and the denylist bucket), the
// others connect to it. They run JWT authentication with testSecret.
type fleet struct {
	bin  string
	nats string // the embedded server's URL
	gws  []fleetGateway
}

// fleetGateway is one gateway of a fleet.
type fleetGateway struct {
	id, ws, admin string
	proc          *gatewayProc
}

// startFleet starts the three gateways gwa, gwb and gwc, and waits until
// each listens.
func startFleet(t *testing.T, bin string) *fleet {
	t.Helper()
	env := []string{"WSGATE_JWT_SECRET=" + testSecret, "WSGATE_API_KEYS=" + testAPIKey}
	f := &fleet{bin: bin}
	start := func(id string, args ...string) {
		args = append(append(append([]string(nil), gatewayFlags...), "--auth=jwt", "--allowed-origins", "*", "--gateway-id", id, "--drain-delay", "0"), args...)
		g := startCmd(t, startCmdEnv(bin, env, args...))
		f.gws = append(f.gws, fleetGateway{id: id, proc: g,
			ws: g.waitField(t, "gateway listening", "addr"), admin: g.waitField(t, "admin listening", "addr")})
	}
	start("gwa", "--durable", "--nats-store-dir", t.TempDir(), "--embedded-nats-listen", "127.0.0.1:0")
	f.nats = f.gws[0].proc.waitField(t, "gateway listening", "nats")
	// The others follow the denylist bucket the first created.
	start("gwb", "--nats-url", f.nats)
	start("gwc", "--nats-url", f.nats)
	return f
}

// testJWT signs an HS256 token for user, issued at iat, that lets the
// user send upstream on the channels patterns.
func testJWT(t *testing.T, user string, iat time.Time, upstream ...string) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": user, "iat": iat.Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	if len(upstream) > 0 {
		claims["upstream"] = upstream
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dial connects to gateway i with token and reads the welcome.
func (f *fleet) dial(t *testing.T, i int, token string) *wstest.Client {
	t.Helper()
	c, err := dialWelcome(t.Context(), ws.Dialer{}, "ws://"+f.gws[i].ws+"/ws?token="+token, time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatalf("dial %s: %v", f.gws[i].id, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run runs a wsgate command against the fleet's NATS and fails t unless it
// exits with code.
func (f *fleet) run(t *testing.T, code int, args ...string) runResult {
	t.Helper()
	r := runBinary(t, f.bin, []string{"WSGATE_NATS_URL=" + f.nats}, args...)
	if r.code != code {
		t.Fatalf("wsgate %s: exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	return r
}

// runJSON runs a wsgate command with --json and decodes what it printed.
func (f *fleet) runJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	r := f.run(t, 0, append(args, "--json")...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("wsgate %s: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
}

// readUntil reads frames from c until one has type typ and returns it.
func readUntil(t *testing.T, c *wstest.Client, typ string) map[string]any {
	t.Helper()
	for {
		if m := c.Next(t); m["type"] == typ {
			return m
		}
	}
}

// The control plane across three gateway processes: presence, stats,
// server-side subscriptions, disconnects with each reason, revocation,
// upstream messages, and the HTTP API.
func TestControlPlane(t *testing.T) {
	bin := buildBinary(t)
	f := startFleet(t, bin)
	t.Run("presence and stats", func(t *testing.T) { testPresence(t, f) })
	t.Run("subscribe", func(t *testing.T) { testSubscribe(t, f) })
	t.Run("disconnect", func(t *testing.T) { testDisconnect(t, f) })
	t.Run("revoke", func(t *testing.T) { testRevoke(t, f) })
	t.Run("upstream", func(t *testing.T) { testUpstream(t, f) })
	t.Run("http api", func(t *testing.T) { testHTTPAPI(t, f) })
}

func testPresence(t *testing.T, f *fleet) {
	token := testJWT(t, "p1", time.Now())
	var conns []string
	for i := range f.gws {
		conns = append(conns, f.dial(t, i, token).ID)
	}
	var p struct {
		Gateways []struct {
			Gateway string
			Sockets []struct{ Conn string }
		}
		Online   bool
		Sockets  int
		Answered int
	}
	f.runJSON(t, &p, "presence", "--user", "p1", "--expect", "3")
	if !p.Online || p.Sockets != 3 || p.Answered != 3 || len(p.Gateways) != 3 {
		t.Fatalf("presence --user p1: %+v, want online with 3 sockets, 3 gateways answered", p)
	}
	for i, g := range p.Gateways {
		if g.Gateway != f.gws[i].id || len(g.Sockets) != 1 || g.Sockets[0].Conn != conns[i] {
			t.Errorf("gateway %d answered %+v, want %s with socket %s", i, g, f.gws[i].id, conns[i])
		}
		if !strings.HasPrefix(conns[i], f.gws[i].id+"-") {
			t.Errorf("connection id %q on %s does not start with the gateway id", conns[i], f.gws[i].id)
		}
	}
	r := f.run(t, 0, "presence", "--user", "p1", "--expect", "3")
	if !strings.Contains(r.stdout, "user p1: online, 3 sockets on 3 gateways; 3 gateways answered") {
		t.Errorf("presence --user p1 printed:\n%s", r.stdout)
	}
	r = f.run(t, 0, "presence", "--user", "nobody", "--expect", "3")
	if !strings.HasPrefix(r.stdout, "user nobody: offline, 0 sockets on 0 gateways; 3 gateways answered\n") {
		t.Errorf("presence --user nobody printed:\n%s", r.stdout)
	}

	r = f.run(t, 0, "stats", "--expect", "3")
	for _, want := range []string{"3 gateways answered", "gwa", "gwb", "gwc", "serving"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stats printed no %q:\n%s", want, r.stdout)
		}
	}
	// Fewer gateways than expected is a failure, after the answers.
	r = f.run(t, 1, "stats", "--expect", "4", "--timeout", "300ms")
	if !strings.Contains(r.stdout, "3 gateways answered") || !strings.Contains(r.stderr, "3 gateways answered, 4 expected") {
		t.Errorf("stats --expect 4: stdout\n%s\nstderr\n%s", r.stdout, r.stderr)
	}
}

func testSubscribe(t *testing.T, f *fleet) {
	token := testJWT(t, "s1", time.Now())
	a, b := f.dial(t, 0, token), f.dial(t, 1, token)
	r := f.run(t, 0, "subscribe", "--user", "s1", "--topic", "topic.t", "--expect", "3")
	if !strings.HasPrefix(r.stdout, "subscribed 2 sockets of user s1 to topic.t; 3 gateways answered\n") {
		t.Errorf("subscribe printed:\n%s", r.stdout)
	}
	for _, c := range []*wstest.Client{a, b} {
		m := c.Next(t)
		if m["type"] != "subscribed" || m["channel"] != "topic.t" || m["server"] != true {
			t.Fatalf("socket %s got %v, want subscribed topic.t from the server", c.ID, m)
		}
	}
	var p struct{ Subscribers, Answered int }
	f.runJSON(t, &p, "presence", "--topic", "topic.t", "--expect", "3")
	if p.Subscribers != 2 || p.Answered != 3 {
		t.Errorf("presence --topic topic.t: %+v, want 2 subscribers, 3 answered", p)
	}
	f.run(t, 0, "publish", "--topic", "t", `{"n":1}`)
	for _, c := range []*wstest.Client{a, b} {
		if m := c.Next(t); m["channel"] != "topic.t" {
			t.Fatalf("socket %s got %v, want the notification on topic.t", c.ID, m)
		}
	}
	r = f.run(t, 0, "unsubscribe", "--user", "s1", "--topic", "t", "--expect", "3") // the name alone works too
	if !strings.HasPrefix(r.stdout, "unsubscribed 2 sockets of user s1 from topic.t; 3 gateways answered\n") {
		t.Errorf("unsubscribe printed:\n%s", r.stdout)
	}
	for _, c := range []*wstest.Client{a, b} {
		if m := c.Next(t); m["type"] != "unsubscribed" || m["server"] != true {
			t.Fatalf("socket %s got %v, want unsubscribed from the server", c.ID, m)
		}
	}
}

// The control commands refuse what they cannot send, with status 2, and
// fail with status 1 when no gateway answers.
func TestControlCommandLine(t *testing.T) {
	bin := buildBinary(t)
	nowhere := []string{"WSGATE_NATS_URL=nats://127.0.0.1:1"} // a dial would fail with status 1
	runUsageCases(t, bin, []usageCase{
		{name: "presence of a user and a topic", args: []string{"presence", "--user", "42", "--topic", "t"}, env: nowhere, code: 2, want: []string{"--user or --topic, not both"}},
		{name: "subscribe without a topic", args: []string{"subscribe", "--user", "42"}, env: nowhere, code: 2, want: []string{"subscribe needs --user and --topic"}},
		{name: "unsubscribe without a user", args: []string{"unsubscribe", "--topic", "t"}, env: nowhere, code: 2, want: []string{"unsubscribe needs --user and --topic"}},
		{name: "stats argument", args: []string{"stats", "extra"}, env: nowhere, code: 2, want: []string{`unexpected argument "extra"`}},
		{name: "no timeout", args: []string{"stats", "--timeout", "0"}, env: nowhere, code: 2, want: []string{"--timeout 0s: must be above 0"}},
		{name: "negative expect", args: []string{"stats", "--expect", "-1"}, env: nowhere, code: 2, want: []string{"--expect -1: negative"}},
		{name: "echo and reject", args: []string{"upstream", "--echo", "--reject", "no"}, env: nowhere, code: 2, want: []string{"--echo and --reject exclude each other"}},
		{name: "bad channel pattern", args: []string{"upstream", "--channel", "chat.>.x"}, env: nowhere, code: 2, want: []string{`--channel "chat.>.x"`}},
		{name: "NATS unreachable", args: []string{"stats"}, env: nowhere, code: 1, want: []string{"connect nats://127.0.0.1:1"}},
		{name: "no gateway", args: []string{"presence", "--user", "42"}, env: []string{"WSGATE_NATS_URL=" + startNATS(t)}, code: 1, want: []string{"control: no gateway answered"}},
	})
}

// A bad API key, or a key file with none, stops the start with status 2
// and a message that says where the key was, never the key.
func TestAPIKeyFlags(t *testing.T) {
	bin := buildBinary(t)
	quiet := []string{"--auth=jwt", "--listen", "127.0.0.1:0", "--admin", "", "--embedded-nats-listen", "127.0.0.1:0"}
	secret := "WSGATE_JWT_SECRET=" + testSecret
	empty := t.TempDir() + "/keys"
	if err := os.WriteFile(empty, []byte("# no key yet\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runUsageCases(t, bin, []usageCase{
		{name: "short key", args: quiet, env: []string{secret, "WSGATE_API_KEYS=" + testAPIKey + ",tooShortKey"}, code: 2,
			want: []string{"invalid API key: 11 bytes, at least 16 needed (key 2 of the value)"}},
		{name: "empty key file", args: append(quiet, "--api-keys-file", empty), env: []string{secret}, code: 2,
			want: []string{"no API key"}},
		{name: "missing key file", args: append(quiet, "--api-keys-file", empty+".missing"), env: []string{secret}, code: 1,
			want: []string{"no such file"}},
	})
	r := runBinary(t, bin, []string{secret, "WSGATE_API_KEYS=tooShortKey"}, quiet...)
	if strings.Contains(r.stdout+r.stderr, "tooShortKey") {
		t.Errorf("the refusal shows the key:\n%s%s", r.stdout, r.stderr)
	}
}

// Without JetStream a revocation cannot be stored, but the disconnect
// carries it: the gateway closes the socket with 4006 and refuses the
// user's reconnect from memory, and the command says the revocation was
// not stored, with status 1.
func TestRevokeWithoutJetStream(t *testing.T) {
	bin := buildBinary(t)
	g := startGateway(t, bin, "--embedded-nats-listen", "127.0.0.1:0", "--gateway-id", "solo") // --durable=false: no JetStream
	addr := g.waitField(t, "gateway listening", "addr")
	nats := g.waitField(t, "gateway listening", "nats")
	c := wstest.Connect(t, "ws://"+addr+"/ws?user=42", nil)

	r := runBinary(t, bin, []string{"WSGATE_NATS_URL=" + nats}, "disconnect", "--user", "42", "--reason", "revoked", "--expect", "1")
	if r.code != 1 || !strings.HasPrefix(r.stdout, "disconnected 1 socket of user 42 (revoked); 1 gateway answered\n") ||
		!strings.Contains(r.stderr, "revocation not stored in the denylist") || !strings.Contains(r.stderr, "only in the memory of the 1 gateway that answered") {
		t.Fatalf("disconnect --reason revoked without JetStream: status %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if code := c.CloseCode(t); code != 4006 {
		t.Errorf("closed with %d, want 4006", code)
	}
	// In development mode every connection counts as issued before.
	_, err := wstest.Dial(t.Context(), ws.Dialer{Timeout: 5 * time.Second}, "ws://"+addr+"/ws?user=42")
	if status := ws.StatusError(0); !errors.As(err, &status) || status != http.StatusUnauthorized {
		t.Errorf("a reconnect of the revoked user: %v, want 401", err)
	}
	wstest.Connect(t, "ws://"+addr+"/ws?user=43", nil) // others are unaffected
}

func testDisconnect(t *testing.T, f *fleet) {
	runUsageCases(t, f.bin, []usageCase{
		{name: "no reason", args: []string{"disconnect", "--user", "42"}, code: 2, want: []string{"disconnect needs --reason"}},
		{name: "unknown reason", args: []string{"disconnect", "--user", "42", "--reason", "bye"}, code: 2, want: []string{`--reason "bye"`}},
		{name: "user and conn", args: []string{"disconnect", "--user", "42", "--conn", "gwa-1", "--reason", "logout"}, code: 2, want: []string{"exactly one of --user and --conn"}},
		{name: "neither", args: []string{"disconnect", "--reason", "logout"}, code: 2, want: []string{"exactly one of --user and --conn"}},
		{name: "revoke-for without revoked", args: []string{"disconnect", "--user", "42", "--reason", "logout", "--revoke-for", "1h"}, code: 2, want: []string{"--revoke-for goes with --reason revoked"}},
		{name: "invalid user", args: []string{"disconnect", "--user", "4.2", "--reason", "logout"}, env: []string{"WSGATE_NATS_URL=" + f.nats}, code: 2, want: []string{`user id "4.2"`}},
	})
	for _, tc := range []struct {
		reason string
		code   ws.StatusCode
	}{
		{"logout", 4005},
		{"reconnect", 4004},
	} {
		user := "d-" + tc.reason
		token := testJWT(t, user, time.Now())
		a, c := f.dial(t, 0, token), f.dial(t, 2, token)
		r := f.run(t, 0, "disconnect", "--user", user, "--reason", tc.reason, "--expect", "3")
		if want := fmt.Sprintf("disconnected 2 sockets of user %s (%s); 3 gateways answered\n", user, tc.reason); !strings.HasPrefix(r.stdout, want) {
			t.Errorf("disconnect printed:\n%s\nwant it to start with %q", r.stdout, want)
		}
		for _, s := range []*wstest.Client{a, c} {
			if code := s.CloseCode(t); code != tc.code {
				t.Errorf("%s: socket %s closed with %d, want %d", tc.reason, s.ID, code, tc.code)
			}
		}
	}

	// --conn closes that socket only.
	token := testJWT(t, "d-conn", time.Now())
	one, other := f.dial(t, 1, token), f.dial(t, 1, token)
	r := f.run(t, 0, "disconnect", "--conn", one.ID, "--reason", "reconnect", "--expect", "3")
	if want := "disconnected 1 socket of connection " + one.ID + " (reconnect); 3 gateways answered\n"; !strings.HasPrefix(r.stdout, want) {
		t.Errorf("disconnect --conn printed:\n%s\nwant it to start with %q", r.stdout, want)
	}
	if code := one.CloseCode(t); code != 4004 {
		t.Errorf("the named socket closed with %d, want 4004", code)
	}
	other.Send(t, map[string]any{"op": "ping", "ref": 1})
	if m := other.Next(t); m["type"] != "pong" {
		t.Errorf("the other socket got %v, want its pong", m)
	}
}

func testRevoke(t *testing.T, f *fleet) {
	old := testJWT(t, "rv", time.Now().Add(-time.Minute))
	var socks []*wstest.Client
	for i := range f.gws {
		socks = append(socks, f.dial(t, i, old))
	}
	r := f.run(t, 0, "disconnect", "--user", "rv", "--reason", "revoked", "--revoke-for", "1h", "--expect", "3")
	if !strings.Contains(r.stdout, "disconnected 3 sockets of user rv (revoked); 3 gateways answered") ||
		!strings.Contains(r.stdout, "tokens of user rv issued until") {
		t.Errorf("disconnect --reason revoked printed:\n%s", r.stdout)
	}
	for _, s := range socks {
		if code := s.CloseCode(t); code != 4006 {
			t.Errorf("socket %s closed with %d, want 4006", s.ID, code)
		}
	}
	for _, g := range f.gws {
		_, err := wstest.Dial(t.Context(), ws.Dialer{Timeout: 5 * time.Second}, "ws://"+g.ws+"/ws?token="+old)
		if status := ws.StatusError(0); !errors.As(err, &status) || status != http.StatusUnauthorized {
			t.Errorf("%s: a reconnect with the revoked token: %v, want 401", g.id, err)
		}
	}
	// A token issued after the revocation connects everywhere.
	fresh := testJWT(t, "rv", time.Now().Add(2*time.Second))
	for i := range f.gws {
		f.dial(t, i, fresh)
	}
}

func testUpstream(t *testing.T, f *fleet) {
	// One stand-in service echoes the requests on rpc.>, another refuses
	// those on chat.>.
	startUpstream := func(args ...string) *gatewayProc {
		p := startProc(t, f.bin, append([]string{"upstream", "--nats-url", f.nats}, args...)...)
		wstest.CheckFor(t, 10*time.Second, pollEvery, func() error {
			if !strings.Contains(p.log.String(), "wsgate upstream: listening on notify.up.") {
				return errors.New("wsgate upstream is not listening yet")
			}
			return nil
		})
		return p
	}
	startUpstream("--echo", "--channel", "rpc.>")
	up := startUpstream("--reject", "not today", "--channel", "chat.>")
	token := testJWT(t, "u1", time.Now(), "rpc.>", "chat.>")
	c := f.dial(t, 1, token)

	c.Send(t, map[string]any{"op": "request", "channel": "rpc.echo", "data": map[string]any{"user": "forged"}, "ref": 1})
	m := readUntil(t, c, "reply")
	data, _ := m["data"].(map[string]any)
	echo, _ := data["echo"].(map[string]any)
	if m["ref"] != 1.0 || m["channel"] != "rpc.echo" || data["user"] != "u1" || echo["user"] != "forged" {
		t.Fatalf("reply %v, want the echo of the data and user u1", m)
	}

	c.Send(t, map[string]any{"op": "request", "channel": "chat.room-1", "data": 1, "ref": 3})
	if m := readUntil(t, c, "error"); m["ref"] != 3.0 || m["code"] != "rejected" || m["message"] != "not today" {
		t.Fatalf("a request to the refusing service: %v, want error rejected, not today", m)
	}

	c.Send(t, map[string]any{"op": "publish", "channel": "chat.room-1", "data": map[string]any{"text": "hi"}, "ref": 2})
	if m := readUntil(t, c, "published"); m["ref"] != 2.0 {
		t.Fatalf("publish answered %v", m)
	}
	var line map[string]any
	wstest.CheckFor(t, 5*time.Second, pollEvery, func() error {
		for l := range strings.Lines(up.log.String()) {
			var v map[string]any
			if json.Unmarshal([]byte(l), &v) == nil && v["channel"] == "chat.room-1" && v["request"] == false {
				line = v
				return nil
			}
		}
		return errors.New("wsgate upstream printed no line for chat.room-1")
	})
	if d, _ := line["data"].(map[string]any); line["user"] != "u1" || line["conn"] != c.ID || line["gateway"] != "gwb" ||
		line["request"] != false || d["text"] != "hi" {
		t.Errorf("wsgate upstream printed %v, want user u1, conn %s, gateway gwb", line, c.ID)
	}

	// A flood from one connection is refused beyond its burst; another
	// connection on the same gateway is unaffected.
	flood, calm := f.dial(t, 0, token), f.dial(t, 0, token)
	for i := range 200 {
		b, _ := json.Marshal(map[string]any{"op": "publish", "channel": "chat.flood", "data": i, "ref": i + 1})
		if err := flood.WriteText(b); err != nil {
			t.Fatal(err)
		}
	}
	limited := 0
	for range 200 {
		m := flood.Next(t)
		switch {
		case m["type"] == "error" && m["code"] == "rate_limited":
			limited++
		case m["type"] != "published":
			t.Fatalf("the flood got %v", m)
		}
	}
	if limited == 0 || limited == 200 {
		t.Errorf("%d of 200 publishes refused as rate_limited, want some but not all", limited)
	}
	calm.Send(t, map[string]any{"op": "request", "channel": "rpc.echo", "data": "still here", "ref": 7})
	if m := readUntil(t, calm, "reply"); m["ref"] != 7.0 {
		t.Errorf("the other connection's request: %v", m)
	}
}

func testHTTPAPI(t *testing.T, f *fleet) {
	c := f.dial(t, 2, testJWT(t, "h1", time.Now()))
	api := "http://" + f.gws[0].admin + "/api/v1/"
	hc := &http.Client{Timeout: 10 * time.Second}
	call := func(method, path, key, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, api+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}

	if code, m := call("POST", "publish", testAPIKey, `{"channel":"user.h1","data":{"via":"api"}}`); code != http.StatusOK {
		t.Fatalf("publish: %d %v", code, m)
	}
	if m := c.Next(t); m["channel"] != "user.h1" {
		t.Fatalf("the socket got %v, want the API's notification", m)
	}
	for _, tc := range []struct {
		name, method, path, key, body string
		status                        int
	}{
		{"bad key", "POST", "publish", "wrong-key-0123456789abcdef", `{"channel":"user.h1","data":1}`, http.StatusUnauthorized},
		{"no key", "GET", "stats", "", "", http.StatusUnauthorized},
		{"oversized body", "POST", "publish", testAPIKey, `{"channel":"user.h1","data":"` + strings.Repeat("x", 70<<10) + `"}`, http.StatusRequestEntityTooLarge},
		{"malformed JSON", "POST", "publish", testAPIKey, `{"channel":`, http.StatusBadRequest},
	} {
		if code, m := call(tc.method, tc.path, tc.key, tc.body); code != tc.status {
			t.Errorf("%s: %d %v, want %d", tc.name, code, m, tc.status)
		}
	}
	code, m := call("GET", "presence?user=nobody", testAPIKey, "")
	if code != http.StatusOK || m["online"] != false {
		t.Errorf("presence of an unknown user: %d %v, want 200 and online false", code, m)
	}
	c.Silent(t, 50*time.Millisecond) // the refused publishes reached nobody
	if strings.Contains(f.gws[0].proc.log.String(), testAPIKey) {
		t.Error("the gateway logged its API key")
	}
}
