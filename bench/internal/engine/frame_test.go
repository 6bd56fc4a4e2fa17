package engine

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/bench/internal/payload"
	"github.com/wsgate/wsgate/internal/wire"
)

func TestParseFramePartial(t *testing.T) {
	stream := serverStream()
	want, err := parseAll(stream, len(stream))
	if err != nil || len(want) != 5 {
		t.Fatalf("whole stream: %d frames, %v", len(want), err)
	}
	for _, step := range []int{1, 2, 3, 7, 64} {
		got, err := parseAll(stream, step)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if len(got) != len(want) {
			t.Fatalf("step %d: %d frames, want %d", step, len(got), len(want))
		}
		for i := range got {
			if got[i].op != want[i].op || !bytes.Equal(got[i].payload, want[i].payload) {
				t.Errorf("step %d frame %d differs", step, i)
			}
		}
	}
	ops := []ws.OpCode{ws.OpText, ws.OpPing, ws.OpText, ws.OpText, ws.OpClose}
	for i, f := range want {
		if f.op != ops[i] {
			t.Errorf("frame %d op %x, want %x", i, f.op, ops[i])
		}
	}
	if m := parseMessage(want[3].payload); m.kind != kindMessage || m.seq != 2 || m.ts != 1700000000000000001 || string(m.channel) != "broadcast" {
		t.Errorf("message %+v", m)
	}
	if closeCode(want[4].payload) != 1001 {
		t.Errorf("close code %d", closeCode(want[4].payload))
	}
}

func TestParseFrameErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		b       []byte
		deflate bool
		err     error
	}{
		{"masked", []byte{0x81, 0x80, 1, 2, 3, 4}, false, errProtocol},
		{"rsv", []byte{0xc1, 0x00}, false, errProtocol},
		{"reserved op", []byte{0x83, 0x00}, false, errProtocol},
		{"fragment", []byte{0x01, 0x01, 'a'}, false, errFragmented},
		{"continuation", []byte{0x80, 0x01, 'a'}, false, errFragmented},
		{"long ping", append([]byte{0x89, 126, 0, 126}, make([]byte, 126)...), false, errProtocol},
		{"top bit length", []byte{0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, false, errProtocol},
		{"too big", []byte{0x81, 127, 0, 0, 0, 0, 1, 0, 0, 0}, false, errTooBig},
		{"deflate rsv2", []byte{0xa1, 0x00}, true, errProtocol},
		{"deflate rsv3", []byte{0x91, 0x00}, true, errProtocol},
		{"deflate wire.RSV1 on ping", []byte{0xc9, 0x00}, true, errProtocol},
		{"deflate wire.RSV1 on close", []byte{0xc8, 0x00}, true, errProtocol},
		{"deflate wire.RSV1 on continuation", []byte{0xc0, 0x01, 'a'}, true, errProtocol},
		{"deflate fragment", []byte{0x41, 0x01, 'a'}, true, errFragmented},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := parseFrame(tc.b, 1<<16, tc.deflate); err != tc.err {
				t.Errorf("err %v, want %v", err, tc.err)
			}
		})
	}
}

func TestParseFrameCompressed(t *testing.T) {
	for _, tc := range []struct {
		name           string
		b              []byte
		deflate        bool
		wantCompressed bool
	}{
		{"text", []byte{0xc1, 0x02, 'h', 'i'}, true, true},
		{"binary", []byte{0xc2, 0x02, 'h', 'i'}, true, true},
		{"plain text on a deflate conn", []byte{0x81, 0x02, 'h', 'i'}, true, false},
		{"ping on a deflate conn", []byte{0x89, 0x02, 'h', 'i'}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, n, err := parseFrame(tc.b, 1<<16, tc.deflate)
			if err != nil || n != len(tc.b) || f.compressed != tc.wantCompressed || string(f.payload) != "hi" {
				t.Errorf("frame %+v, n %d, err %v; want compressed %v", f, n, err, tc.wantCompressed)
			}
		})
	}
}

func TestClientFrameMasked(t *testing.T) {
	f := appendClientFrame(nil, ws.OpPong, []byte("hello"))
	if f[0] != 0x80|byte(ws.OpPong) || f[1] != 0x80|5 || len(f) != 2+4+5 {
		t.Fatalf("frame % x", f)
	}
	mask := f[2:6]
	for i, c := range f[6:] {
		if c^mask[i&3] != "hello"[i] {
			t.Fatalf("payload not masked correctly: % x", f)
		}
	}
}

func TestParseMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want message
	}{
		{"fast", `{"type":"message","channel":"topic.t3","data":{"seq":7,"ts":123,"pad":"xx"}}`, message{kind: kindMessage, channel: []byte("topic.t3"), seq: 7, ts: 123}},
		{"spaces fall back to json", `{ "type": "message", "channel": "user.u1", "data": {"ts": 5, "seq": 9} }`, message{kind: kindMessage, channel: []byte("user.u1"), seq: 9, ts: 5}},
		{"durable: the payload's seq, not the stream's", `{"type":"message","channel":"user.u1","seq":999,"prev":998,"epoch":1764650000000,"data":{"seq":7,"ts":123}}`,
			message{kind: kindMessage, channel: []byte("user.u1"), seq: 7, ts: 123, pos: position{999, 998, 1764650000000}}},
		{"durable, first on its channel", `{"type":"message","channel":"user.u1","seq":5,"prev":0,"epoch":17,"data":{"seq":1,"ts":2}}`,
			message{kind: kindMessage, channel: []byte("user.u1"), seq: 1, ts: 2, pos: position{5, 0, 17}}},
		{"durable, json fallback", `{"type":"message", "channel":"user.u1","seq":9,"prev":5,"epoch":17,"data":{"ts":2,"seq":1}}`,
			message{kind: kindMessage, channel: []byte("user.u1"), seq: 1, ts: 2, pos: position{9, 5, 17}}},
		{"resumed", `{"type":"resumed","channel":"user.u1","ref":1,"recovered":true,"seq":17,"epoch":1764650000000}`,
			message{kind: kindResumed, pos: position{seq: 17, epoch: 1764650000000}, recovered: true}},
		{"resumed, not recovered", `{"type":"resumed","channel":"user.u1","ref":1,"recovered":false,"seq":0,"epoch":3,"reason":"epoch"}`,
			message{kind: kindResumed, pos: position{epoch: 3}}},
		{"no seq", `{"type":"message","channel":"broadcast","data":"hello"}`, message{kind: kindMessage, channel: []byte("broadcast")}},
		{"welcome", `{"type":"welcome","conn":"x","user":"u1","ping_interval":25}`, message{kind: kindWelcome}},
		{"subscribed", `{"type":"subscribed","channel":"topic.t1","ref":1}`, message{kind: kindSubscribed}},
		{"error", `{"type":"error","ref":1,"code":"forbidden","message":"no"}`, message{kind: kindError}},
		{"garbage", `not json`, message{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseMessage([]byte(tc.in))
			if got.kind != tc.want.kind || got.seq != tc.want.seq || got.ts != tc.want.ts || string(got.channel) != string(tc.want.channel) ||
				got.pos != tc.want.pos || got.recovered != tc.want.recovered {
				t.Errorf("got %+v (channel %q), want %+v", got, got.channel, tc.want)
			}
		})
	}
}

func TestAppendPayload(t *testing.T) {
	for _, size := range []int{0, 10, 200, 1000} {
		p := payload.Append(nil, 42, 1700000000123456789, size)
		if size >= 60 && len(p) != size {
			t.Errorf("size %d: got %d bytes", size, len(p))
		}
		m := parseMessage(wire.AppendMessage(nil, "broadcast", p, wire.Position{}))
		if m.seq != 42 || m.ts != 1700000000123456789 {
			t.Errorf("size %d: parsed %+v from %s", size, m, p)
		}
	}
}

// No allocation means the fast path: the JSON fallback allocates. A
// durable frame's position, before "data", keeps it.
func TestParseMessageAllocs(t *testing.T) {
	for _, pos := range []wire.Position{{}, {Seq: 9, Prev: 4, Epoch: 1764650000000}} {
		p := wire.AppendMessage(nil, "broadcast", payload.Append(nil, 3, 99, 200), pos)
		if n := testing.AllocsPerRun(100, func() { parseMessage(p) }); n != 0 {
			t.Errorf("parseMessage at %+v allocates %v times, want 0", pos, n)
		}
		if m := parseMessage(p); m.seq != 3 || m.ts != 99 || string(m.channel) != "broadcast" {
			t.Errorf("parseMessage at %+v = %+v", pos, m)
		}
	}
}

func BenchmarkParseMessage(b *testing.B) {
	p := wire.AppendFrame(nil, ws.OpText, wire.AppendMessage(nil, "broadcast", payload.Append(nil, 3, 99, 200), wire.Position{}))
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		f, _, _ := parseFrame(p, maxFramePayload, false)
		parseMessage(f.payload)
	}
}

// FuzzClientFrames feeds arbitrary server bytes to the client-side parser
// in two ways, whole and split at an arbitrary point, and checks that both
// see the same frames and that nothing panics.
func FuzzClientFrames(f *testing.F) {
	f.Add(serverStream(), uint16(5))
	f.Add([]byte{0x81, 126, 0, 4, 'a', 'b', 'c', 'd'}, uint16(1))
	f.Add([]byte{0x89, 0x00, 0x81, 0x02, '{', '}'}, uint16(3))
	f.Fuzz(func(t *testing.T, b []byte, split uint16) {
		whole, err1 := parseAll(b, max(1, len(b)))
		step := int(split)%max(1, len(b)) + 1
		parts, err2 := parseAll(b, step)
		if (err1 == nil) != (err2 == nil) && len(whole) == len(parts) {
			t.Fatalf("errors differ: %v vs %v", err1, err2)
		}
		n := min(len(whole), len(parts))
		for i := range n {
			if whole[i].op != parts[i].op || !bytes.Equal(whole[i].payload, parts[i].payload) {
				t.Fatalf("frame %d differs", i)
			}
			if whole[i].op == ws.OpText {
				parseMessage(whole[i].payload)
			}
		}
		if err1 == nil && err2 == nil && len(whole) != len(parts) {
			t.Fatalf("%d frames whole, %d split", len(whole), len(parts))
		}
	})
}
