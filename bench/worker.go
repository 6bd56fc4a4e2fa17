package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"time"

	"github.com/wsgate/wsgate/bench/internal/engine"
)

// The coordinator talks to each worker over JSON lines: commands on the
// worker's stdin, events on its stdout. A worker in the coordinator's own
// process (Workers == 1) speaks the same protocol over pipes.
//
//	coordinator → worker: {"cmd":"spec","spec":{…}}  {"cmd":"connect"}
//	                      {"cmd":"churn","churn":"10s"}  {"cmd":"expect","expect":{…}}
//	                      {"cmd":"cut"}  {"cmd":"resume","expect":{…}}  {"cmd":"upstream"}
//	                      {"cmd":"finish","expect":{…}}
//	worker → coordinator: {"event":"ready"} once its engine is started (tokens signed)
//	                      {"event":"progress","progress":{…}} every 250 ms
//	                      {"event":"connected"} {"event":"churned"} {"event":"expected","n":…}
//	                      {"event":"cut","n":…} {"event":"resumed","n":…} {"event":"upstreamed","n":…}
//	                      {"event":"result","result":{…}}  {"event":"error","error":"…"}

// ChildEnv is set in the environment of the worker and floor-server
// processes wsbench starts by re-executing itself. A test binary checks it
// in TestMain to act as wsbench (see Main).
const ChildEnv = "WSBENCH_CHILD"

const progressInterval = 250 * time.Millisecond

type workerCmd struct {
	Cmd    string              `json:"cmd"`
	Spec   *engine.Spec        `json:"spec,omitempty"`
	Churn  Duration            `json:"churn,omitempty"`
	Expect *engine.Expectation `json:"expect,omitempty"`
	CutAt  int64               `json:"cut_at,omitempty"` // cut: the server was made to close the connections at this unix ns (--cut-cmd)
}

type workerMsg struct {
	Event    string        `json:"event"`
	Progress *progressSnap `json:"progress,omitempty"`
	Result   *workerResult `json:"result,omitempty"`
	N        int64         `json:"n,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// progressSnap is a worker's engine progress with its process's figures.
type progressSnap struct {
	engine.Progress
	RSSBytes   int64   `json:"rss_bytes"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// workerResult is a worker's engine totals with its process's figures.
type workerResult struct {
	engine.Totals
	CPUSeconds  float64 `json:"cpu_seconds"`
	MaxRSSBytes int64   `json:"max_rss_bytes"`
	HeapBytes   int64   `json:"heap_bytes"` // heap growth over the ramp
}

// serveWorker runs one worker: it reads commands from in and writes events
// to out until finish or until in ends.
func serveWorker(in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(bufio.NewReader(in))
	var encMu sync.Mutex
	enc := json.NewEncoder(out)
	emit := func(m workerMsg) {
		encMu.Lock()
		_ = enc.Encode(m)
		encMu.Unlock()
	}
	var first workerCmd
	if err := dec.Decode(&first); err != nil || first.Cmd != "spec" || first.Spec == nil {
		return fmt.Errorf("worker: want a spec first: %v", err)
	}
	spec := first.Spec
	e, err := engine.New(*spec)
	if err != nil {
		emit(workerMsg{Event: "error", Error: err.Error()})
		return err
	}
	heap0 := heapInUse()
	e.Start()
	emit(workerMsg{Event: "ready"})
	var heapBytes int64

	stop := make(chan struct{})
	var progWG sync.WaitGroup
	progWG.Add(1)
	go func() {
		defer progWG.Done()
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				emit(workerMsg{Event: "progress", Progress: progress(e)})
			}
		}
	}()
	finish := func(x *engine.Expectation) workerResult {
		close(stop)
		progWG.Wait()
		res := workerResult{Totals: e.Finish(x), HeapBytes: heapBytes}
		res.CPUSeconds, res.MaxRSSBytes = selfUsage()
		return res
	}
	for {
		var cmd workerCmd
		if err := dec.Decode(&cmd); err != nil {
			finish(nil)
			if errors.Is(err, io.EOF) {
				return errors.New("worker: coordinator went away")
			}
			return fmt.Errorf("worker: read command: %w", err)
		}
		switch cmd.Cmd {
		case "connect":
			e.Ramp()
			heapBytes = heapInUse() - heap0
			emit(workerMsg{Event: "connected", Progress: progress(e)})
		case "churn":
			e.Churn(cmd.Churn.D(), spec.Config.ChurnShare)
			emit(workerMsg{Event: "churned", Progress: progress(e)})
		case "expect":
			emit(workerMsg{Event: "expected", N: e.SetExpect(cmd.Expect)})
		case "cut":
			if cmd.CutAt != 0 {
				emit(workerMsg{Event: "cut", N: e.CutByServer(cmd.CutAt, spec.Config.HandshakeTimeout.D())})
			} else {
				emit(workerMsg{Event: "cut", N: e.Cut()})
			}
		case "resume":
			emit(workerMsg{Event: "resumed", N: e.SetResume(cmd.Expect), Progress: progress(e)})
		case "upstream":
			emit(workerMsg{Event: "upstreamed", N: e.Upstream(spec.Config.MsgRate/float64(spec.Workers), spec.Config.Hold.D())})
		case "finish":
			res := finish(cmd.Expect)
			emit(workerMsg{Event: "result", Result: &res})
			return nil
		default:
			emit(workerMsg{Event: "error", Error: "unknown command " + cmd.Cmd})
		}
	}
}

