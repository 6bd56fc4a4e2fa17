package gateway

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/internal/wstest"
)

// storeFor publishes n durable notifications to user id, {"n":from}…, and
// returns their sequences.
func storeFor(t testing.TB, e *env, id string, from, n int) []uint64 {
	t.Helper()
	seqs := make([]uint64, n)
	for i := range n {
		st, err := e.pub.DurableUser(t.Context(), id, fmt.Appendf(nil, `{"n":%d}`, from+i))
		if err != nil {
			t.Fatal(err)
		}
		seqs[i] = st.Sequence
	}
	return seqs
}

// resumed reads the resume answer for ch and checks it; count, when
// given, is the number of frames the replay is cut after.
func (c *client) resumed(ch string, ref int, recovered bool, seq, epoch uint64, reason string, count ...int) {
	c.t.Helper()
	m := c.next()
	want := map[string]any{"type": "resumed", "channel": ch, "ref": float64(ref), "recovered": recovered,
		"seq": float64(seq), "epoch": float64(epoch)}
	if reason != "" {
		want["reason"] = reason
	}
	if len(count) > 0 {
		want["count"] = float64(count[0])
	}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		c.t.Fatalf("got %v, want %v", m, want)
	}
}

// durableFrames reads n message frames of ch and checks that they carry
// seqs, in order, each prev the one before (the first's, prev).
func (c *client) durableFrames(ch string, prev uint64, seqs []uint64) {
	c.t.Helper()
	for _, seq := range seqs {
		m := c.next()
		if m["type"] != "message" || m["channel"] != ch || m["seq"] != float64(seq) || m["prev"] != float64(prev) {
			c.t.Fatalf("got %v, want the message of %s at seq %d, prev %d", m, ch, seq, prev)
		}
		prev = seq
	}
}

func (c *client) resume(ch string, seq, epoch uint64, ref int) {
	c.t.Helper()
	op := map[string]any{"op": "resume", "channel": ch, "ref": ref}
	if seq != 0 || epoch != 0 {
		op["seq"], op["epoch"] = seq, epoch
	}
	c.send(op)
}

// A client that was away resumes from the last sequence it saw: it gets
// the answer, what it missed on its channel (and nothing of another
// user's), each frame chained to the one before, and then live frames
// that continue the chain.
func TestResumeReplaysMissed(t *testing.T) {
	e, epoch := newDurableEnv(t, nil)
	c := e.connect("42")
	seen := storeFor(t, e, "42", 0, 2)
	c.durableFrames("user.42", 0, seen)
	c.Close()

	var missed []uint64
	for i := range 3 {
		missed = append(missed, storeFor(t, e, "42", 10+i, 1)...)
		storeFor(t, e, "43", 10+i, 1)
	}
	c = e.connect("42")
	c.resume("user.42", seen[1], epoch, 7)
	c.resumed("user.42", 7, true, seen[1], epoch, "")
	c.durableFrames("user.42", seen[1], missed)

	live := storeFor(t, e, "42", 20, 1)
	c.durableFrames("user.42", missed[2], live)
	c.silent(50 * time.Millisecond)
	expectCount(t, "replayed", func() float64 { return counterValue(e.srv.metrics.replayed) }, 3)
}

// A resume with nothing missed is answered without reading the stream, and
// simultaneous resumes share their lookups: 200 clients cost a handful of
// requests, not 200.
func TestResumeNothingMissedIsBatched(t *testing.T) {
	e, epoch := newDurableEnv(t, nil)
	const n = 200
	conns := make([]*client, n)
	lasts := make([]uint64, n)
	for i := range conns {
		id := fmt.Sprint("u", i)
		conns[i] = e.connect(id)
		if i%2 == 0 { // half have history, half none
			lasts[i] = storeFor(t, e, id, 0, 1)[0]
			conns[i].durableFrames("user."+id, 0, lasts[i:i+1])
		}
	}
	m := e.srv.metrics
	before := counterValue(m.historyRequests[historyLast])
	for i, c := range conns {
		c.resume("user."+fmt.Sprint("u", i), lasts[i], epoch, i)
	}
	for i, c := range conns {
		c.resumed("user."+fmt.Sprint("u", i), i, true, lasts[i], epoch, "")
	}
	lookups := counterValue(m.historyRequests[historyLast]) - before
	if lookups < 1 || lookups > 20 {
		t.Fatalf("%d resumes made %v lookups, want a few batches", n, lookups)
	}
	if r := counterValue(m.historyRequests[historyRead]); r != 0 {
		t.Fatalf("%v stream reads for resumes that missed nothing", r)
	}
	t.Logf("%d simultaneous resumes with nothing missed: %v requests", n, lookups)
}

