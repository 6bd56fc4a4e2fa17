package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/bench/internal/engine"
	"github.com/wsgate/wsgate/bench/internal/payload"
	"github.com/wsgate/wsgate/internal/rawio"
	"github.com/wsgate/wsgate/internal/wire"
)

// The floor scenario measures what the kernel itself charges for the
// writes a broadcast needs. A floor server (`wsbench floor-server`, a
// child process) accepts plain TCP connections from the same client
// engine, then makes exactly the write(2) calls the broadcast scenario
// asks of a gateway: --messages rounds at --msg-rate, one write per socket
// per round, of a buffer as large as the gateway's frame for the same
// payload (a real unmasked text frame, so the clients parse and time it
// like a gateway's). One goroutine per CPU writes, non-blocking, to its
// share of the sockets. The server reports its own CPU (getrusage, user +
// system) over the rounds.

// floorReport is what a floor server reports after its rounds.
type floorReport struct {
	Event       string  `json:"event"`
	Addr        string  `json:"addr,omitempty"`
	Accepted    int     `json:"accepted,omitempty"`
	Writes      int64   `json:"writes,omitempty"`
	ShortWrites int64   `json:"short_writes,omitempty"`
	CPUSeconds  float64 `json:"cpu_seconds,omitempty"`
	FrameBytes  int     `json:"frame_bytes,omitempty"`
	Error       string  `json:"error,omitempty"`
}

type floorHandle struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *json.Decoder
	addr string
}

// floorScenario runs the floor servers. They start before the workers,
// whose connections go to them instead of a gateway, and the probe
// measures them as the servers.
type floorScenario struct {
	servers []*floorHandle
}

// start starts Config.FloorServers floor servers, each for its share of
// the connections (index i % servers).
func (f *floorScenario) start(r *runner, spec *engine.Spec) error {
	cfg := &r.cfg
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	n := cfg.FloorServers
	for i := range n {
		share := (cfg.Conns - i + n - 1) / n
		cmd := exec.Command(exe, "floor-server",
			"--conns", strconv.Itoa(share),
			"--messages", strconv.Itoa(cfg.Messages),
			"--msg-rate", strconv.FormatFloat(cfg.MsgRate, 'g', -1, 64),
			"--payload-size", strconv.Itoa(cfg.PayloadSize))
		cmd.Env = append(os.Environ(), ChildEnv+"=1")
		cmd.Stderr = os.Stderr
		h := &floorHandle{cmd: cmd}
		if h.in, err = cmd.StdinPipe(); err != nil {
			return err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		h.out = json.NewDecoder(bufio.NewReader(out))
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start floor server: %w", err)
		}
		f.servers = append(f.servers, h)
		var rep floorReport
		if err := h.out.Decode(&rep); err != nil || rep.Event != "listening" {
			return fmt.Errorf("floor server %d did not start: %v %s", i, err, rep.Error)
		}
		h.addr = rep.Addr
		spec.FloorAddrs = append(spec.FloorAddrs, h.addr)
		r.probe.pids = append(r.probe.pids, cmd.Process.Pid)
	}
	return nil
}

// run has the floor servers make their writes, which the clients receive
// like a gateway's broadcasts.
func (f *floorScenario) run(ctx context.Context, r *runner) (window, error) {
	r.phase.Store("publish")
	w := window{clientCPU: r.clientCPU(), start: time.Now()}
	rep, err := f.rounds(ctx)
	if err != nil {
		return w, err
	}
	w.floor, w.published = &rep, int64(r.cfg.Messages)
	w.expect = &engine.Expectation{Broadcast: uint32(r.cfg.Messages)}
	return w, r.drain(ctx, w.expect)
}

