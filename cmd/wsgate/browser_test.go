//go:build integration && linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/internal/wstest"
)

// browserLimit bounds a whole browser test: Chromium is killed after it,
// whatever it is doing.
const browserLimit = 30 * time.Second

// TestBrowserClient runs the real gateway binary and a headless Chromium
// (Debian's chromium, found on PATH) whose page, testdata/browser.html,
// opens new WebSocket(...), gets its welcome, subscribes to topic.news and
// receives a user, a topic and a broadcast notification published through
// NATS; then SIGTERM drains the gateway and the page sees close 1001. It
// runs once with permessage-deflate, which Chromium always offers, and once
// with the gateway's --compression=false.
//
// Chromium is driven through its DevTools protocol with chromedp: the
// protocol is large and changes with each Chromium, and chromedp tracks it
// with generated types (cdproto), speaks it over --remote-debugging-pipe,
// and starts and reaps the browser; it brings in nothing else but a JSON
// package.
func TestBrowserClient(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("no chromium on PATH or in /usr/bin (bash .ci/run installs it)")
	}
	bin := buildBinary(t)
	browser := startBrowser(t, chromium)
	site := httptest.NewServer(http.FileServerFS(os.DirFS("testdata")))
	t.Cleanup(site.Close)

	for _, tc := range []struct {
		name       string
		flags      []string
		deflated   bool    // the gateway must accept Chromium's offer
		compressed float64 // notifications the gateway must have compressed
	}{
		// Of the three notifications only the topic one is over the
		// threshold.
		{"deflate", []string{"--compress-threshold", "256"}, true, 1},
		{"no-compression", []string{"--compression=false"}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, bin, append([]string{"--embedded-nats-listen", "127.0.0.1:0",
				"--drain-delay", "0", "--drain-timeout", "0"}, tc.flags...)...)
			gw := g.waitField(t, "gateway listening", "addr")
			natsURL := g.waitField(t, "gateway listening", "nats")
			admin := g.waitField(t, "admin listening", "addr")
			p := openPage(t, browser, site.URL+"/browser.html?ws="+url.QueryEscape("ws://"+gw+"/ws?user=42"))

			got := p.waitMessages(t, 2)
			if got[0]["type"] != "welcome" || got[0]["user"] != "42" {
				t.Fatalf("first message %v, want the welcome of user 42", got[0])
			}
			if want := (map[string]any{"type": "subscribed", "channel": "topic.news", "ref": 1.0}); !reflect.DeepEqual(got[1], want) {
				t.Fatalf("answer to subscribe: %v, want %v", got[1], want)
			}

			p.checkExtensions(t, tc.deflated)

			want := notifications("42")
			publishAll(t, natsURL, want)
			checkNotifications(t, p.waitMessages(t, 2+len(want))[2:], want)
			n, err := scrapeCounter(&http.Client{Timeout: 5 * time.Second}, "http://"+admin+"/metrics", "wsgate_notifications_compressed_total")
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.compressed {
				t.Errorf("the gateway compressed %v notifications, want %v", n, tc.compressed)
			}

			// Drain: the page sees the close handshake with 1001.
			if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			closed := p.waitClosed(t)
			if closed.Code != 1001 || closed.Reason != "server going away" || !closed.WasClean {
				t.Fatalf("on SIGTERM the page saw close %+v, want a clean 1001 %q", closed, "server going away")
			}
			if err := g.wait(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatalf("exit after SIGTERM: %v", err)
			}
		})
	}
}

// findChromium returns the Chromium binary, or "".
func findChromium() string {
	for _, name := range []string{"chromium", "/usr/bin/chromium"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	return ""
}

// startBrowser starts headless Chromium and returns a chromedp context
// for it; each page opens a tab with openPage. The browser is killed
// after browserLimit or when the test ends, and its output is shown if the
// test failed.
func startBrowser(t *testing.T, chromium string) context.Context {
	t.Helper()
	out := &logBuffer{}
	ctx, cancelLimit := context.WithTimeout(context.Background(), browserLimit)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, // the tests may run as root
		chromedp.DisableGPU,
		chromedp.CombinedOutput(out),
	)...)
	ctx, cancelBrowser := chromedp.NewContext(ctx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc() // waits for the process to exit
		cancelLimit()
		if t.Failed() {
			t.Logf("chromium output:\n%s", out)
		}
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", chromium, err)
	}
	return ctx
}

// page is a tab of the browser with testdata/browser.html loaded.
type page struct {
	ctx context.Context // chromedp context of the tab

	mu       sync.Mutex // protects request and response
	request  network.Headers
	response *network.WebSocketResponse
}

// openPage opens a tab in browser, records the headers of the WebSocket
// handshakes it makes, and loads pageURL in it.
func openPage(t *testing.T, browser context.Context, pageURL string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	p := &page{ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventWebSocketWillSendHandshakeRequest:
			p.request = ev.Request.Headers
		case *network.EventWebSocketHandshakeResponseReceived:
			p.response = ev.Response
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
		t.Fatalf("loading %s: %v", pageURL, err)
	}
	return p
}