// Durable notifications published while a long replay runs arrive after
// it, merged by sequence: every sequence once, in order, the chain unbroken.
func TestResumeMergesLive(t *testing.T) {
	e, epoch := newDurableEnv(t, func(c *Config) { c.ReplayBatch = 7 })
	old := storeFor(t, e, "42", 0, 300)
	c := e.connect("42")
	// Drain what arrived live: the client connected after the stores, so nothing.
	c.silent(20 * time.Millisecond)

	var wg sync.WaitGroup
	var during []uint64
	wg.Add(1)
	go func() {
		defer wg.Done()
		during = storeFor(t, e, "42", 1000, 200)
	}()
	c.resume("user.42", old[0], epoch, 1)

	// Frames of the channel that precede the answer were live before the
	// resume began; the replay covers them.
	var m map[string]any
	for m = c.next(); m["type"] != "resumed"; m = c.next() {
	}
	if m["recovered"] != true || m["seq"] != float64(old[0]) {
		t.Fatalf("answer %v", m)
	}
	wg.Wait()
	want := append(append([]uint64{}, old[1:]...), during...)
	got := make([]uint64, 0, len(want))
	prev := old[0]
	for len(got) < len(want) {
		f := c.next()
		seq, p := uint64(f["seq"].(float64)), uint64(f["prev"].(float64))
		if p != prev {
			t.Fatalf("frame %d (seq %d) has prev %d, want %d", len(got), seq, p, prev)
		}
		got = append(got, seq)
		prev = seq
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sequences differ:\n got  %v\n want %v", got, want)
	}
	c.silent(50 * time.Millisecond)
}

// History evicted past the client's position, a position from another
// epoch, and more missed than the replay limit are all said: recovered is
// false, with the reason, and what the stream still holds is replayed.
func TestResumeUnrecovered(t *testing.T) {
	e, epoch := newDurableEnv(t, func(c *Config) { c.ReplayLimit = 4 })
	if _, err := bus.ApplyStream(t.Context(), e.bus.Conn(), bus.StreamConfig{MaxMsgsPerChannel: 6}); err != nil {
		t.Fatal(err)
	}
	seqs := storeFor(t, e, "42", 0, 10) // the stream keeps seqs[4:]
	c := e.connect("42")

	c.resume("user.42", seqs[1], epoch, 1)
	c.resumed("user.42", 1, false, seqs[1], epoch, "evicted", 4)
	c.durableFrames("user.42", seqs[1], seqs[4:8]) // the limit cuts it too

	c.resume("user.42", seqs[7], epoch, 2)
	c.resumed("user.42", 2, true, seqs[7], epoch, "")
	c.durableFrames("user.42", seqs[7], seqs[8:])

	c.resume("user.42", seqs[8], epoch+1, 3) // another epoch: from the oldest stored
	c.resumed("user.42", 3, false, 0, epoch, "epoch", 4)
	c.durableFrames("user.42", 0, seqs[4:8])

	c.resume("user.42", seqs[4], epoch, 4) // 5 missed, limit 4
	c.resumed("user.42", 4, false, seqs[4], epoch, "limit", 4)
	c.durableFrames("user.42", seqs[4], seqs[5:9])
	c.resume("user.42", seqs[8], epoch, 5) // the rest
	c.resumed("user.42", 5, true, seqs[8], epoch, "")
	c.durableFrames("user.42", seqs[8], seqs[9:])
	c.silent(50 * time.Millisecond)
}

