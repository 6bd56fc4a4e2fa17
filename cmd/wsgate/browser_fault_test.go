//go:build integration && linux

package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/internal/wstest"
)

// The browser fault tests run the bundled JavaScript client
// (cmd/wsgate/demo/wsgate.min.js, which TestDemoBundle holds to
// clients/js's sources) in headless Chromium, on testdata/jsfault.html,
// against the real binary while it is killed, while NATS restarts, and
// while a token expires. The page records every durable seq it applies
// and every reconnect delay; the tests read the record with eval.

// faultBackoff is the backoff the page is given, in ms: small, so that
// the retries while a gateway is down show several jittered windows
// within the test's time.
const faultMin, faultMax = 100, 800

// faultSite serves the fault page, the client's bundle beside it, and
// /token?user=ID&reason=R: an HS256 token for user ID, signed with
// testSecret. The first token of each user expired 4 s ago: the gateway
// accepts it within its 5 s leeway and closes the connection with 1008
// "token expired" about a second later. Every later one is valid for an
// hour. The reasons asked, per user, are in the returned map.
func faultSite(t *testing.T) (*httptest.Server, func(user string) []string) {
	t.Helper()
	page, err := os.ReadFile("testdata/jsfault.html")
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := demoFiles.ReadFile("demo/wsgate.min.js")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // protects asked
	asked := map[string][]string{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jsfault.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	mux.HandleFunc("GET /wsgate.min.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write(bundle)
	})
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		mu.Lock()
		asked[user] = append(asked[user], r.URL.Query().Get("reason"))
		first := len(asked[user]) == 1
		mu.Unlock()
		exp := time.Now().Add(time.Hour)
		if first {
			exp = time.Now().Add(-4 * time.Second)
		}
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": user, "exp": exp.Unix()}).SignedString([]byte(testSecret))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write([]byte(s))
	})
	site := httptest.NewServer(mux)
	t.Cleanup(site.Close)
	return site, func(user string) []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(asked[user])
	}
}

// faultPage opens the fault page on a client of wsURL; tokenUser, when
// not "", makes it take its tokens from the site's /token for that user.
func faultPage(t *testing.T, browser context.Context, site *httptest.Server, wsURL, tokenUser string) *page {
	t.Helper()
	q := url.Values{"ws": {wsURL}, "min": {fmt.Sprint(faultMin)}, "max": {fmt.Sprint(faultMax)}}
	if tokenUser != "" {
		q.Set("token", "/token?user="+url.QueryEscape(tokenUser))
	}
	p := openPage(t, browser, site.URL+"/jsfault.html?"+q.Encode())
	p.waitJS(t, `window.rec?.welcomes >= 1`, "the page's first welcome")
	return p
}

// waitApplied waits up to 20s for the page to have applied exactly the
// durable seqs want, in order.
func (p *page) waitApplied(t *testing.T, want []uint64) {
	t.Helper()
	var got []uint64
	wstest.CheckFor(t, 20*time.Second, pollEvery, func() error {
		var err error
		if got, err = eval[[]uint64](p, "rec.applied"); err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("the page applied %d seqs, last %v; want %d, last %v", len(got), tail(got), len(want), tail(want))
		}
		return nil
	})
	lost, err := eval[[]map[string]any](p, "rec.lost")
	if err != nil {
		t.Fatal(err)
	}
	if len(lost) > 0 {
		t.Errorf("the page was told of lost notifications: %v", lost)
	}
}