// eval evaluates a JavaScript expression in the page, within 5s.
func eval[T any](p *page, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// closeEvent is the page's record of the WebSocket's close event.
type closeEvent struct {
	Code     int    `json:"code"`
	Reason   string `json:"reason"`
	WasClean bool   `json:"wasClean"`
}

// waitMessages waits up to 10s for the page to have received n messages
// and returns them all. It fails at once if the socket closes first.
func (p *page) waitMessages(t *testing.T, n int) []map[string]any {
	t.Helper()
	var got []map[string]any
	wstest.CheckFor(t, 10*time.Second, pollEvery, func() error {
		var err error
		if got, err = eval[[]map[string]any](p, "window.got"); err != nil {
			return err
		}
		if len(got) >= n {
			return nil
		}
		if closed, err := eval[*closeEvent](p, "window.closeEvent"); err == nil && closed != nil {
			t.Fatalf("the socket closed (%+v) after %d messages %v, want %d", *closed, len(got), got, n)
		}
		return fmt.Errorf("the page has %d messages %v, want %d", len(got), got, n)
	})
	return got
}

// waitClosed waits up to 10s for the page's close event.
func (p *page) waitClosed(t *testing.T) closeEvent {
	t.Helper()
	var closed *closeEvent
	wstest.CheckFor(t, 10*time.Second, pollEvery, func() error {
		var err error
		if closed, err = eval[*closeEvent](p, "window.closeEvent"); err != nil {
			return err
		}
		if closed == nil {
			return errors.New("the page's socket is still open")
		}
		return nil
	})
	return *closed
}

// checkExtensions checks that Chromium offered permessage-deflate and that
// the extension the gateway's 101 named, if any, is what the page's
// ws.extensions reports. deflated says whether the gateway must accept.
func (p *page) checkExtensions(t *testing.T, deflated bool) {
	t.Helper()
	exts, err := eval[string](p, "window.extensions")
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	offered, _ := header(p.request, "Sec-WebSocket-Extensions")
	resp := p.response
	p.mu.Unlock()
	if resp == nil {
		t.Fatal("no WebSocket handshake response event from the browser")
	}
	accepted, _ := header(resp.Headers, "Sec-WebSocket-Extensions")
	t.Logf("Chromium offered %q; the gateway answered %d with %q; ws.extensions is %q", offered, resp.Status, accepted, exts)
	if !strings.Contains(offered, "permessage-deflate") {
		t.Errorf("Chromium offered extensions %q, want permessage-deflate", offered)
	}
	if exts != accepted {
		t.Errorf("ws.extensions is %q, but the gateway answered %q", exts, accepted)
	}
	if got := strings.HasPrefix(accepted, "permessage-deflate"); got != deflated {
		t.Errorf("the gateway answered extensions %q; want permessage-deflate: %v", accepted, deflated)
	}
}

// header returns the value of the header name in h, whatever its case.
func header(h network.Headers, name string) (string, bool) {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			s, ok := v.(string)
			return s, ok
		}
	}
	return "", false
}

// publishAll publishes each payload of msgs on its channel through NATS at
// natsURL: user.<id>, topic.<name> or broadcast.
func publishAll(t *testing.T, natsURL string, msgs map[string]string) {
	t.Helper()
	nc, err := bus.Dial(natsURL, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pub := bus.NewPublisher(nc, "notify")
	for ch, payload := range msgs {
		var err error
		if id, ok := strings.CutPrefix(ch, "user."); ok {
			err = pub.User(id, []byte(payload))
		} else if name, ok := strings.CutPrefix(ch, "topic."); ok {
			err = pub.Topic(name, []byte(payload))
		} else if ch == "broadcast" {
			err = pub.Broadcast([]byte(payload))
		} else {
			err = fmt.Errorf("no such channel %q", ch)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// notifications returns a notification for each kind of channel a client
// of user id gets, as channel to payload. The topic one is 5 KB, well over
// the compression threshold; the other two are under it.
func notifications(id string) map[string]string {
	return map[string]string{
		"user." + id: `{"n":1}`,
		"topic.news": fmt.Sprintf(`{"text":%q}`, strings.Repeat("news ", 1000)),
		"broadcast":  `"maintenance at 22:00"`,
	}
}

// checkNotifications checks that got, the messages a client received, are
// the notifications want in any order: the gateway keeps the order of each
// channel, not across channels.
func checkNotifications(t *testing.T, got []map[string]any, want map[string]string) {
	t.Helper()
	want = maps.Clone(want)
	for _, m := range got {
		ch, _ := m["channel"].(string)
		payload, ok := want[ch]
		if m["type"] != "message" || !ok {
			t.Fatalf("unexpected message %v", m)
		}
		var data any
		if err := json.Unmarshal([]byte(payload), &data); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m["data"], data) {
			t.Errorf("channel %s: data %.80v, want %.80s", ch, m["data"], payload)
		}
		delete(want, ch)
	}
	if len(want) > 0 {
		t.Fatalf("got %d messages but none on %v", len(got), want)
	}
}
