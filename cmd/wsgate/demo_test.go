//go:build integration && linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wsgate/wsgate/internal/wstest"
)

// TestDemoBundle checks that the bundle the demo page embeds
// (cmd/wsgate/demo/wsgate.min.js and its source map) is what the
// JavaScript client's sources build: `npm run bundle` in clients/js, with
// the esbuild of its package-lock.json. A change to clients/js/src that
// was not followed by `make js-bundle` fails here.
func TestDemoBundle(t *testing.T) {
	npm := needNPM(t)
	if stale(filepath.Join(jsClientDir, "node_modules", ".package-lock.json"), filepath.Join(jsClientDir, "package-lock.json")) {
		runNPM(t, npm, 5*time.Minute, nil, "ci", "--no-audit", "--no-fund")
	}
	runNPM(t, npm, 2*time.Minute, nil, "run", "bundle")
	for _, name := range []string{"wsgate.min.js", "wsgate.min.js.map"} {
		built, err := os.ReadFile(filepath.Join(jsClientDir, "dist", name))
		if err != nil {
			t.Fatal(err)
		}
		embedded, err := demoFiles.ReadFile("demo/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(built, embedded) {
			t.Errorf("cmd/wsgate/demo/%s (%d bytes) is not what clients/js builds (%d bytes): run make js-bundle and commit it", name, len(embedded), len(built))
		}
	}
}

// needNPM returns npm, or skips the test where Node or npm is missing.
func needNPM(t *testing.T) string {
	t.Helper()
	_, err1 := exec.LookPath("node")
	npm, err2 := exec.LookPath("npm")
	if err1 != nil || err2 != nil {
		t.Skip("no node or npm on PATH (bash .ci/run installs nodejs and npm from Debian)")
	}
	return npm
}

// The demo page is served on the admin listener in development mode
// only: under JWT, /demo/ is an unknown path like any other, and the
// admin endpoints are unchanged either way.
func TestDemoServedInDevelopmentOnly(t *testing.T) {
	bin := buildBinary(t)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		demo int // the status of the demo's paths
	}{
		{"auth none", nil, nil, http.StatusOK},
		{"auth jwt", []string{"WSGATE_JWT_SECRET=" + testSecret}, []string{"--auth=jwt"}, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, append(append([]string(nil), gatewayFlags...), append([]string{"--embedded-nats-listen", "127.0.0.1:0"}, tc.args...)...)...)
			cmd.Env = append(os.Environ(), tc.env...)
			g := startCmd(t, cmd)
			admin := g.waitField(t, "admin listening", "addr")
			g.waitLog(t, "gateway listening")
			for _, path := range []string{"/demo/", "/demo/demo.js", "/demo/wsgate.min.js", "/demo/config.json"} {
				if code := httpStatus(t, "http://"+admin+path); code != tc.demo {
					t.Errorf("GET %s: %d, want %d", path, code, tc.demo)
				}
			}
			if code := httpStatus(t, "http://"+admin+"/healthz"); code != http.StatusOK {
				t.Errorf("GET /healthz: %d, want 200", code)
			}
		})
	}
}

// The demo page's form posts to the HTTP API on the page's own origin, the
// admin listener, without a key in development mode: such a POST reaches
// a connected socket, and config.json tells the page where the API is.
// Under JWT the API wants a key, whatever the origin.
func TestDemoAPIPublish(t *testing.T) {
	bin := buildBinary(t)
	g := startGateway(t, bin, "--embedded-nats-listen", "127.0.0.1:0")
	admin := g.waitField(t, "admin listening", "addr")
	addr := g.waitField(t, "gateway listening", "addr")
	origin := "http://" + admin

	resp, err := http.Get(origin + "/demo/config.json")
	if err != nil {
		t.Fatal(err)
	}
	var conf demoConfig
	err = json.NewDecoder(resp.Body).Decode(&conf)
	resp.Body.Close()
	if err != nil || conf.API != "/api/v1/" {
		t.Fatalf("config.json: %+v, %v; want api /api/v1/", conf, err)
	}

	c := wstest.Connect(t, "ws://"+addr+"/ws?user=42", nil)
	post := func(url, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), "POST", url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		// What the page's fetch sends.
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", origin)
		req.Header.Set("Referer", origin+"/demo/")
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post(origin+conf.API+"publish", `{"channel":"user.42","data":{"via":"api"},"durable":false}`)
	if code != http.StatusOK {
		t.Fatalf("POST %spublish: %d %s", conf.API, code, body)
	}
	m := c.Next(t)
	if data, _ := m["data"].(map[string]any); m["channel"] != "user.42" || data["via"] != "api" {
		t.Fatalf("the socket got %v, want the API's notification", m)
	}
	// The form's durable checkbox, on a gateway without JetStream: the
	// API says so, and the page shows it.
	if code, body := post(origin+conf.API+"publish", `{"channel":"user.42","data":1,"durable":true}`); code != http.StatusServiceUnavailable || !strings.Contains(body, "jetstream_unavailable") {
		t.Errorf("durable publish without JetStream: %d %s, want 503 jetstream_unavailable", code, body)
	}

	cmd := exec.Command(bin, append(append([]string(nil), gatewayFlags...), "--embedded-nats-listen", "127.0.0.1:0", "--auth=jwt")...)
	cmd.Env = append(os.Environ(), "WSGATE_JWT_SECRET="+testSecret)
	jwtAdmin := startCmd(t, cmd).waitField(t, "admin listening", "addr")
	if code, body := post("http://"+jwtAdmin+"/api/v1/publish", `{"channel":"user.42","data":1}`); code != http.StatusForbidden {
		t.Errorf("a JWT gateway without API keys answered %d %s, want 403 (the API is off)", code, body)
	}
}