// durableRounds publishes a durable notification for user every 10ms,
// with a message id, retrying each until it is stored, and returns the
// stored seqs on done. After round mark[i] it sends on marks and goes on:
// the test kills or restarts something meanwhile. Once stop is closed it
// publishes extra more rounds and ends.
func durableRounds(ctx context.Context, t *testing.T, natsURL, user string, mark []int, marks chan<- struct{}, stop <-chan struct{}, extra int) <-chan []uint64 {
	t.Helper()
	nc, err := bus.Dial(natsURL, "browser-fault-publisher")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	pub := bus.NewPublisher(nc, "")
	done := make(chan []uint64, 1)
	go func() {
		var stored []uint64
		defer func() { done <- stored }()
		after := -1
		for r := 0; after < extra; r++ {
			if slices.Contains(mark, r) {
				marks <- struct{}{}
			}
			if after < 0 {
				select {
				case <-stop:
					after = 0
				default:
				}
			} else {
				after++
			}
			seq, err := publishUntilStored(ctx, pub, user, fmt.Sprintf("%s-%d", user, r))
			if err != nil {
				return // ctx ended: the test is over
			}
			stored = append(stored, seq)
			sleepCtx(ctx, 10*time.Millisecond)
		}
	}()
	return done
}

// A gateway killed with SIGKILL twice while durable notifications are
// published, and started again each time on the same address and
// JetStream files: the page applies every stored seq exactly once, in
// order, and its reconnect delays are jittered within the backoff's
// windows.
func TestBrowserClientSurvivesKill(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("no chromium on PATH or in /usr/bin (bash .ci/run installs it)")
	}
	bin := buildBinary(t)
	site, _ := faultSite(t)
	store, listen, natsAddr := t.TempDir(), freeAddr(t), freeAddr(t)
	start := func() *gatewayProc {
		g := startGateway(t, bin, "--durable", "--nats-store-dir", store, "--embedded-nats-listen", natsAddr, "--listen", listen)
		g.waitLog(t, "durable stream ready")
		return g
	}
	g := start()
	browser := startBrowser(t, chromium)
	p := faultPage(t, browser, site, "ws://"+listen+"/ws?user=b1", "")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	marks := make(chan struct{})
	stop := make(chan struct{})
	close(stop) // ends after the marks and these rounds
	done := durableRounds(ctx, t, "nats://"+natsAddr, "b1", []int{30, 60}, marks, stop, 90)
	for range 2 {
		<-marks
		if err := g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-g.exited
		time.Sleep(300 * time.Millisecond) // down for a while: the page retries, publishes are retried
		g = start()
	}
	stored := <-done
	p.waitApplied(t, stored)

	type delay struct{ Delay, Attempt, Code int }
	delays, err := eval[[]delay](p, "rec.delays")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d seqs applied; reconnect delays (ms, attempt, close code): %v", len(stored), delays)
	if len(delays) < 3 {
		t.Fatalf("%d reconnect delays over two kills, want one per failed attempt, at least 3", len(delays))
	}
	distinct := map[int]bool{}
	for _, d := range delays {
		// Attempt n (counted after it) waits within [0, min(max, min·2^(n-1))).
		window := min(faultMax, faultMin<<max(d.Attempt-1, 0))
		if d.Delay < 0 || d.Delay >= window || d.Delay > faultMax {
			t.Errorf("a delay of %d ms for attempt %d, want within [0, %d)", d.Delay, d.Attempt, window)
		}
		distinct[d.Delay] = true
	}
	if len(distinct) == 1 {
		t.Errorf("every reconnect delay is %d ms: no jitter", delays[0].Delay)
	}
	if n, _ := eval[int](p, "rec.welcomes"); n < 3 {
		t.Errorf("%d welcomes, want one more after each kill", n)
	}
}