// rounds starts the rounds on every floor server and sums their reports.
func (f *floorScenario) rounds(ctx context.Context) (floorReport, error) {
	for _, h := range f.servers {
		if _, err := io.WriteString(h.in, "go\n"); err != nil {
			return floorReport{}, err
		}
	}
	var sum floorReport
	for i, h := range f.servers {
		var rep floorReport
		if err := h.out.Decode(&rep); err != nil || rep.Event != "done" {
			return sum, fmt.Errorf("floor server %d: %v %s", i, err, rep.Error)
		}
		sum.Writes += rep.Writes
		sum.ShortWrites += rep.ShortWrites
		sum.CPUSeconds += rep.CPUSeconds
		sum.FrameBytes = rep.FrameBytes
		sum.Accepted += rep.Accepted
	}
	return sum, ctx.Err()
}

func (f *floorScenario) stop() {
	for _, h := range f.servers {
		h.in.Close()
		done := make(chan struct{})
		go func() {
			_ = h.cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = h.cmd.Process.Kill()
			<-done
		}
	}
}

// serveFloor is `wsbench floor-server`: it prints {"event":"listening"},
// accepts connections until "go" arrives on in (waiting up to 10 s for
// --conns of them), runs the rounds, prints {"event":"done",…} and exits
// when in ends.
func serveFloor(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("floor-server", flag.ContinueOnError)
	conns := fs.Int("conns", 1000, "connections to expect")
	messages := fs.Int("messages", 20, "rounds")
	rate := fs.Float64("msg-rate", 2, "rounds per second")
	size := fs.Int("payload-size", 200, "payload bytes")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		_ = enc.Encode(floorReport{Event: "error", Error: err.Error()})
		return err
	}
	_ = enc.Encode(floorReport{Event: "listening", Addr: ln.Addr().String()})

	var mu sync.Mutex // protects accepted
	var accepted []syscall.RawConn
	var tcps []*net.TCPConn
	enough := make(chan struct{})
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tcp := c.(*net.TCPConn)
			rc, err := tcp.SyscallConn()
			if err != nil {
				tcp.Close()
				continue
			}
			mu.Lock()
			accepted = append(accepted, rc)
			tcps = append(tcps, tcp)
			if len(accepted) == *conns {
				close(enough)
			}
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		<-acceptDone
		for _, c := range tcps {
			c.Close()
		}
	}()

	br := bufio.NewReader(in)
	if line, err := br.ReadString('\n'); err != nil || line != "go\n" {
		return fmt.Errorf("floor-server: want go: %q %v", line, err)
	}
	select {
	case <-enough:
	case <-time.After(10 * time.Second):
	}
	ln.Close()
	<-acceptDone
	mu.Lock()
	socks := accepted
	mu.Unlock()

	rep := floorRounds(socks, *messages, *rate, *size)
	rep.Accepted = len(socks)
	_ = enc.Encode(rep)
	_, _ = io.Copy(io.Discard, br) // until the coordinator closes our stdin
	return nil
}

// floorRounds writes rounds frames to every socket, one goroutine per CPU.
func floorRounds(socks []syscall.RawConn, rounds int, rate float64, size int) floorReport {
	p := runtime.NumCPU()
	var writes, short [64]int64 // per writer; p is capped below
	p = min(p, len(writes), max(1, len(socks)))
	var frame []byte
	cpu0, _ := selfUsage()
	start := time.Now()
	for round := range rounds {
		due := start.Add(time.Duration(float64(round) / rate * float64(time.Second)))
		time.Sleep(time.Until(due))
		frame, _ = wire.MessageFrame("broadcast", payload.Append(nil, uint32(round+1), time.Now().UnixNano(), size), wire.Position{})
		var wg sync.WaitGroup
		for w := range p {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(socks); i += p {
					n, err := rawio.Write(socks[i], frame)
					writes[w]++
					if err != nil || n < len(frame) {
						short[w]++
					}
				}
			}()
		}
		wg.Wait()
	}
	cpu1, _ := selfUsage()
	rep := floorReport{Event: "done", CPUSeconds: cpu1 - cpu0, FrameBytes: len(frame)}
	for w := range p {
		rep.Writes += writes[w]
		rep.ShortWrites += short[w]
	}
	return rep
}
