package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/wstest"
)

// gatewayFlags are the flags every gateway a test starts runs with: on
// loopback, with no authentication, an admin server and a JSON log, and
// without durable notifications, so that the gateways of parallel tests do
// not share the default JetStream directory. A flag given again after them
// wins: the durable tests give --durable and a --nats-store-dir of their
// own.
var gatewayFlags = []string{"--auth=none", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--log-format", "json", "--durable=false"}

// runResult is what one run of the binary left.
type runResult struct {
	stdout, stderr string
	code           int // exit status; -1 when it was killed at the deadline
}

// runBinary runs bin with args, and env added to the test's environment,
// for at most 20s: a command line the binary should refuse at once must not
// start a gateway that runs until the test times out.
func runBinary(t *testing.T, bin string, env []string, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := runResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.code = -1
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v", bin, strings.Join(args, " "), err)
	}
	return r
}

// gatewayProc is a process started by the test: a gateway, or another
// program the tests run.
type gatewayProc struct {
	cmd    *exec.Cmd
	log    *logBuffer    // stdout and stderr: a gateway's JSON log lines
	exited chan struct{} // closed once Wait has returned
	err    error         // from Wait, once exited is closed
}

// startGateway runs the wsgate binary bin with gatewayFlags followed by
// args. See startProc.
func startGateway(t *testing.T, bin string, args ...string) *gatewayProc {
	t.Helper()
	return startProc(t, bin, slices.Concat(gatewayFlags, args)...)
}

// startProc runs name with args. See startCmd.
func startProc(t *testing.T, name string, args ...string) *gatewayProc {
	t.Helper()
	return startCmd(t, exec.Command(name, args...))
}

// startCmd starts cmd with its output, stdout and stderr, collected in log.
// The process, or its whole process group when cmd asks for one
// (Setpgid), is killed when the test ends, and its output shown if the
// test failed.
func startCmd(t *testing.T, cmd *exec.Cmd) *gatewayProc {
	t.Helper()
	g := &gatewayProc{cmd: cmd, log: &logBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = g.log, g.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		g.err = cmd.Wait()
		close(g.exited)
	}()
	t.Cleanup(func() {
		if cmd.SysProcAttr != nil && cmd.SysProcAttr.Setpgid {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		} else {
			cmd.Process.Kill()
		}
		<-g.exited
		if t.Failed() {
			t.Logf("%s (pid %d) output:\n%s", filepath.Base(cmd.Path), cmd.Process.Pid, g.log)
		}
	})
	return g
}

// waitLog returns the first log line whose message starts with msg,
// waiting up to 20s for it. It fails the test at once if the process exits
// without logging it.
func (g *gatewayProc) waitLog(t *testing.T, msg string) map[string]any {
	t.Helper()
	return g.waitLogWithin(t, msg, 20*time.Second)
}

// waitLogWithin is waitLog waiting up to total.
func (g *gatewayProc) waitLogWithin(t *testing.T, msg string, total time.Duration) map[string]any {
	t.Helper()
	var line map[string]any
	wstest.CheckFor(t, total, pollEvery, func() error {
		// Wait returns only once the log is all in, so a process seen to
		// have exited before find has nothing more to log.
		var exited bool
		select {
		case <-g.exited:
			exited = true
		default:
		}
		if line = g.log.find(msg); line != nil {
			return nil
		}
		if exited {
			t.Fatalf("the gateway exited (%v) without logging %q", g.err, msg)
		}
		return fmt.Errorf("the gateway has not logged %q", msg)
	})
	return line
}

// waitField returns the string key of the first log line whose message
// starts with msg, waiting for the line as waitLog does.
func (g *gatewayProc) waitField(t *testing.T, msg, key string) string {
	t.Helper()
	v, _ := g.waitLog(t, msg)[key].(string)
	if v == "" {
		t.Fatalf("%q logged no %s", msg, key)
	}
	return v
}

// wait waits until deadline for the process to exit and returns why it
// failed, if it did.
func (g *gatewayProc) wait(deadline time.Time) error {
	select {
	case <-g.exited:
		return g.err
	case <-time.After(time.Until(deadline)):
		return errors.New("did not exit in time")
	}
}

// logBuffer collects a child's output, written by the exec package's copy
// goroutine and read by the test.
type logBuffer struct {
	mu  sync.Mutex // protects buf
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// find returns the first complete JSON log line whose message starts with
// msg, or nil.
func (b *logBuffer) find(msg string) map[string]any {
	for line := range strings.Lines(b.String()) {
		if !strings.HasSuffix(line, "\n") {
			break
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if s, _ := m["msg"].(string); strings.HasPrefix(s, msg) {
			return m
		}
	}
	return nil
}

// pollEvery is how often the tests check a condition they wait for with
// wstest.CheckFor.
const pollEvery = 20 * time.Millisecond

// dialWelcome dials url with d and reads the welcome, both before
// deadline. It returns errors rather than failing a test, for the
// goroutines of reconnecting clients.
func dialWelcome(ctx context.Context, d ws.Dialer, url string, deadline time.Time) (*wstest.Client, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	c, err := wstest.Dial(ctx, d, url)
	if err != nil {
		return nil, err
	}
	if _, err := c.Welcome(deadline); err != nil {
		c.Close()
		return nil, err
	}
	if !strings.Contains(c.ID, "-") {
		c.Close()
		return nil, fmt.Errorf("connection id %q, want <gateway prefix>-<n>", c.ID)
	}
	return c, nil
}

// isGoingAway reports whether err is a close frame with status 1001.
func isGoingAway(err error) bool {
	code, _, ok := wstest.CloseStatus(err)
	return ok && code == ws.StatusGoingAway
}

// findTool returns the path of a program on PATH or in the sbin
// directories a non-root user's PATH may lack, or "".
func findTool(name string) string {
	for _, p := range []string{name, "/usr/sbin/" + name, "/usr/local/sbin/" + name, "/sbin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return ""
}
