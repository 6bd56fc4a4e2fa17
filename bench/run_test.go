package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/bench/internal/engine"
	"github.com/wsgate/wsgate/bench/internal/payload"
	"github.com/wsgate/wsgate/bench/internal/report"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/wire"
)

func TestBroadcastAndJSON(t *testing.T) {
	g := newGateway(t)
	cfg := fastConfig(g, ScenarioBroadcast)
	cfg.Conns, cfg.Messages = 500, 10
	cfg.ServerMetrics = nil
	cfg.ServerPIDs = []int{os.Getpid()}
	res := runOK(t, cfg)
	checkDelivery(t, res, 500, 5000)
	if res.Client.ConnStructBytes == 0 || res.Client.HeapPerConn <= 0 {
		t.Errorf("client figures %+v", res.Client)
	}
	if res.Server.RSSAfter <= 0 || res.Server.CPUSeconds < 0 {
		t.Errorf("server figures %+v", res.Server)
	}

	path := filepath.Join(t.TempDir(), "r.json")
	if err := res.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	back, err := report.ReadResult(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(res)
	b, _ := json.Marshal(back)
	if string(a) != string(b) {
		t.Errorf("JSON round trip differs:\n%s\n%s", a, b)
	}
	if !reflect.DeepEqual(back.Delivery, res.Delivery) {
		t.Errorf("delivery %+v, want %+v", back.Delivery, res.Delivery)
	}
	var raw map[string]any
	_ = json.Unmarshal(a, &raw)
	for _, key := range []string{"label", "scenario", "started_at", "duration_s", "config", "connections", "delivery", "server", "client", "timeline", "machine"} {
		if _, ok := raw[key]; !ok {
			t.Errorf("JSON has no %q", key)
		}
	}
}

func TestConnect(t *testing.T) {
	g := newGateway(t)
	cfg := fastConfig(g, ScenarioConnect)
	cfg.Conns = 300
	cfg.Hold = Duration(100 * time.Millisecond)
	res := runOK(t, cfg)
	if res.Conns.Established != 300 || res.Conns.ConnectRatePerS <= 0 {
		t.Errorf("connections %+v", res.Conns)
	}
	if res.Delivery.Published != 0 || res.Server.RSSPerConn != -1 {
		t.Errorf("connect without a probe: delivery %+v server %+v", res.Delivery, res.Server)
	}
}

func TestUnicast(t *testing.T) {
	g := newGateway(t)
	cfg := fastConfig(g, ScenarioUnicast)
	cfg.Conns, cfg.Messages = 200, 300
	cfg.MsgRate = 1000
	res := runOK(t, cfg)
	checkDelivery(t, res, 200, 300)
}

func TestTopic(t *testing.T) {
	g := newGateway(t)
	cfg := fastConfig(g, ScenarioTopic)
	cfg.Topics, cfg.SubsPerTopic, cfg.Messages = 5, 40, 4
	cfg.MsgRate = 200
	res := runOK(t, cfg)
	checkDelivery(t, res, 200, 5*40*4)
	if res.Config.Conns != 200 {
		t.Errorf("conns %d, want 200", res.Config.Conns)
	}
}

func TestChurn(t *testing.T) {
	g := newGateway(t)
	cfg := fastConfig(g, ScenarioChurn)
	cfg.Conns, cfg.ChurnShare = 200, 0.1
	cfg.Hold = Duration(2 * time.Second)
	cfg.MsgRate = 10
	res := runOK(t, cfg)
	ch := res.Churn
	if ch == nil || ch.Reconnects < 20 || ch.ReconnectFailed != 0 || ch.ReconnectLatency.Count != ch.Reconnects {
		t.Fatalf("churn %+v", ch)
	}
	if res.Delivery.Delivered == 0 || res.Delivery.Lost != 0 || res.Delivery.Duplicated != 0 {
		t.Errorf("delivery %+v", res.Delivery)
	}
}

// TestWorkers runs two worker processes (this test binary, re-executed).
func TestWorkers(t *testing.T) {
	g := newGateway(t)
	cfg := fastConfig(g, ScenarioBroadcast)
	cfg.Conns, cfg.Messages, cfg.Workers = 300, 5, 2
	res := runOK(t, cfg)
	checkDelivery(t, res, 300, 1500)
	if res.Client.Workers != 2 {
		t.Errorf("workers %d", res.Client.Workers)
	}
}

func TestFloor(t *testing.T) {
	cfg := Config{Scenario: ScenarioFloor, Conns: 200, Messages: 5, MsgRate: 50, Settle: Duration(10 * time.Millisecond)}
	res := runOK(t, cfg)
	checkDelivery(t, res, 200, 1000)
	f := res.Floor
	if f == nil || f.Writes != 1000 || f.ShortWrites != 0 || f.CPUSeconds < 0 {
		t.Fatalf("floor %+v", f)
	}
	// the floor frame is the gateway's frame for the same payload
	frame, _ := wire.MessageFrame("broadcast", payload.Append(nil, 1, time.Now().UnixNano(), 200), wire.Position{})
	if want := len(frame); f.FrameBytes != want {
		t.Errorf("frame %d bytes, want %d", f.FrameBytes, want)
	}
}

func TestConnectFailures(t *testing.T) {
	g := newGateway(t)
	cfg := fastConfig(g, ScenarioConnect)
	cfg.Conns = 20
	cfg.URLs = []string{strings.Replace(g.url, "/ws", "/nowhere", 1)}
	res := runOK(t, cfg)
	if res.Conns.Established != 0 || res.Conns.FailedByReason["http_404"] != 20 {
		t.Errorf("connections %+v", res.Conns)
	}
}

// TestRetries: a ramp dial that fails is dialed again after a backoff
// (--retries), and the report counts the retries by reason. A proxy in
// front of the gateway answers 503 to the first dial of every user and
// passes the second through.
func TestRetries(t *testing.T) {
	g := newGateway(t)
	target, err := url.Parse(strings.Replace(g.url, "ws://", "http://", 1))
	if err != nil {
		t.Fatal(err)
	}
	target.Path = "" // the request's path goes through as it is
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	seen := map[string]bool{}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		mu.Lock()
		again := seen[user]
		seen[user] = true
		mu.Unlock()
		if !again {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	const conns = 20
	cfg := fastConfig(g, ScenarioConnect)
	cfg.Conns = conns
	cfg.URLs = []string{"ws://" + front.Listener.Addr().String() + "/ws"}
	cfg.Retries = 1
	res := runOK(t, cfg)
	if res.Conns.Established != conns || res.Conns.Failed != 0 {
		t.Errorf("connections %+v, want %d established after one retry each", res.Conns, conns)
	}
	if got := res.Conns.RetriedByReason["http_503"]; got != conns {
		t.Errorf("retried by reason %v, want http_503: %d", res.Conns.RetriedByReason, conns)
	}

	// Without retries, the same proxy fails every first dial for good.
	cfg.Retries = 0
	cfg.UserPrefix = "fresh"
	res = runOK(t, cfg)
	if res.Conns.Established != 0 || res.Conns.FailedByReason["http_503"] != conns || len(res.Conns.RetriedByReason) != 0 {
		t.Errorf("without --retries: connections %+v", res.Conns)
	}
}

// TestDeflate runs broadcast against a gateway that compresses frames from
// 256 bytes on: the json1k payload with and without --deflate, and the
// 200-byte pad payload, whose frames stay under the threshold.
func TestDeflate(t *testing.T) {
	const conns, messages = 200, 5
	body, err := payload.Template([]byte(payload.JSON1K))
	if err != nil {
		t.Fatal(err)
	}
	frame1k, _ := wire.MessageFrame("broadcast", payload.AppendTemplate(nil, 1, time.Now().UnixNano(), body), wire.Position{})
	json1kFrame := len(frame1k)
	for _, tc := range []struct {
		name           string
		kind           string
		deflate        bool
		inflateOnce    bool
		wantCompressed bool
	}{
		{"json1k", PayloadJSON1K, false, false, false},
		{"json1k deflate", PayloadJSON1K, true, false, true},
		{"json1k deflate inflate-once", PayloadJSON1K, true, true, true},
		{"pad200 deflate", PayloadPad, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t)
			cfg := fastConfig(g, ScenarioBroadcast)
			cfg.Conns, cfg.Messages = conns, messages
			cfg.PayloadKind, cfg.Deflate, cfg.InflateOnce = tc.kind, tc.deflate, tc.inflateOnce
			cfg.ServerMetrics = []string{g.metrics}
			res := runOK(t, cfg)
			checkDelivery(t, res, conns, conns*messages)
			d := res.Delivery
			var wantAccepted, wantCompressed int64
			if tc.deflate {
				wantAccepted = conns
			}
			if tc.wantCompressed {
				wantCompressed = conns * messages
			}
			if res.Conns.DeflateAccepted != wantAccepted || d.Compressed != wantCompressed {
				t.Errorf("deflate accepted by %d, %d compressed; want %d and %d", res.Conns.DeflateAccepted, d.Compressed, wantAccepted, wantCompressed)
			}
			switch {
			case tc.wantCompressed:
				if d.FrameBytesPerMsg > 0.8*float64(json1kFrame) {
					t.Errorf("%.0f B per compressed message, want well under %d", d.FrameBytesPerMsg, json1kFrame)
				}
			case tc.kind == PayloadJSON1K:
				if want := int64(conns * messages * json1kFrame); d.FrameBytes != want {
					t.Errorf("frame bytes %d, want %d", d.FrameBytes, want)
				}
			}
			// The gateway wrote the frames the clients read, and perhaps a
			// ping.
			if s := res.Server; s.WrittenBytes < d.FrameBytes || s.WrittenBytes > d.FrameBytes+d.FrameBytes/20 {
				t.Errorf("server wrote %d bytes, clients read %d in message frames", s.WrittenBytes, d.FrameBytes)
			}
			if c := res.Client; c.MeasuredCPUSeconds < 0 || c.CPUPerMillionDeliv < 0 {
				t.Errorf("client figures %+v", c)
			}
		})
	}
}