// Acks move the user's watermark: a second device that resumes without a
// position gets what the user has not acked, and nothing of another
// user's acks. An ack beyond what is stored is lowered to the last stored.
func TestAckOfflineDelivery(t *testing.T) {
	e, epoch := newDurableEnv(t, func(c *Config) { c.AckInterval = 20 * time.Millisecond })
	phone := e.connect("42")
	seqs := storeFor(t, e, "42", 0, 3)
	phone.durableFrames("user.42", 0, seqs)
	phone.send(map[string]any{"op": "ack", "channel": "user.42", "seq": seqs[1], "epoch": epoch})
	other := e.connect("43")
	storeFor(t, e, "43", 0, 1)
	other.next()
	other.send(map[string]any{"op": "ack", "channel": "user.43", "seq": seqs[2] + 1000, "epoch": epoch})
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		if n := counterValue(e.srv.metrics.marksWritten); n < 2 {
			return fmt.Errorf("%v marks written", n)
		}
		return nil
	})

	laptop := e.connect("42")
	laptop.resume("user.42", 0, 0, 1)
	laptop.resumed("user.42", 1, true, seqs[1], epoch, "")
	laptop.durableFrames("user.42", seqs[1], seqs[2:])
	laptop.silent(50 * time.Millisecond)

	// Seq 0 in the stream's epoch is a position too: from the oldest
	// stored, whatever the user acked.
	laptop.send(map[string]any{"op": "resume", "channel": "user.42", "seq": 0, "epoch": epoch, "ref": 2})
	laptop.resumed("user.42", 2, true, 0, epoch, "")
	laptop.durableFrames("user.42", 0, seqs)

	tablet := e.connect("43")
	tablet.resume("user.43", 0, 0, 2)
	m := tablet.next()
	if m["type"] != "resumed" || m["seq"].(float64) >= float64(seqs[2]+1000) {
		t.Fatalf("an ack of the future moved the watermark past what is stored: %v", m)
	}
	tablet.silent(50 * time.Millisecond)
}

// A resume that finds no position and no watermark replays what the stream
// holds, oldest first.
func TestResumeWithoutPosition(t *testing.T) {
	e, epoch := newDurableEnv(t, nil)
	seqs := storeFor(t, e, "42", 0, 3)
	c := e.connect("42")
	c.resume("user.42", 0, 0, 9)
	c.resumed("user.42", 9, true, 0, epoch, "")
	c.durableFrames("user.42", 0, seqs)
}

// Durable ops that cannot be served get a clear error and nothing else
// happens: the connection goes on, and another user's channel can be
// neither resumed nor acked.
func TestResumeRefused(t *testing.T) {
	e, epoch := newDurableEnv(t, nil)
	c := e.connect("42", "topic.*")
	for _, tc := range []struct {
		op   string
		code string
	}{
		{`{"op":"resume","channel":"user.43","seq":1,"epoch":1,"ref":1}`, codeForbidden},
		{`{"op":"resume","channel":"topic.news","ref":1}`, codeForbidden}, // not subscribed
		{`{"op":"resume","channel":"user.*","ref":1}`, codeInvalidChannel},
		{`{"op":"resume","channel":"user.42","seq":5,"ref":1}`, codeBadRequest},
		{`{"op":"resume","channel":"user.42","seq":9007199254740993,"epoch":1,"ref":1}`, codeBadRequest},
		{`{"op":"resume","channel":"user.42","seq":-1,"epoch":1,"ref":1}`, codeBadRequest},
		{`{"op":"resume","channel":"user.42","seq":"1","epoch":1,"ref":1}`, codeBadRequest},
		{`{"op":"ack","channel":"user.43","seq":1,"epoch":1,"ref":1}`, codeForbidden},
		{`{"op":"ack","channel":"user.42","ref":1}`, codeBadRequest},
		{fmt.Sprintf(`{"op":"ack","channel":"user.42","seq":1,"epoch":%d,"ref":1}`, epoch+1), codeStaleEpoch},
	} {
		if err := c.WriteText([]byte(tc.op)); err != nil {
			t.Fatal(err)
		}
		m := c.next()
		if m["type"] != "error" || m["code"] != tc.code {
			t.Fatalf("%s: got %v, want error %s", tc.op, m, tc.code)
		}
	}
	expectPong(t, c, 3)

	off := newEnv(t, nil) // no JetStream: no history
	v := off.connect("42")
	v.resume("user.42", 1, 1, 4)
	if m := v.next(); m["code"] != codeNotDurable {
		t.Fatalf("got %v, want not_durable", m)
	}
}

