//go:build integration && linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// python is Debian's interpreter, where python3-websockets installs: a
// python3 earlier on PATH (pyenv, a virtualenv) may lack the module.
const python = "/usr/bin/python3"

// TestPythonClient runs testdata/wsclient.py, a client built on
// python3-websockets, an implementation independent of ours and of the
// browsers', against the real gateway binary: welcome, subscribe, an RFC
// 6455 ping answered with its payload, a user, a topic and a broadcast
// notification through NATS, and a close with 1000 echoed with 1000. It
// runs once offering permessage-deflate, as websockets does by default,
// and once without.
func TestPythonClient(t *testing.T) {
	if out, err := exec.Command(python, "-c", "import websockets").CombinedOutput(); err != nil {
		t.Skipf("no python3-websockets for %s (bash .ci/run installs it): %v\n%s", python, err, out)
	}
	bin := buildBinary(t)
	g := startGateway(t, bin, "--embedded-nats-listen", "127.0.0.1:0", "--compress-threshold", "256")
	gw := g.waitField(t, "gateway listening", "addr")
	natsURL := g.waitField(t, "gateway listening", "nats")
	metrics := "http://" + g.waitField(t, "admin listening", "addr") + "/metrics"
	admin := &http.Client{Timeout: 5 * time.Second}

	for _, tc := range []struct {
		user       string   // also names the case
		flags      []string // for wsclient.py
		deflated   bool     // the gateway must accept the offer
		compressed float64  // notifications the gateway must compress
	}{
		// Of the three notifications only the topic one is over the
		// threshold.
		{"deflate", nil, true, 1},
		{"plain", []string{"--no-compression"}, false, 0},
	} {
		t.Run(tc.user, func(t *testing.T) {
			before, err := scrapeCounter(admin, metrics, "wsgate_notifications_compressed_total")
			if err != nil {
				t.Fatal(err)
			}
			want := notifications(tc.user)
			c := startPython(t, "ws://"+gw+"/ws?user="+tc.user, len(want), tc.flags...)

			ext, _ := c.next(t)["extensions"].(string) // null without the header
			t.Logf("the gateway answered Sec-WebSocket-Extensions %q", ext)
			if strings.HasPrefix(ext, "permessage-deflate") != tc.deflated {
				t.Fatalf("the gateway answered extensions %q; want permessage-deflate: %v", ext, tc.deflated)
			}
			if m := c.next(t); m["type"] != "welcome" || m["user"] != tc.user {
				t.Fatalf("first message %v, want the welcome of user %s", m, tc.user)
			}
			c.expect(t, map[string]any{"type": "subscribed", "channel": "topic.news", "ref": 1.0})
			c.expect(t, map[string]any{"event": "pong"})
			c.expect(t, map[string]any{"event": "ready"})

			publishAll(t, natsURL, want)
			got := make([]map[string]any, len(want))
			for i := range got {
				got[i] = c.next(t)
			}
			checkNotifications(t, got, want)
			c.expect(t, map[string]any{"event": "closed", "code": 1000.0, "reason": ""})
			if err := c.wait(); err != nil {
				t.Fatalf("wsclient.py: %v", err)
			}

			after, err := scrapeCounter(admin, metrics, "wsgate_notifications_compressed_total")
			if err != nil {
				t.Fatal(err)
			}
			if n := after - before; n != tc.compressed {
				t.Errorf("the gateway compressed %v notifications, want %v", n, tc.compressed)
			}
		})
	}
}

// pythonClient is testdata/wsclient.py running, its stdout lines decoded.
type pythonClient struct {
	cmd    *exec.Cmd
	lines  chan map[string]any // closed at the end of stdout
	stderr *logBuffer
	done   chan error // Wait's result, once lines is closed
}

// startPython runs wsclient.py against url until it has read messages
// notifications. It is killed after 30s or when the test ends, and its
// output is shown if the test failed.
func startPython(t *testing.T, url string, messages int, flags ...string) *pythonClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c := &pythonClient{
		cmd:    exec.CommandContext(ctx, python, append([]string{"testdata/wsclient.py", url, strconv.Itoa(messages)}, flags...)...),
		lines:  make(chan map[string]any, 16),
		stderr: &logBuffer{},
		done:   make(chan error, 1),
	}
	c.cmd.Stderr = c.stderr
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	out := &logBuffer{}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			out.Write(append(sc.Bytes(), '\n'))
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = map[string]any{"unparsed": sc.Text()}
			}
			c.lines <- m
		}
		close(c.lines)
		c.done <- c.cmd.Wait() // after the last read, as StdoutPipe requires
	}()
	t.Cleanup(func() {
		cancel()
		for range c.lines { // the kill ends stdout
		}
		if t.Failed() {
			t.Logf("wsclient.py stdout:\n%s\nstderr:\n%s", out, c.stderr)
		}
	})
	return c
}

// next returns the next line the script printed, waiting up to 10s.
func (c *pythonClient) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case m, ok := <-c.lines:
		if !ok {
			t.Fatalf("wsclient.py ended its output early: %v", <-c.done)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("wsclient.py printed nothing for 10s")
	}
	return nil
}

// expect reads the next line and checks that it is want.
func (c *pythonClient) expect(t *testing.T, want map[string]any) {
	t.Helper()
	if got := c.next(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("wsclient.py printed %v, want %v", got, want)
	}
}

// wait waits up to 10s for the script to end its output and exit, and
// returns why it failed, if it did.
func (c *pythonClient) wait() error {
	timeout := time.After(10 * time.Second)
	select {
	case m, ok := <-c.lines:
		if ok {
			return fmt.Errorf("printed %v after the close", m)
		}
	case <-timeout:
		return errors.New("did not end its output in time")
	}
	select {
	case err := <-c.done:
		return err
	case <-timeout:
		return errors.New("did not exit in time")
	}
}
