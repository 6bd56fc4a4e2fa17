package gateway

import (
	"errors"
	"sync"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/rawio"
	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/netpoll"
)

// A readable event schedules one read task. It reads what the kernel holds
// without blocking, handles every complete frame, keeps an incomplete frame
// in readState, and re-arms the poller. Frames are parsed straight from the
// read buffer; client payloads are unmasked in place.

// readState is the part of a connection's read side that outlives a read
// task; it exists only while a frame or a fragmented message is incomplete.
type readState struct {
	pending []byte    // the bytes of an incomplete frame
	msg     []byte    // the fragments of an incomplete message so far
	msgOp   ws.OpCode // the opcode of the first fragment; 0 when no message is open
	// msgDeflated: the open message is compressed (RSV1 on its first fragment).
	msgDeflated bool
	// text is the UTF-8 state of a text message that came in pieces so
	// far (utf8.go), and checked how many payload bytes of the incomplete
	// frame in pending are unmasked and validated already.
	text    utf8Tail
	checked int
	skip    int64 // payload bytes still to discard (closing, or a frame too big)
}

func (rs *readState) empty() bool {
	return len(rs.pending) == 0 && rs.msgOp == 0 && rs.skip == 0
}

const (
	// readBufSize is the size of the pooled read buffers; a frame that
	// does not fit grows its own buffer up to MaxMessageSize plus a header.
	readBufSize = 4096
	// readBudget is how many bytes one read task takes before it yields
	// the worker; the poller reports the rest at once.
	readBudget = 64 << 10
	// maxClientHeader is the largest frame header: 2 + 8 length + 4 mask.
	maxClientHeader = 14
)

var readBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, readBufSize)
	return &b
}}

// readTask runs on the pool when the socket is readable.
func (c *Conn) readTask() {
	switch c.state.Load() {
	case stateClosed:
		return
	case stateHandshake:
		c.upgrade()
		return
	}
	bp := readBufs.Get().(*[]byte)
	buf, pooled := (*bp)[:0], true
	if rs := c.rs; rs != nil && len(rs.pending) > 0 {
		if len(rs.pending) > cap(buf) {
			buf, pooled = rs.pending, false
		} else {
			buf = append(buf, rs.pending...)
		}
		rs.pending = nil
	}
	open, total := true, 0
	if len(buf) > 0 { // bytes that came with the upgrade request, or an incomplete frame
		var used int
		used, open = c.consume(buf)
		buf = buf[:copy(buf, buf[used:])]
	}
	for open && total < readBudget {
		if len(buf) == cap(buf) {
			if buf, pooled = c.grow(buf), false; buf == nil {
				c.close(ReasonInternal) // unreachable: see grow
				c.finishClose()
				open = false
				break
			}
		}
		n, err := c.sysRead(buf[len(buf):cap(buf)])
		if n > 0 {
			c.lastRead.Store(c.srv.clock())
			total += n
			buf = buf[:len(buf)+n]
			var used int
			used, open = c.consume(buf)
			buf = buf[:copy(buf, buf[used:])]
			continue
		}
		if err == nil {
			break // EAGAIN: the kernel has nothing more
		}
		if err == rawio.ErrEOF {
			c.shut(ReasonPeerGone, nil, closeDrop)
		} else {
			c.shut(ReasonReadError, nil, closeDrop)
		}
		c.finishClose()
		open = false
	}
	if open && len(buf) > 0 {
		if pooled {
			c.readState().pending = append([]byte(nil), buf...)
		} else {
			c.readState().pending = buf // a grown buffer is already ours
		}
	}
	*bp = (*bp)[:0]
	readBufs.Put(bp)
	if c.rs != nil && c.rs.empty() {
		c.rs = nil
	}
	if open && c.state.Load() != stateClosed {
		c.resume()
	}
}

// resume re-arms read interest at the end of a read task.
func (c *Conn) resume() {
	if err := c.srv.poller.Resume(c.observed()); err != nil {
		c.close(ReasonInternal)
		c.finishClose()
	}
}

