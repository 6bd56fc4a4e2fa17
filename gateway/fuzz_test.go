package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/internal/channel"
	"github.com/wsgate/wsgate/internal/wire"
)

// frameSeeds are client byte streams as real clients send them.
func frameSeeds() [][]byte {
	var seeds [][]byte
	add := func(frames ...func(w io.Writer)) {
		var b bytes.Buffer
		for _, f := range frames {
			f(&b)
		}
		seeds = append(seeds, b.Bytes())
	}
	text := func(s string) func(io.Writer) {
		return func(w io.Writer) { writeFrame(w, true, opText, []byte(s)) }
	}
	add(text(`{"op":"subscribe","channel":"topic.sports","ref":1}`))
	add(text(`{"op":"ping","ref":3}`), text(`{"op":"unsubscribe","channel":"topic.sports","ref":2}`))
	add(func(w io.Writer) { writeFragment(w, true, false, opText, []byte(`{"op":`)) },
		func(w io.Writer) { writeFrame(w, true, opPing, []byte("x")) },
		func(w io.Writer) { writeFragment(w, true, true, opCont, []byte(`"ping"}`)) })
	add(func(w io.Writer) { writeFrame(w, true, opClose, ws.NewCloseFrameBody(1000, "bye")) })
	add(func(w io.Writer) { writeFrame(w, true, opText, bytes.Repeat([]byte("a"), 300)) })
	add(func(w io.Writer) { writeFrame(w, false, opText, []byte("unmasked")) })
	add(func(w io.Writer) { w.Write([]byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}) })
	add(func(w io.Writer) { w.Write([]byte{0x81, 0xfe, 0x03, 0xe8, 1, 2, 3, 4, 'x'}) }) // 1000 bytes announced, 1 sent
	return seeds
}

// FuzzConnInput sends arbitrary bytes from a real client on a real socket.
// Whatever they are, the gateway must answer the next ping op or close the
// connection with a valid close code, and never disturb another client.
func FuzzConnInput(f *testing.F) {
	for _, seed := range frameSeeds() {
		f.Add(seed)
	}
	e := newEnv(f, nil)
	witness := e.connect("witness")
	f.Fuzz(func(t *testing.T, p []byte) {
		c := e.as(t).connect("fuzz")
		defer c.Conn.Close()
		c.Conn.Write(p)
		var probe bytes.Buffer
		writeFrame(&probe, true, opText, []byte(`{"op":"ping","ref":424242}`))
		c.Conn.Write(probe.Bytes())
		// If p ended inside a frame, the probe went into its payload: zeros
		// complete any frame within the size limit, and then read as
		// unmasked frames, which must close the connection.
		filled := false
		for {
			data, err := c.ReadText(time.Now().Add(time.Second))
			var ce wsutil.ClosedError
			var ne net.Error
			switch {
			case errors.As(err, &ce):
				if ce.Code.IsNotUsed() || ce.Code == 0 {
					t.Fatalf("closed with code %d", ce.Code)
				}
				return
			case errors.As(err, &ne) && ne.Timeout():
				if filled {
					t.Fatalf("no answer and no close for %q", p)
				}
				filled = true
				c.Conn.Write(make([]byte, 8<<10))
				continue
			case err != nil:
				return // dropped without a close frame, or reset after a close
			}
			if bytes.Contains(data, []byte(`424242`)) {
				return
			}
		}
	})
	e.pub.User("witness", []byte(`"ok"`))
	if m := witness.next(); m["data"] != "ok" {
		f.Fatalf("witness got %v", m)
	}
}

// FuzzHandshake sends arbitrary upgrade requests, in one write and again
// in chunks cut at split points the fuzzer picks (splits: each byte is a
// chunk length, odd ones followed by a pause so that the chunks reach
// separate reads). The gateway answers with an HTTP status or closes; it
// never hangs or panics, and how the request was cut never changes the
// status it gets.
func FuzzHandshake(f *testing.F) {
	f.Add("GET /ws?user=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", []byte{7, 20, 3})
	f.Add("GET /ws?token=%41%4 HTTP/1.1\r\nHost: x\r\nCookie: wsgate_token=\"abc\"; x\r\nAuthorization: bearer  \r\n\r\n", []byte(nil))
	f.Add("POST / HTTP/1.0\r\n\r\n", []byte{1, 1, 1, 1})
	f.Add("GET /ws HTTP/1.1\r\nOrigin: https://a.example.org\r\n\r\n", []byte{33})
	e := newEnv(f, func(c *Config) {
		c.Auth = InsecureAuth{}
		c.AllowedOrigins = []string{"https://*.example.org"}
		c.HandshakeTimeout = 200 * time.Millisecond
	})
	f.Fuzz(func(t *testing.T, req string, splits []byte) {
		// An incomplete request waits for HandshakeTimeout, which would
		// make most inputs slow; the timeout has its own tests.
		if !strings.Contains(req, "\r\n\r\n") {
			req += "\r\n\r\n"
		}
		whole := handshakeStatus(t, e.addr, []byte(req), nil)
		if split := handshakeStatus(t, e.addr, []byte(req), splits); split != whole {
			t.Fatalf("%q: answered %q in one write, %q in chunks %v", req, whole, split, splits)
		}
	})
}