// A thousand resumes of one channel from one client: each is answered,
// resumed or resume_pending, and the connection and another client carry
// on.
func TestResumeFlood(t *testing.T) {
	e, epoch := newDurableEnv(t, func(c *Config) { c.MessageRate = -1 })
	seqs := storeFor(t, e, "42", 0, 5)
	c, bystander := e.connect("42"), e.connect("43")
	frames := make([][]byte, 1000)
	for i := range frames {
		frames[i], _ = json.Marshal(map[string]any{"op": "resume", "channel": "user.42", "seq": seqs[0], "epoch": epoch, "ref": i})
	}
	go func() {
		for _, f := range frames {
			if c.WriteText(f) != nil {
				return
			}
		}
	}()
	answers := 0
	for answers < len(frames) {
		m := c.next()
		switch {
		case m["type"] == "resumed", m["code"] == codeResumePending:
			answers++
		case m["type"] == "message":
		default:
			t.Fatalf("got %v", m)
		}
	}
	c.send(map[string]any{"op": "ping", "ref": 1})
	for m := c.next(); m["type"] != "pong"; m = c.next() { // the last replay's frames first
		if m["type"] != "message" {
			t.Fatalf("got %v, want replayed frames and the pong", m)
		}
	}
	live := storeFor(t, e, "43", 0, 1)
	bystander.durableFrames("user.43", 0, live)
}