// progress is e's progress with this process's figures.
func progress(e *engine.Engine) *progressSnap {
	p := &progressSnap{Progress: e.Progress(), RSSBytes: selfRSS()}
	p.CPUSeconds, _ = selfUsage()
	return p
}

// heapInUse returns the live heap after a full collection.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// workerHandle is the coordinator's side of one worker.
type workerHandle struct {
	idx  int
	in   io.WriteCloser
	enc  *json.Encoder
	proc *exec.Cmd     // nil for the in-process worker
	done chan struct{} // in-process worker: closed when it has returned

	mu   sync.Mutex // protects last
	last progressSnap
}

type workerEvent struct {
	idx int
	msg workerMsg
}

// startWorkers starts spec.Workers workers, worker i with spec.Index i: in
// this process when there is one, else as child processes running "wsbench
// worker". Events other than progress go to events; a worker's end is an
// event "exit".
func startWorkers(spec engine.Spec, events chan<- workerEvent) ([]*workerHandle, error) {
	n := spec.Workers
	var hs []*workerHandle
	for i := range n {
		h := &workerHandle{idx: i}
		var out io.ReadCloser
		if n == 1 {
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			h.in, out, h.done = inW, outR, make(chan struct{})
			go func() {
				defer close(h.done)
				err := serveWorker(inR, outW)
				inR.Close()
				outW.CloseWithError(err)
			}()
		} else {
			exe, err := os.Executable()
			if err != nil {
				return hs, err
			}
			cmd := exec.Command(exe, "worker")
			cmd.Env = append(os.Environ(), ChildEnv+"=1")
			cmd.Stderr = os.Stderr
			if h.in, err = cmd.StdinPipe(); err != nil {
				return hs, err
			}
			if out, err = cmd.StdoutPipe(); err != nil {
				return hs, err
			}
			if err := cmd.Start(); err != nil {
				return hs, fmt.Errorf("start worker %d: %w", i, err)
			}
			h.proc = cmd
		}
		h.enc = json.NewEncoder(h.in)
		hs = append(hs, h)
		go h.readEvents(out, events)
		s := spec
		s.Index = i
		if err := h.send(workerCmd{Cmd: "spec", Spec: &s}); err != nil {
			return hs, err
		}
	}
	return hs, nil
}

func (h *workerHandle) send(c workerCmd) error {
	if err := h.enc.Encode(c); err != nil {
		return fmt.Errorf("worker %d: %w", h.idx, err)
	}
	return nil
}

func (h *workerHandle) readEvents(out io.ReadCloser, events chan<- workerEvent) {
	dec := json.NewDecoder(bufio.NewReaderSize(out, 64<<10))
	for {
		var m workerMsg
		if err := dec.Decode(&m); err != nil {
			msg := workerMsg{Event: "exit"}
			if !errors.Is(err, io.EOF) {
				msg.Error = err.Error()
			}
			events <- workerEvent{idx: h.idx, msg: msg}
			return
		}
		if m.Progress != nil {
			h.mu.Lock()
			h.last = *m.Progress
			h.mu.Unlock()
		}
		if m.Event != "progress" {
			events <- workerEvent{idx: h.idx, msg: m}
		}
	}
}

func (h *workerHandle) progress() progressSnap {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// stop ends the worker: closing its stdin makes it finish, and a child
// process is waited for.
func (h *workerHandle) stop() {
	h.in.Close()
	if h.done != nil {
		<-h.done
	}
	if h.proc != nil {
		done := make(chan struct{})
		go func() {
			_ = h.proc.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = h.proc.Process.Kill()
			<-done
		}
	}
}