func TestDeflateDeclined(t *testing.T) {
	g := newGateway(t, func(c *gateway.Config) { c.DisableCompression = true })
	cfg := fastConfig(g, ScenarioBroadcast)
	cfg.Conns, cfg.Messages = 100, 3
	cfg.PayloadKind, cfg.Deflate = PayloadJSON1K, true
	res := runOK(t, cfg)
	checkDelivery(t, res, 100, 300)
	if res.Conns.DeflateAccepted != 0 || res.Delivery.Compressed != 0 {
		t.Errorf("accepted %d, compressed %d; want 0 and 0", res.Conns.DeflateAccepted, res.Delivery.Compressed)
	}
	if res.Server.WrittenBytes != -1 {
		t.Errorf("server wrote %d bytes without --server-metrics; want -1 (n/a)", res.Server.WrittenBytes)
	}
}

// TestDeflateContextTakeover: a server that accepts permessage-deflate but
// keeps its context across messages fails the handshake; the offer is
// Chromium's.
func TestDeflateContextTakeover(t *testing.T) {
	const conns = 3
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	offers := make(chan string, conns)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				offers <- req.Header.Get("Sec-WebSocket-Extensions")
				fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
					"Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
					acceptValue(req.Header.Get("Sec-WebSocket-Key")))
				_, _ = io.Copy(io.Discard, c) // until the client hangs up
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	res := runOK(t, Config{Scenario: ScenarioConnect, URLs: []string{"ws://" + ln.Addr().String() + "/ws"},
		Conns: conns, Deflate: true, Settle: Duration(time.Millisecond)})
	if got := res.Conns.FailedByReason[engine.ReasonDeflateTakeover]; got != conns {
		t.Errorf("failed by reason %v, want %d %s", res.Conns.FailedByReason, conns, engine.ReasonDeflateTakeover)
	}
	for range conns {
		if got := <-offers; got != "permessage-deflate; client_max_window_bits" {
			t.Errorf("offer %q", got)
		}
	}
}

