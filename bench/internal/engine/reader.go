package engine

import (
	"bytes"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/bench/internal/config"
	"github.com/wsgate/wsgate/bench/internal/hist"
	"github.com/wsgate/wsgate/internal/channel"
	"github.com/wsgate/wsgate/internal/rawio"
	"github.com/wsgate/wsgate/internal/wire"
)

// reader is one reader goroutine with its own buffer and histogram.
type reader struct {
	e     *Engine
	buf   []byte
	out   []byte // scratch for pongs and close frames
	chbuf []byte // scratch for the expected channel name
	// With Config.InflateOnce: the last compressed payload inflated and
	// what it inflated to. Without context takeover equal bytes inflate
	// to equal messages, so a repeat is served from here.
	zlast, zout []byte

	upErrors map[string]int64 // upstream: error frames by code; guarded by mu

	mu           sync.Mutex // protects hist, lastDelivery, frameBytes and compressed; held for one read task
	hist         *hdrhistogram.Histogram
	lastDelivery int64 // unix ns
	frameBytes   int64 // wire bytes (header and payload as read) of the delivered message frames
	compressed   int64 // delivered message frames that came compressed
	delivered    atomic.Int64
}

func (r *reader) run() {
	defer r.e.readersWG.Done()
	for k := range r.e.ready {
		r.serve(k)
	}
}

// serve is one read task: read what the kernel holds without blocking,
// handle every complete frame, keep an incomplete one, re-arm.
func (r *reader) serve(k int32) {
	e := r.e
	c := &e.conns[k]
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateOpen {
		return // a stale event, or an enqueue racing a close
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	buf := r.buf[:0]
	if c.rem != nil { // an incomplete frame, or bytes that came with the welcome
		buf = append(buf, *c.rem...)
		c.rem = nil
		used, reason := r.consume(c, k, buf, time.Now().UnixNano())
		if reason != "" {
			e.drop(c, reason)
			return
		}
		buf = buf[:copy(buf, buf[used:])]
	}
	for total := 0; total < readBudget; {
		if len(buf) == cap(buf) { // a frame bigger than the buffer
			nb := make([]byte, len(buf), 2*cap(buf))
			copy(nb, buf)
			buf = nb
		}
		room := cap(buf) - len(buf)
		n, err := rawio.Read(c.rc, buf[len(buf):cap(buf)])
		if n == 0 {
			if err != nil {
				e.drop(c, readReason(err))
				return
			}
			break // EAGAIN
		}
		now := time.Now().UnixNano()
		buf = buf[:len(buf)+n]
		total += n
		used, reason := r.consume(c, k, buf, now)
		if reason != "" {
			e.drop(c, reason)
			return
		}
		buf = buf[:copy(buf, buf[used:])]
		if n < room {
			// The kernel had less than we asked for: re-arm instead of a
			// read that would only say EAGAIN. The registration is
			// level-triggered, so bytes that arrived meanwhile fire at once.
			break
		}
	}
	if cap(buf) <= 4*readBufSize {
		r.buf = buf[:0] // keep a grown buffer unless it is huge
	}
	if len(buf) > 0 {
		rem := append([]byte(nil), buf...)
		c.rem = &rem
	}
	if err := e.poller.Resume(c.desc); err != nil {
		e.drop(c, "poller")
	}
}

// consume handles the complete frames at the start of buf and returns how
// many bytes they took, or the reason to drop the connection.
func (r *reader) consume(c *conn, k int32, buf []byte, now int64) (int, string) {
	used := 0
	for {
		f, n, err := parseFrame(buf[used:], maxFramePayload, c.deflate)
		if err != nil {
			return used, "protocol"
		}
		if n == 0 {
			return used, ""
		}
		used += n
		switch f.op {
		case ws.OpText:
			if !f.compressed {
				r.onText(c, k, f.payload, n, false, now)
				break
			}
			if !r.inflateText(c, k, f.payload, n, now) {
				return used, "inflate"
			}
		case ws.OpPing:
			r.out = appendClientFrame(r.out[:0], ws.OpPong, f.payload)
			_, _ = rawio.Write(c.rc, r.out)
		case ws.OpClose:
			r.e.noteServerClose(k, now)
			code := closeCode(f.payload)
			writeClose(c.rc, code)
			return used, "server_close_" + strconv.Itoa(code)
		}
	}
}

// inflateText inflates the compressed text message z, which came in a
// frame of frameLen bytes, and handles it. It reports false when z does not
// inflate.
func (r *reader) inflateText(c *conn, k int32, z []byte, frameLen int, now int64) bool {
	if r.e.cfg.InflateOnce && r.zlast != nil && bytes.Equal(z, r.zlast) {
		r.onText(c, k, r.zout, frameLen, true, now)
		return true
	}
	fl := wire.GetInflater()
	defer fl.Recycle()
	p, err := fl.Inflate(z, maxFramePayload)
	if err != nil {
		return false
	}
	if r.e.cfg.InflateOnce {
		r.zlast = append(r.zlast[:0], z...)
		r.zout = append(r.zout[:0], p...)
	}
	r.onText(c, k, p, frameLen, true, now)
	return true
}

// onText handles the text message p, which came in a frame of frameLen
// bytes, compressed or not.
func (r *reader) onText(c *conn, k int32, p []byte, frameLen int, compressed bool, now int64) {
	if r.e.cfg.Scenario == config.ScenarioUpstream {
		r.onUpstream(p, frameLen, now)
		return
	}
	m := parseMessage(p)
	if c.dur != nil && !r.durable(c, &m, now) {
		return
	}
	if m.kind != kindMessage {
		return
	}
	e := r.e
	if m.seq == 0 || m.ts == 0 {
		e.unsequenced.Add(1)
		return
	}
	r.chbuf = e.channel(r.chbuf[:0], e.global(k))
	switch {
	case string(m.channel) == string(r.chbuf):
		c.seq.add(m.seq)
	case e.bseq != nil && string(m.channel) == channel.Broadcast:
		e.bseq[k].add(m.seq)
	default:
		e.misrouted.Add(1)
		return
	}
	hist.Record(r.hist, (now-m.ts)/1000)
	r.lastDelivery = now
	r.frameBytes += int64(frameLen)
	if compressed {
		r.compressed++
	}
	r.delivered.Add(1)
}

func readReason(err error) string {
	switch {
	case errors.Is(err, rawio.ErrEOF):
		return "eof"
	case errors.Is(err, unix.ECONNRESET):
		return "reset"
	}
	return "read_error"
}

// writeClose sends a masked close frame with code, best effort: the socket
// is non-blocking and a close frame always fits an empty send buffer.
func writeClose(rc syscall.RawConn, code int) {
	if rc == nil {
		return
	}
	if code == 1005 || code == 1006 || code == 1015 {
		code = 1000
	}
	p := [2]byte{byte(code >> 8), byte(code)}
	b := appendClientFrame(make([]byte, 0, 8), ws.OpClose, p[:])
	_, _ = rawio.Write(rc, b)
}