// handshakeStatus sends req in chunks (see writeSplit) and returns the
// status line of the answer, or "" when the server closed without one.
func handshakeStatus(t *testing.T, addr string, req, splits []byte) string {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		writeSplit(conn, req, splits)
	}()
	defer func() { conn.Close(); <-wrote }()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	var ne net.Error
	switch {
	case err == nil:
		return line
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("no answer to %q", req)
	}
	return "" // closed without an answer
}

// writeSplit writes p in chunks: each byte of splits is the length of the
// next chunk (its value/2 + 1), and an odd byte pauses after its chunk so
// that the server reads the chunks apart. What splits does not cover goes
// in one last write. Write errors end it: the server may close first.
func writeSplit(conn net.Conn, p, splits []byte) {
	conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	for _, s := range splits[:min(len(splits), 64)] {
		if len(p) == 0 {
			return
		}
		n := min(int(s)/2+1, len(p))
		if _, err := conn.Write(p[:n]); err != nil {
			return
		}
		p = p[n:]
		if s%2 == 1 {
			time.Sleep(200 * time.Microsecond)
		}
	}
	if len(p) > 0 {
		conn.Write(p)
	}
}

// FuzzClientOp sends client op messages (the input's lines, each one text
// frame, at most 16) on a real connection and checks every answer against a
// model of the protocol: the reply's type, error code, ref and channel, the
// subscriptions the connection holds, and the close codes for messages that
// are too big or not UTF-8. The connection's token allows topic.a,
// topic.b.* and topic.c.>, and upstream rpc.* (where a service echoes
// requests) and none.> (where none listens); MaxSubscriptions is 3.
func FuzzClientOp(f *testing.F) {
	for _, seed := range [][]byte{
		[]byte(`{"op":"subscribe","channel":"topic.a","ref":1}`),
		[]byte("{\"op\":\"subscribe\",\"channel\":\"topic.b.x\",\"ref\":1}\n{\"op\":\"unsubscribe\",\"channel\":\"topic.b.x\",\"ref\":2}\n{\"op\":\"ping\",\"ref\":3}"),
		[]byte("{\"op\":\"subscribe\",\"channel\":\"topic.c.1\",\"ref\":1}\n{\"op\":\"subscribe\",\"channel\":\"topic.c.2\",\"ref\":2}\n{\"op\":\"subscribe\",\"channel\":\"topic.c.3\",\"ref\":3}\n{\"op\":\"subscribe\",\"channel\":\"topic.c.4\",\"ref\":4}"),
		[]byte(`{"op":"subscribe","channel":"topic.*","ref":-9223372036854775808}`),
		[]byte(`{"op":"subscribe","channel":"user.1","ref":1}`),
		[]byte(`{"op":"publish","ref":9223372036854775807}`),
		[]byte(`{"OP":"ping","Ref":1,"op":"unsubscribe","channel":"topic.a"}`),
		[]byte(`{"op":"ping","ref":1e3}`),
		[]byte("\xff"),
		bytes.Repeat([]byte("a"), 4097),
		[]byte(`{"op":"resume","channel":"user.fuzz","ref":5}`),
		[]byte("{\"op\":\"subscribe\",\"channel\":\"topic.a\",\"ref\":1}\n{\"op\":\"resume\",\"channel\":\"topic.a\",\"seq\":3,\"epoch\":1,\"ref\":2}"),
		[]byte(`{"op":"resume","channel":"broadcast","seq":9007199254740993,"epoch":1}`),
		[]byte(`{"op":"resume","channel":"user.other","seq":1,"epoch":1}`),
		[]byte(`{"op":"ack","channel":"user.fuzz","seq":1,"epoch":1}`),
		[]byte(`{"op":"ack","channel":"user.fuzz","seq":-1}`),
		[]byte(`{"op":"ack","channel":"broadcast","seq":0,"epoch":5}`),
		[]byte(`{"op":"request","channel":"rpc.echo","data":{"user":"forged"},"ref":7}`),
		[]byte(`{"op":"request","channel":"none.x","data":[1],"ref":8,"timeout":5000}`),
		[]byte(`{"op":"request","channel":"rpc.echo","data":1,"ref":0}`),
		[]byte(`{"op":"publish","channel":"rpc.x","data":"s","ref":9}` + "\n" + `{"op":"publish","channel":"rpc.x","data":null}`),
		[]byte(`{"op":"publish","channel":"topic.a","data":true,"ref":10}`),
		[]byte(`{"op":"request","channel":"rpc.echo","data":1,"ref":11,"timeout":1}`),
	} {
		f.Add(seed)
	}
	const maxSubs = 3
	patterns := []string{"topic.a", "topic.b.*", "topic.c.>"}
	upPatterns := []string{"rpc.*", "none.>"}
	e, epoch := newDurableEnv(f, withUpstream(f, "fuzz", func(c *Config) { c.MessageRate = -1; c.MaxSubscriptions = maxSubs }))
	respond(f, e.nc, "notify.up.rpc.*", func(m *nats.Msg) *nats.Msg {
		r := nats.NewMsg(m.Reply)
		r.Data = m.Data
		return r
	})
	tok := signed(f, "fuzz", func(c *jwtClaims) { c.Channels, c.Upstream = patterns, upPatterns })
	f.Add(fmt.Appendf(nil, `{"op":"resume","channel":"user.fuzz","seq":4,"epoch":%d,"ref":1}`, epoch))
	f.Add(fmt.Appendf(nil, `{"op":"ack","channel":"broadcast","seq":4,"epoch":%d,"ref":1}`, epoch))
	witness := e.connect("witness")
	baseline := e.bus.Subscriptions()
	f.Fuzz(func(t *testing.T, input []byte) {
		c := e.as(t).connectToken("fuzz", tok)
		defer c.Conn.Close()
		var joined []string
		for _, msg := range bytes.SplitN(input, []byte("\n"), 16) {
			if err := writeFrame(c.Conn, true, opText, msg); err != nil {
				t.Fatal(err)
			}
			want, alt, closeCode := modelOp(msg, &joined, patterns, upPatterns, maxSubs, epoch)
			if want == (opReply{}) && closeCode == 0 {
				continue // an accepted ack: no answer
			}
			data, err := c.ReadText(time.Now().Add(5 * time.Second))
			var ce wsutil.ClosedError
			switch {
			case closeCode != 0:
				if !errors.As(err, &ce) || ce.Code != closeCode {
					t.Fatalf("%q: got %q, %v; want close %d", msg, data, err, closeCode)
				}
				return
			case err != nil:
				t.Fatalf("%q: %v; want %v", msg, err, want)
			}
			var got opReply
			d := json.NewDecoder(bytes.NewReader(data))
			d.UseNumber()
			if err := d.Decode(&got); err != nil {
				t.Fatalf("%q: reply %q is not JSON: %v", msg, data, err)
			}
			if got != want && (alt == (opReply{}) || got != alt) {
				t.Fatalf("%q: reply %q, want %+v", msg, data, want)
			}
		}
		expectPong(t, c, 1)
	})
	expectSubscriptions(f, e, baseline)
	e.pub.User("witness", []byte(`"ok"`))
	if m := witness.next(); m["data"] != "ok" {
		f.Fatalf("witness got %v", m)
	}
}

