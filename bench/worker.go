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
	"unsafe"
)

// The coordinator talks to each worker over JSON lines: commands on the
// worker's stdin, events on its stdout. A worker in the coordinator's own
// process (Workers == 1) speaks the same protocol over pipes.
//
//	coordinator → worker: {"cmd":"spec","spec":{…}}  {"cmd":"connect"}
//	                      {"cmd":"churn","churn":"10s"}  {"cmd":"expect","expect":{…}}
//	                      {"cmd":"finish","expect":{…}}
//	worker → coordinator: {"event":"progress","progress":{…}} every 250 ms
//	                      {"event":"connected"} {"event":"churned"} {"event":"expected","n":…}
//	                      {"event":"result","result":{…}}  {"event":"error","error":"…"}

// ChildEnv is set in the environment of the worker and floor-server
// processes wsbench starts by re-executing itself. A test binary checks it
// in TestMain to act as wsbench (see Main).
const ChildEnv = "WSBENCH_CHILD"

const progressInterval = 250 * time.Millisecond

type workerSpec struct {
	Config     Config   `json:"config"`
	JWTSecret  string   `json:"jwt_secret,omitempty"`
	Index      int      `json:"index"`
	Workers    int      `json:"workers"`
	FloorAddrs []string `json:"floor_addrs,omitempty"`
}

type workerCmd struct {
	Cmd    string       `json:"cmd"`
	Spec   *workerSpec  `json:"spec,omitempty"`
	Churn  Duration     `json:"churn,omitempty"`
	Expect *expectation `json:"expect,omitempty"`
}

// expectation is how many messages each channel got: seqs 1..n.
type expectation struct {
	Broadcast uint32   `json:"broadcast,omitempty"`
	Topics    []uint32 `json:"topics,omitempty"` // by topic index
	Users     []uint32 `json:"users,omitempty"`  // by connection index
}

// of returns the number of messages published to the channel of conn g.
func (x *expectation) of(cfg *Config, g int) uint32 {
	switch cfg.Scenario {
	case ScenarioTopic:
		if t := g % cfg.Topics; t < len(x.Topics) {
			return x.Topics[t]
		}
		return 0
	case ScenarioUnicast:
		if g < len(x.Users) {
			return x.Users[g]
		}
		return 0
	}
	return x.Broadcast
}

type workerMsg struct {
	Event    string        `json:"event"`
	Progress *progressSnap `json:"progress,omitempty"`
	Result   *workerResult `json:"result,omitempty"`
	N        int64         `json:"n,omitempty"`
	Error    string        `json:"error,omitempty"`
}

type progressSnap struct {
	Open        int64   `json:"open"`
	Established int64   `json:"established"`
	Failed      int64   `json:"failed"`
	Reconnects  int64   `json:"reconnects"`
	Delivered   int64   `json:"delivered"`
	P99US       int64   `json:"p99_us"`
	RSSBytes    int64   `json:"rss_bytes"`
	CPUSeconds  float64 `json:"cpu_seconds"`
}

type workerResult struct {
	Established     int64            `json:"established"`
	DeflateAccepted int64            `json:"deflate_accepted"`
	Failed          int64            `json:"failed"`
	Failures        map[string]int64 `json:"failures"`
	Dropped         map[string]int64 `json:"dropped"`
	Reconnects      int64            `json:"reconnects"`
	ReconnectFailed int64            `json:"reconnect_failed"`
	Seq             seqTotals        `json:"seq"`
	Delivered       int64            `json:"delivered"`
	FrameBytes      int64            `json:"frame_bytes"`
	Compressed      int64            `json:"compressed"`
	Misrouted       int64            `json:"misrouted"`
	Unsequenced     int64            `json:"unsequenced"`
	Handshakes      string           `json:"handshakes"` // encoded HDR histograms, µs
	Deliveries      string           `json:"deliveries"`
	Reconnect       string           `json:"reconnect"`
	FirstDialNS     int64            `json:"first_dial_ns"`
	LastWelcomeNS   int64            `json:"last_welcome_ns"`
	LastDeliveryNS  int64            `json:"last_delivery_ns"`
	CPUSeconds      float64          `json:"cpu_seconds"`
	MaxRSSBytes     int64            `json:"max_rss_bytes"`
	HeapBytes       int64            `json:"heap_bytes"` // heap growth over the ramp
	PollErrors      int64            `json:"poll_errors"`
}

