package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process: NATS or a gateway. Its output goes to a tail
// buffer, shown when something goes wrong.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *tail

	exited chan struct{} // closed when the process has been waited for
	exitAt time.Time     // set before exited is closed
	state  *os.ProcessState
}

// start runs bin in a process group of its own, so that a Ctrl-C meant
// for the harness does not reach it: the harness decides when it stops.
// Its output goes to log too, if not nil.
func start(name string, log io.Writer, bin string, args ...string) (*proc, error) {
	p := &proc{name: name, cmd: exec.Command(bin, args...), out: &tail{max: 40}, exited: make(chan struct{})}
	p.cmd.Stdout = p.out
	if log != nil {
		p.cmd.Stdout = io.MultiWriter(p.out, log)
	}
	p.cmd.Stderr = p.cmd.Stdout
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() {
		p.cmd.Wait()
		p.exitAt, p.state = time.Now(), p.cmd.ProcessState
		close(p.exited)
	}()
	return p, nil
}

// kill stops the process with SIGKILL unless it has exited, and waits.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.exited
}

// failed describes a process that should be running and is not, or does
// not answer, with the end of its output.
func (p *proc) failed(what string) error {
	msg := p.name + ": " + what
	select {
	case <-p.exited:
		msg += " (" + p.state.String() + ")"
	default:
	}
	if t := p.out.String(); t != "" {
		msg += "; its output ends with:\n" + t
	}
	return fmt.Errorf("%s", msg)
}

// waitFor polls ok every 20ms until it returns true, p exits, ctx ends or
// the timeout passes.
func (p *proc) waitFor(ctx context.Context, timeout time.Duration, what string, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ok() {
		select {
		case <-p.exited:
			return p.failed("exited before " + what)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return p.failed("not " + what + " after " + timeout.String())
		}
	}
	return nil
}

// tail keeps the last max lines written to it, and counts them all.
type tail struct {
	mu    sync.Mutex // protects the fields below
	max   int
	lines []string
	part  []byte // an unfinished last line
	n     int    // lines written in total
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part = append(t.part, b...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			return len(b), nil
		}
		t.lines = append(t.lines, string(t.part[:i]))
		if len(t.lines) > t.max {
			t.lines = t.lines[1:]
		}
		t.part = t.part[i+1:]
		t.n++
	}
}

// String returns the kept lines.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.Join(t.lines, "\n")
	if len(t.part) > 0 {
		s += "\n" + string(t.part)
	}
	return strings.TrimSpace(s)
}

// count returns how many lines have been written.
func (t *tail) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// build compiles a package of this module into dir and returns the binary.
func build(ctx context.Context, dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s (run from inside the module): %v\n%s", pkg, err, b)
	}
	return out, nil
}

// hasFlag reports whether bin's --help mentions --name.
func hasFlag(bin, name string) bool {
	out, _ := exec.Command(bin, "--help").CombinedOutput()
	return bytes.Contains(out, []byte("-"+name+" "))
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

func hostPort(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// listening reports whether something accepts TCP connections at addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// readyz returns the status code and body of GET url, or 0 and the error.
func readyz(client *http.Client, url string) (int, string) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, strings.TrimSpace(b.String())
}

// signalTerm sends SIGTERM.
func (p *proc) signalTerm() error { return p.cmd.Process.Signal(syscall.SIGTERM) }

// metric returns the value of the unlabelled metric name from the
// Prometheus text at url.
func metric(client *http.Client, url, name string) (int, bool) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int(f), err == nil
		}
	}
	return 0, false
}