// TestResume cuts every connection, publishes durable notifications to
// every user meanwhile, and checks that every connection gets each of
// them once after its resume, and what that cost the gateway in history
// requests: one batched lookup for many resumes, one read per connection
// that missed something.
func TestResume(t *testing.T) {
	for _, tc := range []struct {
		name          string
		conns, missed int
		workers       int
		inURL         bool
	}{
		{"missed 5", 200, 5, 1, false},
		{"nothing missed", 300, 0, 1, false},
		{"two workers", 100, 3, 2, false},
		{"positions in the upgrade, missed 5", 200, 5, 2, true},
		{"positions in the upgrade, nothing missed", 300, 0, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newDurableGateway(t)
			cfg := fastConfig(g, ScenarioResume)
			cfg.Conns, cfg.Missed, cfg.Workers, cfg.ResumeInURL = tc.conns, tc.missed, tc.workers, tc.inURL
			cfg.ServerMetrics = []string{g.metrics}
			cfg.NATSPID = os.Getpid() // the embedded server runs in this process
			res := runOK(t, cfg)
			// Before the cut each connection got its position; then every
			// user got missed more: each connection counts 1+missed seqs.
			checkDelivery(t, res, tc.conns, int64(tc.conns*(1+tc.missed)))
			rs := res.Resume
			if rs == nil {
				t.Fatal("no resume figures")
			}
			n, want := int64(tc.conns), int64(tc.conns*tc.missed)
			if rs.CutConnections != n || rs.Reconnected != n || rs.Resumed != n || rs.Complete != n {
				t.Errorf("cut %d reconnected %d resumed %d complete %d, want %d each", rs.CutConnections, rs.Reconnected, rs.Resumed, rs.Complete, n)
			}
			if rs.Published != want || rs.Expected != want || rs.Applied != want {
				t.Errorf("published %d expected %d applied %d, want %d each", rs.Published, rs.Expected, rs.Applied, want)
			}
			if rs.Lost != 0 || rs.Stray != 0 || rs.DupApplied != 0 || rs.GapDropped != 0 || rs.Unrecovered != 0 || rs.ResumeErrors != 0 {
				t.Errorf("resume %+v: want nothing lost, stray, duplicated, gapped, unrecovered or failed", rs)
			}
			if rs.ReconnectRatePerS <= 0 {
				t.Errorf("reconnect rate %v", rs.ReconnectRatePerS)
			}
			if rs.RecoveryLatency.Count != n || rs.RecoveryS <= 0 || rs.RecoveryS < rs.StormS {
				t.Errorf("recovery %+v, %.3f s after the cut, storm %.3f s", rs.RecoveryLatency, rs.RecoveryS, rs.StormS)
			}
			h := rs.HistoryRequests
			if h["last"] < 1 || h["last"] > float64(n) || h["marks"] != 0 {
				t.Errorf("history requests %v: want batched lookups, no marks (every resume had a position)", h)
			}
			// A replay is read alone (read) or with others of its storm
			// (scan, when 16 or more wait): at most one request of its own.
			if reads := h["read"] + h["scan"]; tc.missed > 0 && (reads < 1 || h["read"] > float64(n)) || tc.missed == 0 && reads != 0 {
				t.Errorf("history reads %v and scans %v, want at most one read per connection that missed something, none without", h["read"], h["scan"])
			}
			if rs.ServerResumes["recovered"] != float64(n) || rs.ServerReplayed != float64(want) {
				t.Errorf("server resumes %v replayed %v", rs.ServerResumes, rs.ServerReplayed)
			}
			if rs.NATSCPUSeconds < 0 || rs.NATSCPUPerResumeUs < 0 {
				t.Errorf("NATS CPU %v s, %v µs per resume: want measured", rs.NATSCPUSeconds, rs.NATSCPUPerResumeUs)
			}
			if rs.RequestsPerResume <= 0 || rs.CPUPerResumeUs <= 0 {
				t.Errorf("requests per resume %v, CPU per resume %v µs", rs.RequestsPerResume, rs.CPUPerResumeUs)
			}
		})
	}
}