// observed returns c's poller registration. The upgrade sets it under
// c.wmu, possibly after the first read task has started.
func (c *Conn) observed() *netpoll.Desc {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.desc
}

func (c *Conn) readState() *readState {
	if c.rs == nil {
		c.rs = &readState{}
	}
	return c.rs
}

// grow returns a bigger buffer holding buf, for a frame that does not fit.
// It grows by doubling as bytes arrive, never to more than one frame of
// MaxMessageSize, and never by what a peer declares.
//
// The frame checks close any frame over MaxMessageSize before its payload
// is buffered, so a full buffer of cap limit cannot hold an incomplete
// frame; grow returns nil then, and the caller fails the connection.
func (c *Conn) grow(buf []byte) []byte {
	limit := c.srv.cfg.MaxMessageSize + maxClientHeader
	if cap(buf) >= limit {
		return nil
	}
	nb := make([]byte, len(buf), min(max(2*cap(buf), readBufSize), limit))
	copy(nb, buf)
	return nb
}

// consume handles the complete frames at the start of p. It returns the
// bytes used and whether the read side stays open.
func (c *Conn) consume(p []byte) (used int, open bool) {
	for {
		if c.state.Load() == stateClosed {
			return len(p), false
		}
		if rs := c.rs; rs != nil && rs.skip > 0 {
			n := min(rs.skip, int64(len(p)-used))
			rs.skip -= n
			used += int(n)
			if rs.skip > 0 {
				return used, true
			}
		}
		h, hlen, err := wire.ParseHeader(p[used:])
		if err == wire.ErrIncomplete {
			return used, true
		}
		if err != nil {
			c.close(ReasonProtocolError)
			return len(p), c.state.Load() == stateClosing
		}
		if c.state.Load() != stateOpen {
			// Closing: discard everything until the client's close frame.
			if h.OpCode == ws.OpClose {
				c.finishClose()
				return len(p), false
			}
			used += hlen
			c.readState().skip = h.Length
			continue
		}
		// RSV1 marks a compressed message, on its first frame only; left
		// anywhere else it fails CheckHeader like any reserved bit.
		deflated := c.deflate && h.Rsv1() && !h.OpCode.IsControl() && h.OpCode != ws.OpContinuation
		if deflated {
			h.Rsv &^= ws.Rsv(true, false, false)
		}
		if err := ws.CheckHeader(h, c.checkState()); err != nil {
			c.close(ReasonProtocolError)
			used += hlen
			c.readState().skip = h.Length
			continue
		}
		limit := c.srv.cfg.MaxMessageSize
		if deflated || c.rs != nil && c.rs.msgDeflated {
			limit += deflateSlack // the inflated size is checked again
		}
		if !h.OpCode.IsControl() && h.Length > int64(limit-c.msgLen()) {
			c.close(ReasonTooBig)
			used += hlen
			c.readState().skip = h.Length
			continue
		}
		if avail := len(p) - used - hlen; int64(avail) < h.Length {
			// Text is validated as it comes: bad UTF-8 fails the
			// connection now, not when the frame is complete.
			if c.checksText(h, deflated) && !c.checkPartial(h, p[used+hlen:]) {
				c.close(ReasonBadUTF8)
				used += hlen
				c.readState().skip = h.Length
				continue
			}
			return used, true
		}
		payload := p[used+hlen : used+hlen+int(h.Length)]
		used += hlen + int(h.Length)
		checked := 0
		if rs := c.rs; rs != nil {
			checked, rs.checked = rs.checked, 0
		}
		ws.Cipher(payload[checked:], h.Mask, checked)
		if !c.handleFrame(h, payload, deflated, checked) {
			return len(p), false
		}
	}
}

func (c *Conn) checkState() ws.State {
	s := ws.StateServerSide
	if c.rs != nil && c.rs.msgOp != 0 {
		s |= ws.StateFragmented
	}
	return s
}

func (c *Conn) msgLen() int {
	if c.rs == nil {
		return 0
	}
	return len(c.rs.msg)
}

