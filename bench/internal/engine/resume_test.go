package engine

import (
	"bytes"
	"io"
	"testing"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/bench/internal/hist"
)

// TestDurableRule walks one connection through docs/protocol.md's client
// rule: a first position, a resume whose answer sets the position, frames
// between the resume and its answer dropped, a duplicate and a gap
// dropped, and completion once every expected sequence is applied.
func TestDurableRule(t *testing.T) {
	e := &Engine{spec: Spec{Workers: 1}, recoveryHist: hist.NewLocked(), resumeHist: hist.NewLocked()}
	e.cfg = &e.spec.Config
	e.cfg.Scenario, e.cfg.UserPrefix = "resume", "u"
	r := &reader{e: e}
	c := &conn{dur: &durState{}}
	d := c.dur
	msg := func(seq, prev uint64) *message {
		return &message{kind: kindMessage, pos: position{seq: seq, prev: prev, epoch: 7}}
	}
	step := func(name string, m *message, wantApplied bool) {
		t.Helper()
		if got := r.durable(c, m, 1); got != wantApplied {
			t.Fatalf("%s: applied %v, want %v (state %+v)", name, got, wantApplied, *d)
		}
	}
	step("volatile frames are not durable's business", &message{kind: kindMessage}, true)
	step("first durable frame: no position yet", msg(5, 3), true)
	if d.last != 5 || d.epoch != 7 {
		t.Fatalf("position %d/%d, want 5/7", d.last, d.epoch)
	}

	// The cut, then the resume: the users were sent 9, 12 and 20.
	d.cut, d.expectSet, d.expect = true, true, []uint64{9, 12, 20}
	e.appendResume(nil, 0, d)
	step("live frame before the answer", msg(9, 5), false)
	step("the answer", &message{kind: kindResumed, pos: position{seq: 5, epoch: 7}, recovered: true}, false)
	step("replayed 9", msg(9, 5), true)
	step("9 again: a duplicate", msg(9, 5), false)
	step("20 after 12 was missed: a gap", msg(20, 12), false)
	step("replayed 12", msg(12, 9), true)
	if e.complete.Load() != 0 {
		t.Fatal("complete before 20")
	}
	step("replayed 20", msg(20, 12), true)
	if e.complete.Load() != 1 || !d.done {
		t.Fatalf("not complete after every expected frame: %+v", *d)
	}
	want := durState{last: 20, epoch: 7, matched: 3, applied: 3, dupDropped: 1, gapDropped: 1, whileResume: 1}
	if d.last != want.last || d.matched != want.matched || d.applied != want.applied || d.dupDropped != want.dupDropped ||
		d.gapDropped != want.gapDropped || d.whileResume != want.whileResume || d.stray != 0 || d.dupApplied != 0 {
		t.Errorf("state %+v, want %+v", *d, want)
	}
}

func TestAppendResume(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    durState
		want string
	}{
		{"with a position", durState{last: 17, epoch: 1764650000000}, `{"op":"resume","channel":"user.u0","seq":17,"epoch":1764650000000,"ref":1}`},
		{"without", durState{}, `{"op":"resume","channel":"user.u0","ref":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &Engine{spec: Spec{Workers: 1}}
			e.cfg = &e.spec.Config
			e.cfg.Scenario, e.cfg.UserPrefix = "resume", "u"
			frame := e.appendResume(nil, 0, &tc.d)
			f, n, err := parseClientFrame(t, frame)
			if err != nil || n != len(frame) || f != tc.want {
				t.Errorf("frame %q (%d of %d bytes, %v), want %q", f, n, len(frame), err, tc.want)
			}
			if !tc.d.resuming {
				t.Error("not marked resuming")
			}
		})
	}
}

// parseClientFrame unmasks the one client frame in b and returns its
// text and length.
func parseClientFrame(t *testing.T, b []byte) (string, int, error) {
	t.Helper()
	r := bytes.NewReader(b)
	h, err := ws.ReadHeader(r)
	if err != nil {
		return "", 0, err
	}
	if !h.Masked || h.OpCode != ws.OpText || h.Length > int64(len(b)) {
		t.Fatalf("header %+v: want a masked text frame", h)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		return "", 0, err
	}
	ws.Cipher(p, h.Mask, 0)
	return string(p), ws.HeaderSize(h) + len(p), nil
}