// connStructBytes is the size of the per-connection struct.
const connStructBytes = int(unsafe.Sizeof(conn{}))

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
	var cmd workerCmd
	if err := dec.Decode(&cmd); err != nil || cmd.Cmd != "spec" || cmd.Spec == nil {
		return fmt.Errorf("worker: want a spec first: %v", err)
	}
	e, err := newEngine(*cmd.Spec)
	if err != nil {
		emit(workerMsg{Event: "error", Error: err.Error()})
		return err
	}
	heap0 := heapInUse()
	e.allocConns()
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
				emit(workerMsg{Event: "progress", Progress: e.progress()})
			}
		}
	}()
	finish := func(x *expectation) workerResult {
		close(stop)
		progWG.Wait()
		res := e.result(e.finish(x))
		res.HeapBytes = heapBytes
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
			e.ramp()
			heapBytes = heapInUse() - heap0
			emit(workerMsg{Event: "connected", Progress: e.progress()})
		case "churn":
			e.churn(cmd.Churn.D(), e.cfg.ChurnShare)
			emit(workerMsg{Event: "churned", Progress: e.progress()})
		case "expect":
			emit(workerMsg{Event: "expected", N: e.setExpect(cmd.Expect)})
		case "finish":
			res := finish(cmd.Expect)
			emit(workerMsg{Event: "result", Result: &res})
			return nil
		default:
			emit(workerMsg{Event: "error", Error: "unknown command " + cmd.Cmd})
		}
	}
}

func (e *engine) progress() *progressSnap {
	delivered, p99, _ := e.deliveries()
	cpu, _ := selfUsage()
	return &progressSnap{
		Open:        e.open.Load(),
		Established: e.established.Load(),
		Failed:      e.failed.Load(),
		Reconnects:  e.reconnects.Load(),
		Delivered:   delivered,
		P99US:       p99,
		RSSBytes:    selfRSS(),
		CPUSeconds:  cpu,
	}
}

func (e *engine) result(t seqTotals) workerResult {
	delivered, _, last := e.deliveries()
	frameBytes, compressed := e.wire()
	cpu, maxRSS := selfUsage()
	e.mu.Lock()
	defer e.mu.Unlock()
	return workerResult{
		Established:     e.established.Load(),
		DeflateAccepted: e.deflated.Load(),
		Failed:          e.failed.Load(),
		Failures:        e.failures,
		Dropped:         e.dropped,
		Reconnects:      e.reconnects.Load(),
		ReconnectFailed: e.reconnectFailed.Load(),
		Seq:             t,
		Delivered:       delivered,
		FrameBytes:      frameBytes,
		Compressed:      compressed,
		Misrouted:       e.misrouted.Load(),
		Unsequenced:     e.unsequenced.Load(),
		Handshakes:      encodeHist(e.handshakes.snapshot()),
		Deliveries:      encodeHist(e.deliveryHist()),
		Reconnect:       encodeHist(e.reconnHist.snapshot()),
		FirstDialNS:     e.firstDial.Load(),
		LastWelcomeNS:   e.lastWelcome.Load(),
		LastDeliveryNS:  last,
		CPUSeconds:      cpu,
		MaxRSSBytes:     maxRSS,
		PollErrors:      e.pollErrors.Load(),
	}
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

// startWorkers starts n workers: in this process when n == 1, else as
// child processes running "wsbench worker". Events other than progress go
// to events; a worker's end is an event "exit".
func startWorkers(n int, spec func(i int) workerSpec, events chan<- workerEvent) ([]*workerHandle, error) {
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
		s := spec(i)
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