// A channel that is unsubscribed while it replays stops replaying: no frame
// of it follows the unsubscribed answer.
func TestResumeCancelledByUnsubscribe(t *testing.T) {
	e, epoch := newDurableEnv(t, func(c *Config) { c.ReplayBatch = 1 })
	for i := range 200 {
		if _, err := e.pub.DurableTopic(t.Context(), "news", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c := e.connect("42", "topic.*")
	c.send(map[string]any{"op": "subscribe", "channel": "topic.news", "ref": 1})
	c.next()
	c.resume("topic.news", 0, 0, 2)
	c.send(map[string]any{"op": "unsubscribe", "channel": "topic.news", "ref": 3})
	for {
		m := c.next()
		if m["type"] == "unsubscribed" {
			break
		}
	}
	c.silent(100 * time.Millisecond)
	_ = epoch
}

// JetStream failing shows on /readyz's durable line and in a resume's
// answer, unavailable, while the gateway stays ready: volatile
// notifications do not need it. Both recover with JetStream.
func TestResumeHistoryUnavailable(t *testing.T) {
	e, epoch := newDurableEnv(t, nil)
	admin := httptest.NewServer(e.srv.AdminHandler())
	defer admin.Close()
	c := e.connect("42")
	c.resume("user.42", 0, 0, 1)
	c.resumed("user.42", 1, true, 0, epoch, "")
	expectStatus(t, admin.URL, "/readyz", 200, "ready\ndurable: ok")

	deleteStream(t, e)
	c.resume("user.42", 0, 0, 2)
	if m := c.next(); m["type"] != "error" || m["code"] != codeUnavailable || m["ref"] != 2.0 {
		t.Fatalf("got %v, want unavailable", m)
	}
	// The deleted stream's advisory made the epoch unknown at once.
	expectStatus(t, admin.URL, "/readyz", 200, "ready\ndurable: unavailable: the stream is not known")
	expectCount(t, "failed resumes", func() float64 { return counterValue(e.srv.metrics.resumes[resumeFailed]) }, 1)
	e.expectUserMessage("42", "volatile still flows", c)

	if _, err := bus.ApplyStream(t.Context(), e.bus.Conn(), bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.bus.TrackStream(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	c.resume("user.42", 0, 0, 3)
	if m := c.next(); m["type"] != "resumed" || m["recovered"] != true {
		t.Fatalf("got %v, want resumed", m)
	}
	expectStatus(t, admin.URL, "/readyz", 200, "ready\ndurable: ok")
}

// A connection that goes mid-replay takes its replay with it: nothing of
// it stays in the server.
func TestResumeEndsWithConnection(t *testing.T) {
	e, _ := newDurableEnv(t, func(c *Config) { c.ReplayBatch = 1 })
	storeFor(t, e, "42", 0, 100)
	c := e.connect("42")
	c.resume("user.42", 0, 0, 1)
	c.next() // the answer: the replay runs
	c.Close()
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		e.srv.replays.mu.Lock()
		defer e.srv.replays.mu.Unlock()
		if n := len(e.srv.replays.m); n != 0 {
			return fmt.Errorf("%d connections still replaying", n)
		}
		return nil
	})
}

// A replay is paced by its client: 1,000 notifications of 8 KiB (8 MiB,
// 32 times the write queue limit; the channel's whole history) replayed to
// a client that reads nothing for half a second and then everything: it
// is not dropped as a slow consumer, and it gets them all, in order. The
// replay waited for it.
func TestReplayIsPaced(t *testing.T) {
	e, epoch := newDurableEnv(t, nil)
	pad := strings.Repeat("x", 8192)
	var seqs []uint64
	for i := range 1000 {
		st, err := e.pub.DurableUser(t.Context(), "42", fmt.Appendf(nil, `{"n":%d,"pad":%q}`, i, pad))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, st.Sequence)
	}
	c := e.connect("42")
	c.resume("user.42", 0, 0, 1)
	time.Sleep(500 * time.Millisecond) // not reading
	c.resumed("user.42", 1, true, 0, epoch, "")
	c.durableFrames("user.42", 0, seqs)
	if n := e.srv.metrics.slowConsumerCount(); n != 0 {
		t.Fatalf("%v slow consumers", n)
	}
	if q := e.srv.queuedBytes.Load(); q > int64(e.srv.cfg.WriteQueueLimit) {
		t.Fatalf("%d bytes queued", q)
	}
}

// After the bus reconnects to NATS, once the stream's epoch is known
// again (so that a resume can be served), every client is told it may
// have missed durable notifications, once. (What a resume then brings is
// in cmd/wsgate's TestDurableSurvivesNATSRestart, where NATS is away for
// long enough to miss some.)
func TestMissedAfterReconnect(t *testing.T) {
	e, epoch := newDurableEnv(t, nil)
	c, volatile := e.connect("42"), e.connect("43")
	seen := storeFor(t, e, "42", 0, 1)
	c.durableFrames("user.42", 0, seen)

	e.bus.Conn().ForceReconnect()
	for _, x := range []*client{c, volatile} { // one without positions ignores it
		if m := x.next(); m["type"] != "missed" {
			t.Fatalf("got %v, want missed", m)
		}
	}
	if e.bus.Epoch() != epoch {
		t.Fatalf("told before the epoch was known again: %d", e.bus.Epoch())
	}
	expectCount(t, "missed notices", func() float64 { return counterValue(e.srv.metrics.missed) }, 1)
	c.resume("user.42", seen[0], epoch, 1)
	c.resumed("user.42", 1, true, seen[0], epoch, "")
	c.silent(50 * time.Millisecond)
}

// The lookup waits longer in a storm, so that its requests carry more
// channels, and no longer than maxResumeLinger.
func TestLinger(t *testing.T) {
	for _, tc := range []struct {
		n     int
		since time.Duration
		want  time.Duration
	}{
		{0, 0, resumeLinger},                               // the first
		{1, 5 * time.Millisecond, resumeLinger},            // one at a time
		{25, 5 * time.Millisecond, maxResumeLinger},        // 5,000 a second
		{512, 5 * time.Millisecond, 10 * time.Millisecond}, // 100,000 a second
		{1024, time.Millisecond, resumeLinger},             // a full batch in a millisecond
		{100, 2 * time.Second, resumeLinger},               // long ago
	} {
		if got := linger(tc.n, tc.since); got != tc.want {
			t.Errorf("linger(%d, %v) = %v, want %v", tc.n, tc.since, got, tc.want)
		}
	}
}

// A notification can be read by a replay before its live copy reaches the
// gateway (JetStream republishes after it stores, on its own path): the
// live copy that comes after the replay ended is dropped, not sent twice,
// and the next one is live as usual.
func TestReplayFloorDropsLateLiveCopy(t *testing.T) {
	gate := make(chan struct{})
	var gated atomic.Bool
	slow := func(next bus.Handler) bus.Handler {
		return func(ch string, payload []byte, pos wire.Position) {
			if gated.Load() && pos.Seq != 0 {
				<-gate // the live copy is late
			}
			next(ch, payload, pos)
		}
	}
	e, epoch := newDurableEnv(t, nil, slow)
	c := e.connect("42")
	first := storeFor(t, e, "42", 0, 1)
	c.durableFrames("user.42", 0, first)

	gated.Store(true)
	late := storeFor(t, e, "42", 1, 1) // stored; its live copy waits at the gate
	c.resume("user.42", first[0], epoch, 1)
	c.resumed("user.42", 1, true, first[0], epoch, "")
	c.durableFrames("user.42", first[0], late) // from the replay
	gated.Store(false)
	close(gate)
	c.silent(100 * time.Millisecond) // the late live copy: dropped

	next := storeFor(t, e, "42", 2, 1)
	c.durableFrames("user.42", late[0], next)
	e.srv.replays.mu.Lock()
	left := len(e.srv.replays.m)
	e.srv.replays.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d floors left after a live frame passed them", left)
	}
}