// TestResumeRestart cuts by restarting the gateway (--cut-cmd): the
// clients see their connections closed by the server, reconnect to the
// new gateway and resume; nothing published meanwhile is lost.
func TestResumeRestart(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("no curl for --cut-cmd")
	}
	g := newRestartable(t)
	cfg := Config{Scenario: ScenarioResume, URLs: []string{g.url}, NATS: g.srv.ClientURL(), Rate: 5000,
		Settle: Duration(10 * time.Millisecond), Timeout: Duration(10 * time.Second),
		Conns: 150, Missed: 4, CutCmd: curl + " -fsS " + g.restartURL, ServerMetrics: []string{g.metricsURL}}
	res := runOK(t, cfg)
	// The restart closed every connection: that is the cut.
	var closed int64
	for _, n := range res.Conns.DroppedByReason {
		closed += n
	}
	if closed != 150 {
		t.Errorf("dropped %v, want the 150 the restart closed", res.Conns.DroppedByReason)
	}
	res.Conns.DroppedByReason = nil
	checkDelivery(t, res, 150, 150*5)
	rs := res.Resume
	if rs.Cut != "server" || rs.CutConnections != 150 || rs.Complete != 150 || rs.Lost != 0 || rs.Stray != 0 || rs.DupApplied != 0 {
		t.Errorf("resume %+v", rs)
	}
	if h := rs.HistoryRequests; h["read"]+h["scan"] < 1 || h["read"] > 150 || h["last"] < 1 {
		t.Errorf("history requests %v of the restarted gateway", h)
	}
	if g.starts != 2 {
		t.Errorf("the gateway started %d times, want 2", g.starts)
	}
}