// opReply is what FuzzClientOp compares of a reply.
type opReply struct {
	Type    string      `json:"type"`
	Code    string      `json:"code"`
	Ref     json.Number `json:"ref"`
	Channel string      `json:"channel"`
}

// modelOp is the protocol as docs/protocol.md states it: the reply to msg
// from a connection holding the topics joined and allowed patterns and
// upstream patterns, or the close code that msg ends the connection with.
// alt, when not zero, is another reply the server may give: the timeout of
// a request that asked for a very short one.
func modelOp(msg []byte, joined *[]string, patterns, upPatterns []string, maxSubs int, epoch uint64) (want, alt opReply, close ws.StatusCode) {
	want, close = modelSubOp(msg, joined, patterns, upPatterns, maxSubs, epoch)
	var op clientOp
	if json.Unmarshal(msg, &op) == nil && op.Op == "request" && want.Code == "" && op.Timeout > 0 && op.Timeout < 1000 {
		alt = opReply{Type: "error", Code: codeTimeout, Ref: want.Ref}
	}
	return want, alt, close
}

func modelSubOp(msg []byte, joined *[]string, patterns, upPatterns []string, maxSubs int, epoch uint64) (opReply, ws.StatusCode) {
	switch {
	case len(msg) > 4096:
		return opReply{}, ws.StatusMessageTooBig
	case !utf8.Valid(msg):
		return opReply{}, ws.StatusInvalidFramePayloadData
	}
	var op clientOp
	if err := json.Unmarshal(msg, &op); err != nil {
		return opReply{Type: "error", Code: codeBadRequest, Ref: "0"}, 0
	}
	ref := json.Number(strconv.FormatInt(op.Ref, 10))
	fail := func(code string) (opReply, ws.StatusCode) { return opReply{Type: "error", Code: code, Ref: ref}, 0 }
	match := func(patterns []string) bool {
		return slices.ContainsFunc(patterns, func(p string) bool { return channel.Match(p, op.Channel) })
	}
	allowed := match(patterns)
	switch op.Op {
	case "publish", "request":
		switch {
		case !channel.Valid(op.Channel):
			return fail(codeInvalidChannel)
		case !match(upPatterns):
			return fail(codeForbidden)
		case len(op.Data) == 0:
			return fail(codeBadRequest)
		case op.Op == "request" && op.Ref <= 0:
			return fail(codeBadRequest)
		case op.Timeout < 0:
			return fail(codeBadRequest)
		case op.Op == "publish" && op.Ref <= 0:
			return opReply{}, 0 // fire and forget: no answer
		case op.Op == "publish":
			return opReply{Type: "published", Ref: ref, Channel: op.Channel}, 0
		case strings.HasPrefix(op.Channel, "none."):
			return fail(codeNoResponders)
		}
		return opReply{Type: "reply", Ref: ref, Channel: op.Channel}, 0
	case "ping":
		return opReply{Type: "pong", Ref: ref}, 0
	case "subscribe", "unsubscribe":
		switch {
		case !channel.Valid(op.Channel):
			return fail(codeInvalidChannel)
		case !strings.HasPrefix(op.Channel, "topic."):
			return fail(codeForbidden)
		}
		i := slices.Index(*joined, op.Channel)
		if op.Op == "unsubscribe" {
			if i >= 0 {
				*joined = slices.Delete(*joined, i, i+1)
			}
			return opReply{Type: "unsubscribed", Ref: ref, Channel: op.Channel}, 0
		}
		switch {
		case !allowed:
			return fail(codeForbidden)
		case i < 0 && len(*joined) >= maxSubs:
			return fail(codeTooMany)
		case i < 0:
			*joined = append(*joined, op.Channel)
		}
		return opReply{Type: "subscribed", Ref: ref, Channel: op.Channel}, 0
	case "resume", "ack":
		switch {
		case !channel.Valid(op.Channel):
			return fail(codeInvalidChannel)
		case op.Channel != "user.fuzz" && op.Channel != "broadcast" && !slices.Contains(*joined, op.Channel):
			return fail(codeForbidden)
		case op.Seq > 1<<53 || op.Epoch > 1<<53 || op.Seq > 0 && op.Epoch == 0:
			return fail(codeBadRequest)
		case op.Op == "resume":
			return opReply{Type: "resumed", Ref: ref, Channel: op.Channel}, 0
		case op.Seq == 0:
			return fail(codeBadRequest)
		case op.Epoch != epoch:
			return fail(codeStaleEpoch)
		}
		return opReply{}, 0 // accepted, not answered
	}
	return fail(codeUnknownOp)
}