// An external NATS server with JetStream shut down while durable
// notifications are published, and started again on the same address and
// files: the gateway reconnects by itself, the page stays connected to it
// and resumes from the gap the next live frame shows (retrying resumes
// answered unavailable meanwhile), and it applies every stored seq
// exactly once, in order.
func TestBrowserClientSurvivesNATSRestart(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("no chromium on PATH or in /usr/bin (bash .ci/run installs it)")
	}
	bin := buildBinary(t)
	site, _ := faultSite(t)
	store, natsAddr, listen := t.TempDir(), freeAddr(t), freeAddr(t)
	natsURL := "nats://" + natsAddr
	srv := runJetStream(t, natsAddr, store)
	g := startGateway(t, bin, "--durable", "--nats-url", natsURL, "--listen", listen)
	g.waitLog(t, "durable stream ready")
	browser := startBrowser(t, chromium)
	p := faultPage(t, browser, site, "ws://"+listen+"/ws?user=b2", "")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	marks := make(chan struct{})
	back := make(chan struct{})
	done := durableRounds(ctx, t, natsURL, "b2", []int{20}, marks, back, 10)
	<-marks
	srv.Shutdown()
	srv.WaitForShutdown()
	time.Sleep(300 * time.Millisecond) // down for a while: publishes are retried
	runJetStream(t, natsAddr, store)
	// Until the gateway is back on NATS (its reconnect waits 1-2 s), a
	// publisher that is already connected stores notifications it misses:
	// the page learns of them from the gap before its next live frame, and
	// resumes.
	missed := publishWhile(ctx, t, natsURL, "b2", func() bool { return g.log.find("nats reconnected") == nil })
	g.waitLogWithin(t, "nats reconnected", 20*time.Second)
	close(back)
	stored := append(<-done, missed...)
	slices.Sort(stored) // the stream's order
	p.waitApplied(t, stored)
	resumed, err := eval[[]map[string]any](p, "rec.resumed")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d seqs applied, %d stored while the gateway was away from NATS; resumes answered: %v", len(stored), len(missed), resumed)
	if len(missed) > 0 && len(resumed) == 0 {
		t.Error("the page applied what the gateway missed without a resume")
	}
}

// publishWhile publishes durable notifications for user on a connection
// of its own, as fast as they are stored, while more says so (at most 5 s),
// and returns their seqs.
func publishWhile(ctx context.Context, t *testing.T, natsURL, user string, more func() bool) []uint64 {
	t.Helper()
	nc, err := bus.Dial(natsURL, "browser-fault-publisher-2")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pub := bus.NewPublisher(nc, "")
	var seqs []uint64
	for deadline := time.Now().Add(5 * time.Second); more() && time.Now().Before(deadline); {
		seq, err := publishUntilStored(ctx, pub, user, fmt.Sprintf("%s-while-%d", user, len(seqs)))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
		sleepCtx(ctx, 20*time.Millisecond)
	}
	return seqs
}

// A page whose first token expires while it is connected: the gateway
// closes with 1008 "token expired", the client asks its token provider
// (which fetches from the test's /token) for a fresh one with reason
// "expired", reconnects at once, and gets a notification published
// after the expiry.
func TestBrowserClientTokenRefresh(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("no chromium on PATH or in /usr/bin (bash .ci/run installs it)")
	}
	bin := buildBinary(t)
	site, asked := faultSite(t)
	cmd := startCmdEnv(bin, []string{"WSGATE_JWT_SECRET=" + testSecret},
		append(append([]string(nil), gatewayFlags...), "--auth=jwt", "--embedded-nats-listen", "127.0.0.1:0")...)
	g := startCmd(t, cmd)
	gw := g.waitField(t, "gateway listening", "addr")
	natsURL := g.waitField(t, "gateway listening", "nats")
	browser := startBrowser(t, chromium)
	p := faultPage(t, browser, site, "ws://"+gw+"/ws", "t1")

	p.waitJS(t, `rec.welcomes >= 2 && rec.states.some((s) => s.code === 1008 && s.reason === "token expired")`,
		"a close 1008 token expired, then a second welcome")
	publishAll(t, natsURL, map[string]string{"user.t1": `{"after":"refresh"}`})
	p.waitJS(t, `rec.volatile.some((d) => d?.after === "refresh")`, "the notification published after the refresh")
	if got, want := asked("t1"), []string{"connect", "expired"}; !slices.Equal(got, want) {
		t.Errorf("the token endpoint was asked for %v, want %v", got, want)
	}
	if n, _ := eval[int](p, "rec.delays[0]?.delay ?? -1"); n != 0 {
		t.Errorf("the reconnect after 1008 token expired waited %d ms, want 0: a fresh token needs no backoff", n)
	}
}

// startCmdEnv returns the command that runs bin with args and env added to
// the test's environment, for startCmd.
func startCmdEnv(bin string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}