// TestResumeControl is the storm without resumes, against a gateway
// without durable notifications: everyone reconnects, nothing is asked
// of the history.
func TestResumeControl(t *testing.T) {
	g := newGateway(t)
	cfg := fastConfig(g, ScenarioResume)
	cfg.Conns, cfg.NoResume = 200, true
	cfg.ServerMetrics = []string{g.metrics}
	res := runOK(t, cfg)
	rs := res.Resume
	if rs.CutConnections != 200 || rs.Reconnected != 200 || rs.Complete != 200 || rs.Resumed != 0 || rs.ReconnectRatePerS <= 0 {
		t.Errorf("resume %+v", rs)
	}
	if h := rs.HistoryRequests; h["last"]+h["read"]+h["marks"] != 0 {
		t.Errorf("history requests %v without resumes", h)
	}
	if res.Delivery.Published != 0 || res.Delivery.Delivered != 0 {
		t.Errorf("delivery %+v: nothing is published", res.Delivery)
	}
}

// TestDurableDelivery publishes unicast and broadcast notifications
// durably: the frames carry the stream's seq, prev and epoch before data,
// and the accounting still reads the payload's seq.
func TestDurableDelivery(t *testing.T) {
	for _, sc := range []string{ScenarioUnicast, ScenarioBroadcast} {
		t.Run(sc, func(t *testing.T) {
			g := newDurableGateway(t)
			cfg := fastConfig(g, sc)
			cfg.Conns, cfg.Messages, cfg.MsgRate, cfg.Durable = 100, 20, 200, true
			res := runOK(t, cfg)
			want := int64(20)
			if sc == ScenarioBroadcast {
				want = 100 * 20
			}
			checkDelivery(t, res, 100, want)
		})
	}
}