// FuzzFrameSplits sends a client's frame stream to the conformance echo in
// one write, and again in chunks cut at split points the fuzzer picks (see
// writeSplit): the server must answer both alike, byte for byte. With
// deflate the connection negotiates permessage-deflate first, so that RSV1
// frames are inflated. The stream is cut after its last complete frame (a
// frame too big or malformed to wait for is kept: the server answers its
// header), and a close frame ends it, so every answer ends.
func FuzzFrameSplits(f *testing.F) {
	for _, seed := range frameSeeds() {
		f.Add(seed, []byte{0, 1, 2, 3, 5, 8, 13}, false)
	}
	// Compressed messages, whole and fragmented, and a bomb.
	zeros := deflateRaw(make([]byte, 3000))
	deflated := slices.Concat(
		craft(bitFin|bitRsv1|byte(opText), true, deflateRaw([]byte(strings.Repeat(`{"op":"ping"}`, 40)))),
		craft(bitRsv1|byte(opBinary), true, zeros[:5]),
		craft(bitFin|byte(opCont), true, zeros[5:]))
	f.Add(deflated, []byte{3, 9, 1, 40}, true)
	f.Add(slices.Concat(deflated, craft(bitFin|bitRsv1|byte(opText), true, bomb(1<<20))), []byte(nil), true)
	e := newEnv(f, func(c *Config) {
		c.ConformanceEcho = true
		c.Auth = InsecureAuth{}
		c.MessageRate = -1
		c.CloseTimeout = 100 * time.Millisecond
	})
	witness, err := e.dialURL(e.url+"?user=witness", nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, stream, splits []byte, deflate bool) {
		limit := 4096 // the default MaxMessageSize
		if deflate {
			limit += deflateSlack
		}
		stream = completeFrames(stream, 32<<10, limit)
		var bye bytes.Buffer
		writeFrame(&bye, true, opClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
		stream = append(stream, bye.Bytes()...)
		whole := echoAnswer(t, e.url, stream, nil, deflate)
		if split := echoAnswer(t, e.url, stream, splits, deflate); !bytes.Equal(split, whole) {
			t.Fatalf("stream %q:\nin one write: %q\nin chunks %v: %q", stream, whole, splits, split)
		}
	})
	if err := wsutil.WriteClientMessage(witness.Conn, ws.OpText, []byte("still here")); err != nil {
		f.Fatal(err)
	}
	if data, err := witness.ReadText(time.Now().Add(5 * time.Second)); err != nil || string(data) != "still here" {
		f.Fatalf("witness got %q, %v", data, err)
	}
}