// connectResuming connects as user id with ?resume=param and reads the
// welcome.
func (e *env) connectResuming(id, param string) *client {
	e.t.Helper()
	c, err := e.dialURL(e.url+"?token="+token(e.t, id, time.Hour)+"&resume="+param, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	c.welcomed(id)
	return c
}

// Positions in the upgrade request resume from the welcome on: what was
// missed arrives chained from the position with no answer before it, and
// nothing at all when nothing was missed; an answer comes only when
// something is missing.
func TestResumeInUpgrade(t *testing.T) {
	e, epoch := newDurableEnv(t, func(c *Config) { c.ReplayLimit = 3 })
	seen := storeFor(t, e, "42", 0, 1)
	missed := storeFor(t, e, "42", 1, 2)
	pos := func(ch string, seq uint64) string { return fmt.Sprintf("%s:%d:%d", ch, seq, epoch) }

	c := e.connectResuming("42", pos("user.42", seen[0])+","+pos("broadcast", 0))
	c.durableFrames("user.42", seen[0], missed)
	live := storeFor(t, e, "42", 3, 1)
	c.durableFrames("user.42", missed[1], live)
	c.silent(50 * time.Millisecond)

	quiet := e.connectResuming("42", pos("user.42", live[0]))
	quiet.silent(50 * time.Millisecond) // nothing missed: not a byte
	next := storeFor(t, e, "42", 4, 1)
	quiet.durableFrames("user.42", live[0], next)

	other := e.connectResuming("42", pos("user.42", seen[0]+10000)) // a seq from the future is the client's to keep
	other.silent(50 * time.Millisecond)
	cut := e.connectResuming("42", pos("user.42", 0)) // 5 stored, limit 3
	m := cut.next()
	if m["type"] != "resumed" || m["reason"] != "limit" || m["count"] != 3.0 || m["ref"] != 0.0 || m["seq"] != 0.0 {
		t.Fatalf("got %v, want the resumed answer with reason limit and count 3", m)
	}
	expectCount(t, "resume ops counted", func() float64 { return counterValue(e.srv.metrics.clientMessages[msgResume]) }, 5)
}

// A ?resume= that cannot be taken is refused with one error frame after the
// welcome, and the connection carries on without it.
func TestResumeInUpgradeRefused(t *testing.T) {
	e, epoch := newDurableEnv(t, nil)
	for _, param := range []string{
		"user.42",                             // no position
		"user.42:1",                           // no epoch
		"user.42:1:0",                         // epoch 0
		"user.42:-1:5",                        // negative
		"user.42:9007199254740993:5",          // above 2^53
		"user.*:1:5",                          // not a channel
		fmt.Sprintf("user.43:1:%d", epoch),    // another user's
		fmt.Sprintf("topic.news:1:%d", epoch), // topics resume by op, after subscribed
		fmt.Sprintf("user.42:1:%d,user.42:2:%d", epoch, epoch), // twice
		fmt.Sprintf("user.42:1:%d,broadcast:1:%d,broadcast:2:%d", epoch, epoch, epoch),
	} {
		c := e.connectResuming("42", param)
		if m := c.next(); m["type"] != "error" || m["code"] != codeBadRequest || m["ref"] != 0.0 {
			t.Fatalf("?resume=%s: got %v, want bad_request", param, m)
		}
		expectPong(t, c, 1)
		c.Close()
	}
	off := newEnv(t, nil)
	v, err := off.dialURL(off.url+"?token="+token(t, "42", time.Hour)+"&resume=user.42:1:5", nil)
	if err != nil {
		t.Fatal(err)
	}
	v.welcomed("42")
	if m := v.next(); m["code"] != codeNotDurable {
		t.Fatalf("got %v, want not_durable", m)
	}
}

// Many replays at once are read together: one pass over the range they
// span (scan), not one walk of it per channel, and each client still gets
// exactly its own notifications, chained from its position; one cut at
// the replay limit is cut inside the group too.
func TestReplayGroup(t *testing.T) {
	e, epoch := newDurableEnv(t, func(c *Config) { c.ReplayLimit = 6; c.ReplayReaders = 1 })
	const users = 3 * groupMin
	first := make([]uint64, users)
	missed := make([][]uint64, users)
	for i := range users {
		first[i] = storeFor(t, e, fmt.Sprint("g", i), 0, 1)[0]
	}
	for round := range 5 {
		for i := range users {
			missed[i] = append(missed[i], storeFor(t, e, fmt.Sprint("g", i), 1+round, 1)...)
		}
	}
	heavy := storeFor(t, e, "g0", 10, 4) // g0 missed 9: cut at 6
	missed[0] = append(missed[0], heavy...)
	conns := make([]*client, users)
	for i := range conns {
		conns[i] = e.connect(fmt.Sprint("g", i))
	}
	m := e.srv.metrics
	scans, reads := counterValue(m.historyRequests[historyScan]), counterValue(m.historyRequests[historyRead])
	for i, c := range conns {
		c.resume(fmt.Sprint("user.g", i), first[i], epoch, i)
	}
	for i, c := range conns {
		ch := fmt.Sprint("user.g", i)
		if i == 0 {
			c.resumed(ch, i, false, first[i], epoch, "limit", 6)
			c.durableFrames(ch, first[i], missed[i][:6])
			continue
		}
		c.resumed(ch, i, true, first[i], epoch, "")
		c.durableFrames(ch, first[i], missed[i])
	}
	for _, c := range conns {
		c.silent(20 * time.Millisecond)
	}
	if n := counterValue(m.historyRequests[historyScan]) - scans; n < 1 {
		t.Fatalf("no scan for %d replays at once", users)
	}
	if n := counterValue(m.historyRequests[historyRead]) - reads; n >= users/2 {
		t.Fatalf("%v reads for %d replays: the group did not read them", n, users)
	}
}

// Replays read in a group meet live traffic like one read alone: 32
// clients resume together while more is published to each of them, and
// every one gets every sequence of its channel once, in order, chained.
func TestReplayGroupMergesLive(t *testing.T) {
	e, epoch := newDurableEnv(t, func(c *Config) { c.ReplayReaders = 1 })
	const users = 2 * groupMin
	first := make([]uint64, users)
	for i := range users {
		first[i] = storeFor(t, e, fmt.Sprint("m", i), 0, 1)[0]
	}
	want := make([][]uint64, users)
	for round := range 20 {
		for i := range users {
			want[i] = append(want[i], storeFor(t, e, fmt.Sprint("m", i), 1+round, 1)...)
		}
	}
	conns := make([]*client, users)
	for i := range conns {
		conns[i] = e.connect(fmt.Sprint("m", i))
	}
	var wg sync.WaitGroup
	live := make([][]uint64, users)
	wg.Add(1)
	go func() { // published while the group reads
		defer wg.Done()
		for round := range 10 {
			for i := range users {
				live[i] = append(live[i], storeFor(t, e, fmt.Sprint("m", i), 100+round, 1)...)
			}
		}
	}()
	for i, c := range conns {
		c.resume(fmt.Sprint("user.m", i), first[i], epoch, i)
	}
	wg.Wait()
	for i, c := range conns {
		ch := fmt.Sprint("user.m", i)
		var m map[string]any
		for m = c.next(); m["type"] != "resumed"; m = c.next() { // live before the resume began
		}
		if m["recovered"] != true || m["seq"] != float64(first[i]) {
			t.Fatalf("%s: answer %v", ch, m)
		}
		c.durableFrames(ch, first[i], append(append([]uint64{}, want[i]...), live[i]...))
		c.silent(10 * time.Millisecond)
	}
	if counterValue(e.srv.metrics.historyRequests[historyScan]) < 1 {
		t.Fatal("no group read")
	}
}
