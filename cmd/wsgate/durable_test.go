package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// startDurableGateway starts a gateway with durable notifications, its
// JetStream files in a directory of the test's own, and returns it with
// the WebSocket address and the NATS URL it logged.
func startDurableGateway(t *testing.T, bin string, args ...string) (g *gatewayProc, addr, natsURL string) {
	t.Helper()
	g = startGateway(t, bin, append([]string{"--durable", "--nats-store-dir", t.TempDir(), "--embedded-nats-listen", "127.0.0.1:0"}, args...)...)
	return g, g.waitField(t, "gateway listening", "addr"), g.waitField(t, "gateway listening", "nats")
}

// `wsgate publish --durable` stores the notification, prints its
// sequence, and the gateway delivers it live; the same --id again is a
// duplicate, neither stored nor delivered again. `wsgate stream info`
// shows the stream the gateway created at start.
func TestPublishDurable(t *testing.T) {
	bin := buildBinary(t)
	g, addr, natsURL := startDurableGateway(t, bin)
	g.waitLog(t, "durable stream ready")
	c, err := dialWelcome(t.Context(), ws.DefaultDialer, "ws://"+addr+"/ws?user=42", time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	nats := "--nats-url=" + natsURL
	for i, want := range []string{
		"stored 13 bytes as durable.notify.user.42 seq 1\n",
		"duplicate of seq 1 on durable.notify.user.42: not stored again\n",
	} {
		r := runBinary(t, bin, nil, "publish", nats, "--durable", "--id", "order-7", "--ttl", "10m", "--user", "42", `{"shipped":7}`)
		if r.code != 0 || r.stdout != want {
			t.Fatalf("publish %d: status %d, printed %q, want %q\n%s", i+1, r.code, r.stdout, want, r.stderr)
		}
	}
	m, err := c.Read(time.Now().Add(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := m["data"].(map[string]any); m["channel"] != "user.42" || data["shipped"] != 7.0 {
		t.Fatalf("the client got %v", m)
	}
	// Its position: the first in the stream, and the stream's epoch, which
	// the gateway looked up at start.
	if epoch, _ := m["epoch"].(float64); m["seq"] != 1.0 || m["prev"] != 0.0 || time.Since(time.UnixMilli(int64(epoch))) > time.Minute {
		t.Fatalf("position seq %v, prev %v, epoch %v; want 1, 0 and the stream's creation", m["seq"], m["prev"], m["epoch"])
	}
	c.Silent(t, 100*time.Millisecond) // the duplicate was not delivered

	r := runBinary(t, bin, nil, "stream", "info", nats)
	for _, want := range []string{"stream NOTIFY,", "durable.notify.>", "durable.notify.> as notify.>", "1000 messages", "72h0m0s", "messages           1,"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("stream info: status %d, output lacks %q:\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}
}

// Where the stream is missing a durable publish fails with status 1 and
// says why; `wsgate stream apply` creates it, after which it works.
// Without JetStream at all the error says that instead.
func TestPublishDurableNoStream(t *testing.T) {
	bin := buildBinary(t)
	g, _, natsURL := startDurableGateway(t, bin, "--durable-manage-stream=false")
	g.waitLog(t, "jetstream store")
	nats := "--nats-url=" + natsURL
	publish := []string{"publish", nats, "--durable", "--user", "42", "x"}

	r := runBinary(t, bin, nil, publish...)
	if want := "wsgate: bus: durable publish to durable.notify.user.42: no stream stores this subject\n"; r.code != 1 || r.stderr != want {
		t.Fatalf("durable publish without the stream: status %d, %q, want status 1, %q", r.code, r.stderr, want)
	}
	if r := runBinary(t, bin, nil, "stream", "info", nats); r.code != 1 || !strings.Contains(r.stderr, "bus: stream NOTIFY: no such stream") {
		t.Fatalf("stream info without the stream: status %d\n%s", r.code, r.stderr)
	}
	if r := runBinary(t, bin, nil, "stream", "apply", nats, "--durable-max-msgs-per-channel", "10", "--durable-max-age", "1m"); r.code != 0 || !strings.Contains(r.stdout, "10 messages") {
		t.Fatalf("stream apply: status %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runBinary(t, bin, nil, publish...); r.code != 0 || r.stdout != "stored 1 bytes as durable.notify.user.42 seq 1\n" {
		t.Fatalf("durable publish after stream apply: status %d, %q\n%s", r.code, r.stdout, r.stderr)
	}

	volatile := startGateway(t, bin, "--embedded-nats-listen", "127.0.0.1:0") // --durable=false
	nats = "--nats-url=" + volatile.waitField(t, "gateway listening", "nats")
	r = runBinary(t, bin, nil, "publish", nats, "--durable", "--user", "42", "x")
	if want := "wsgate: bus: durable publish to durable.notify.user.42: jetstream unavailable\n"; r.code != 1 || r.stderr != want {
		t.Fatalf("durable publish without JetStream: status %d, %q, want status 1, %q", r.code, r.stderr, want)
	}
	if r := runBinary(t, bin, nil, "publish", nats, "--user", "42", "x"); r.code != 0 {
		t.Fatalf("volatile publish: status %d\n%s", r.code, r.stderr)
	}
}

// A gateway that cannot apply the stream (its NATS runs no JetStream) says
// so once, stays ready and delivers volatile notifications.
func TestDurableStreamNotApplied(t *testing.T) {
	bin := buildBinary(t)
	natsURL := startNATS(t)
	g := startGateway(t, bin, "--durable", "--nats-url", natsURL)
	line := g.waitLog(t, "durable stream not applied")
	if e, _ := line["error"].(string); e != "bus: stream NOTIFY: jetstream unavailable" {
		t.Errorf("logged error %q", e)
	}
	if line["level"] != "error" {
		t.Errorf("logged at %v, want error", line["level"])
	}
	admin := g.waitField(t, "admin listening", "addr")
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz %s without the stream, want 200", resp.Status)
	}
	addr := g.waitField(t, "gateway listening", "addr")
	c, err := dialWelcome(t.Context(), ws.DefaultDialer, "ws://"+addr+"/ws?user=42", time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r := runBinary(t, bin, nil, "publish", "--nats-url", natsURL, "--user", "42", "volatile"); r.code != 0 {
		t.Fatalf("volatile publish: status %d\n%s", r.code, r.stderr)
	}
	if m, err := c.Read(time.Now().Add(5 * time.Second)); err != nil || m["data"] != "volatile" {
		t.Fatalf("the client got %v, %v", m, err)
	}
	if n := strings.Count(g.log.String(), "durable stream not applied"); n != 1 {
		t.Errorf("logged %d times, want once", n)
	}
}