// httpStatus returns the status of GET url.
func httpStatus(t *testing.T, url string) int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestDemoPage opens the demo page of a development gateway in headless
// Chromium, as a newcomer after `make run` would: it connects as user 42,
// subscribes topic.sports through the form, and the publish commands the
// page shows, run as they are printed, bring a volatile, a durable, a
// broadcast and a topic notification onto it. Then it takes a screenshot
// (its path is logged; WSGATE_DEMO_SCREENSHOT=file.png keeps a copy),
// publishes through the HTTP API form, and unsubscribes. The page cannot
// break silently.
func TestDemoPage(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("no chromium on PATH or in /usr/bin (bash .ci/run installs it)")
	}
	bin := buildBinary(t)
	g := startGateway(t, bin, "--durable", "--nats-store-dir", t.TempDir(), "--embedded-nats-listen", "127.0.0.1:0")
	admin := g.waitField(t, "admin listening", "addr")
	g.waitLog(t, "durable stream ready")
	browser := startBrowser(t, chromium)
	p := openPage(t, browser, "http://"+admin+"/demo/?user=42")
	if err := chromedp.Do(p.ctx, chromedp.EmulateViewport(1200, 900)); err != nil {
		t.Fatal(err)
	}
	p.waitJS(t, `document.getElementById("state").textContent === "connected" && document.getElementById("conn").textContent !== "–"`, "the page connected and welcomed")

	// The form, as a user fills and submits it.
	if _, err := eval[bool](p, `(() => { document.getElementById("topic").value = "sports"; document.getElementById("topic-form").requestSubmit(); return true; })()`); err != nil {
		t.Fatal(err)
	}
	p.waitJS(t, `document.querySelector('#topic-list li[data-topic="topic.sports"] .status')?.textContent === "subscribed"`, "topic.sports subscribed")

	cmds, err := eval[[]string](p, `[...document.querySelectorAll("#commands code")].map((c) => c.textContent)`)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) != 4 {
		t.Fatalf("the page shows the commands %q, want four: user, durable user, broadcast, topic", cmds)
	}
	for _, c := range cmds {
		runShown(t, bin, c)
	}
	p.waitJS(t, `(() => {
		const items = [...document.querySelectorAll("#messages li[data-channel]")];
		const text = (ch) => items.filter((li) => li.dataset.channel === ch).map((li) => li.textContent).join(" ");
		return items.length === 4 && text("user.42").includes('{"text":"hi"}') && text("topic.sports").includes('{"score":"2-1"}') &&
			text("broadcast").includes("maintenance at 22:00") &&
			document.querySelector('#messages li.durable[data-channel="user.42"]')?.textContent.includes('{"order":7}');
	})()`, "the four notifications on the page, the durable one marked")

	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.TempDir(), "demo.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the demo page after four notifications: %s (%d bytes)", shot, len(png))
	if keep := os.Getenv("WSGATE_DEMO_SCREENSHOT"); keep != "" {
		if err := os.WriteFile(keep, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The HTTP API form publishes to the page's own user.
	if _, err := eval[bool](p, `(() => {
		document.getElementById("api-data").value = '{"via":"api"}';
		document.getElementById("api-form").requestSubmit();
		return true;
	})()`); err != nil {
		t.Fatal(err)
	}
	p.waitJS(t, `document.getElementById("api-result").textContent.startsWith("200") &&
		[...document.querySelectorAll('#messages li[data-channel="user.42"]')].some((li) => li.textContent.includes('{"via":"api"}'))`,
		"the API form's notification on the page")

	if _, err := eval[bool](p, `(document.querySelector('#topic-list li[data-topic="topic.sports"] button').click(), true)`); err != nil {
		t.Fatal(err)
	}
	p.waitJS(t, `document.querySelectorAll("#topic-list li").length === 0 && document.querySelectorAll("#commands code").length === 3`, "topic.sports gone from the page")
}

// runShown runs a publish command as the demo page shows it, through sh
// (its payloads are quoted for a shell), with the page's "wsgate" the
// binary under test.
func runShown(t *testing.T, bin, shown string) {
	t.Helper()
	rest, ok := strings.CutPrefix(shown, "wsgate publish ")
	if !ok {
		t.Fatalf("the page shows %q, want a wsgate publish command", shown)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", "-c", "exec \"$0\" publish "+rest, bin).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", shown, err, out)
	}
}

// waitJS waits up to 10s for the JavaScript expression cond to be true in
// the page.
func (p *page) waitJS(t *testing.T, cond, what string) {
	t.Helper()
	wstest.CheckFor(t, 10*time.Second, pollEvery, func() error {
		ok, err := eval[bool](p, cond)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("waiting for " + what)
		}
		return nil
	})
}