// completeFrames returns the frames of p up to max bytes, cut before the
// first incomplete frame that a server would wait for: one that declares
// more than p holds, when the declared length is within limit and the
// frame could be valid. A header the server rejects on sight (a length
// beyond limit, a control frame over 125 bytes, a length with its high
// bit set) is kept, and ends the stream.
func completeFrames(p []byte, max, limit int) []byte {
	p = p[:min(len(p), max)]
	used := 0
	for used < len(p) {
		h, n, err := wire.ParseHeader(p[used:])
		switch {
		case err == wire.ErrIncomplete:
			return p[:used]
		case err != nil:
			return p
		case int64(len(p)-used-n) >= h.Length:
			used += n + int(h.Length)
			continue
		case h.OpCode.IsControl() && h.Length > 125, !h.OpCode.IsControl() && h.Length > int64(limit):
			return p[:used+n]
		}
		return p[:used]
	}
	return p
}

// echoAnswer sends stream on a new conformance echo connection, which
// negotiates permessage-deflate when deflate is set, in chunks (see
// writeSplit) and returns every byte the server sent until it closed.
func echoAnswer(t *testing.T, url string, stream, splits []byte, deflate bool) []byte {
	d := ws.Dialer{Timeout: 5 * time.Second}
	if deflate {
		d.Extensions = []httphead.Option{{Name: []byte("permessage-deflate")}}
	}
	conn, br, hs, err := d.Dial(context.Background(), url+"?user=fuzz")
	if err != nil {
		t.Fatal(err)
	}
	if deflate && len(hs.Extensions) == 0 {
		t.Fatal("permessage-deflate was not negotiated")
	}
	defer conn.Close()
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		writeSplit(conn, stream, splits)
	}()
	defer func() { conn.Close(); <-wrote }()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var answer bytes.Buffer
	_, err = answer.ReadFrom(r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server never closed after %q", answer.Bytes())
	}
	return answer.Bytes()
}

func TestAppendUnescaped(t *testing.T) {
	tests := []struct{ in, want string }{
		{in: "abc", want: "abc"},
		{in: "a%2Eb", want: "a.b"},
		{in: "a+b", want: "a b"},
		{in: "%zz", want: "%zz"},
		{in: "%4", want: "%4"},
		{in: "%41%42", want: "AB"},
	}
	for _, tt := range tests {
		if got := string(appendUnescaped(nil, []byte(tt.in))); got != tt.want {
			t.Errorf("appendUnescaped(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