// checksText reports whether the data frame with header h is text that is
// validated piece by piece as it arrives: a frame of a text message, unless
// the message is compressed (its text is checked once inflated).
func (c *Conn) checksText(h ws.Header, deflated bool) bool {
	switch h.OpCode {
	case ws.OpText:
		return !deflated
	case ws.OpContinuation:
		return c.rs != nil && c.rs.msgOp == ws.OpText && !c.rs.msgDeflated
	}
	return false
}

// checkPartial unmasks and validates what came of an incomplete text frame
// since the last look, part being its payload so far, and reports whether
// the message can still be valid UTF-8.
func (c *Conn) checkPartial(h ws.Header, part []byte) bool {
	rs := c.readState()
	fresh := part[rs.checked:]
	ws.Cipher(fresh, h.Mask, rs.checked)
	rs.checked = len(part)
	if !rs.text.feed(fresh) {
		rs.checked = 0 // the frame is skipped from here on
		return false
	}
	return true
}

// handleFrame handles one complete, unmasked frame and reports whether the
// read side stays open. deflated marks the first frame of a compressed
// message; the first checked bytes of the payload were validated as text
// while the frame was incomplete.
func (c *Conn) handleFrame(h ws.Header, payload []byte, deflated bool, checked int) bool {
	switch h.OpCode {
	case ws.OpPing:
		if !c.allowMessage(c.srv.clock()) {
			c.close(ReasonRateLimited)
			return true // closing: the rest is discarded
		}
		c.write(controlFrame(ws.OpPong, payload))
		return true
	case ws.OpPong:
		return true // lastRead is already fresh
	case ws.OpClose:
		c.handleClose(payload)
		return false
	}
	whole := h.OpCode != ws.OpContinuation && h.Fin
	if whole && checked == 0 {
		// A message in one frame that came at once is checked whole.
		c.handleMessage(h.OpCode, payload, deflated, false)
		return true
	}
	validated := c.checksText(h, deflated)
	if validated {
		rs := c.readState()
		if !rs.text.feed(payload[checked:]) || h.Fin && !rs.text.complete() {
			c.close(ReasonBadUTF8)
			return true // closing: the rest is discarded
		}
		if h.Fin {
			rs.text = utf8Tail{}
		}
	}
	if whole {
		c.handleMessage(h.OpCode, payload, deflated, validated)
		return true
	}
	rs := c.readState()
	if h.OpCode != ws.OpContinuation {
		rs.msgOp, rs.msgDeflated = h.OpCode, deflated
	}
	rs.msg = append(rs.msg, payload...)
	if h.Fin {
		op, msg, deflated := rs.msgOp, rs.msg, rs.msgDeflated
		rs.msgOp, rs.msg, rs.msgDeflated = 0, nil, false
		c.handleMessage(op, msg, deflated, validated)
	}
	return true
}

// handleMessage handles a complete client message, inflating it first
// when it is compressed. validated says its text was checked as it came.
func (c *Conn) handleMessage(op ws.OpCode, msg []byte, deflated, validated bool) {
	if deflated {
		f := wire.GetInflater()
		defer f.Recycle()
		out, err := f.Inflate(msg, c.srv.cfg.MaxMessageSize)
		switch {
		case errors.Is(err, wire.ErrTooBig):
			c.close(ReasonTooBig)
			return
		case err != nil:
			c.close(ReasonBadData)
			return
		}
		msg = out
	}
	echo := c.srv.cfg.ConformanceEcho
	if op != ws.OpText && !echo {
		c.close(ReasonUnsupportedData)
		return
	}
	if !c.allowMessage(c.srv.clock()) {
		c.close(ReasonRateLimited)
		return
	}
	if op == ws.OpText && !validated && !utf8.Valid(msg) {
		c.close(ReasonBadUTF8)
		return
	}
	if echo {
		c.write(controlFrame(op, msg))
		return
	}
	c.handleOp(msg)
}

// sysRead makes one non-blocking read(2): n > 0 with data, (0, nil) when
// the kernel has nothing, (0, rawio.ErrEOF) at end of stream, or an error.
func (c *Conn) sysRead(p []byte) (int, error) { return rawio.Read(c.rc, p) }
