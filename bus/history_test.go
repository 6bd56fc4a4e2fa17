package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// newHistory starts a bus whose embedded server runs JetStream with the
// stream of sc and the default ack bucket, and returns its History and a
// publisher on a separate connection.
func newHistory(t testing.TB, sc StreamConfig) (*Bus, *History, *Publisher) {
	t.Helper()
	b, _ := newDurableBus(t, "", sc)
	if _, err := ApplyAckBucket(t.Context(), b.Conn(), AckBucketConfig{}); err != nil {
		t.Fatalf("ApplyAckBucket: %v", err)
	}
	h, err := b.History(HistoryConfig{})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	return b, h, newPublisher(t, b.ClientURL())
}

// publish stores payload on channel ch ("user.<id>" or "topic.<name>")
// and returns its sequence.
func publish(t testing.TB, p *Publisher, ch, payload string) uint64 {
	t.Helper()
	var st Stored
	var err error
	if id, ok := strings.CutPrefix(ch, "user."); ok {
		st, err = p.DurableUser(t.Context(), id, []byte(payload))
	} else {
		st, err = p.DurableTopic(t.Context(), strings.TrimPrefix(ch, "topic."), []byte(payload))
	}
	if err != nil {
		t.Fatalf("publish to %s: %v", ch, err)
	}
	return st.Sequence
}

func TestHistoryLast(t *testing.T) {
	b, h, p := newHistory(t, StreamConfig{})
	ctx := t.Context()

	none := []uint64{7, 7}
	if err := h.Last(ctx, []string{"user.42", "broadcast"}, none); err != nil || none[0] != 0 || none[1] != 0 {
		t.Fatalf("Last on an empty stream = %v, %v; want zeros", none, err)
	}

	publish(t, p, "user.42", "1")
	news := publish(t, p, "topic.news", "n")
	u42 := publish(t, p, "user.42", "2")
	st, err := p.DurableBroadcast(ctx, []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	channels := []string{"user.42", "topic.news", "user.7", "broadcast", "user.42"}
	got := []uint64{9, 9, 9, 9, 9} // overwritten, zeros included
	if err := h.Last(ctx, channels, got); err != nil {
		t.Fatal(err)
	}
	if want := []uint64{u42, news, 0, st.Sequence, u42}; !slices.Equal(got, want) {
		t.Fatalf("Last(%q) = %v, want %v", channels, got, want)
	}

	// An answer the server ends early, here after each message, is asked
	// for again from where it stopped.
	h.maxBytes = 1
	paged := make([]uint64, len(channels))
	before := b.Conn().Stats().OutMsgs
	if err := h.Last(ctx, channels, paged); err != nil {
		t.Fatal(err)
	}
	if n := b.Conn().Stats().OutMsgs - before; !slices.Equal(paged, got) || n != 3 {
		t.Fatalf("Last in pages of one = %v in %d requests, want %v in 3", paged, n, got)
	}
	h.maxBytes = 0

	before = b.Conn().Stats().OutMsgs
	if err := h.Last(ctx, nil, nil); err != nil {
		t.Fatalf("Last of no channels: %v", err)
	}
	if n := b.Conn().Stats().OutMsgs - before; n != 0 {
		t.Fatalf("Last of no channels sent %d messages, want none", n)
	}

	tooMany := make([]string, MaxLastBatch+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprint("user.", i)
	}
	tests := []struct {
		name     string
		channels []string
		last     []uint64
		want     error
	}{
		{"more than MaxLastBatch", tooMany, make([]uint64, len(tooMany)), ErrInvalidConfig},
		{"fewer results than channels", []string{"user.1", "user.2"}, make([]uint64, 1), ErrInvalidConfig},
		{"a wildcard", []string{"user.>"}, make([]uint64, 1), ErrInvalidName},
		{"an empty name", []string{""}, make([]uint64, 1), ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.Last(ctx, tt.channels, tt.last); !errors.Is(err, tt.want) {
				t.Fatalf("Last = %v, want %v", err, tt.want)
			}
		})
	}
}

// Last over 1,000 channels is one request on the wire: one message out,
// each channel's last message and the end-of-batch marker in.
func TestHistoryLastOneRequest(t *testing.T) {
	b, h, p := newHistory(t, StreamConfig{})
	js, err := jetstream.New(p.nc)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	channels := make([]string, n)
	acks := make([]jetstream.PubAckFuture, n)
	for i := range channels {
		channels[i] = fmt.Sprint("user.", i)
		if acks[i], err = js.PublishAsync("durable.notify."+channels[i], []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	want := make([]uint64, n)
	for i, f := range acks {
		select {
		case ack := <-f.Ok():
			want[i] = ack.Sequence
		case err := <-f.Err():
			t.Fatalf("publish %d: %v", i, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("publish %d: no ack", i)
		}
	}

	got := make([]uint64, n)
	before := b.Conn().Stats()
	if err := h.Last(t.Context(), channels, got); err != nil {
		t.Fatal(err)
	}
	after := b.Conn().Stats()
	if !slices.Equal(got, want) {
		t.Fatalf("Last over %d channels: %v…, want %v…", n, got[:5], want[:5])
	}
	if out, in := after.OutMsgs-before.OutMsgs, after.InMsgs-before.InMsgs; out != 1 || in != n+1 {
		t.Fatalf("Last over %d channels sent %d messages and received %d, want 1 and %d", n, out, in, n+1)
	}
}

func TestHistoryRead(t *testing.T) {
	_, h, p := newHistory(t, StreamConfig{})
	// a0 is stored with headers of its own, which the answer keeps.
	st, err := p.DurableUser(t.Context(), "42", []byte("a0"), WithMsgID("a0"), WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	mine, other := []uint64{st.Sequence}, []uint64{publish(t, p, "topic.news", "b0")}
	for i := 1; i < 5; i++ {
		mine = append(mine, publish(t, p, "user.42", fmt.Sprint("a", i)))
		if i < 3 {
			other = append(other, publish(t, p, "topic.news", fmt.Sprint("b", i)))
		}
	}
	// mine: 1 3 5 7 8; other: 2 4 6.
	tests := []struct {
		name     string
		channel  string
		from     uint64
		max      int
		want     []string
		wantMore uint64
	}{
		{"from the oldest", "user.42", 0, 10, []string{"a0", "a1", "a2", "a3", "a4"}, 0},
		{"a limit beyond one batch", "user.42", 0, 1 << 30, []string{"a0", "a1", "a2", "a3", "a4"}, 0},
		{"from the first", "user.42", mine[0], 10, []string{"a0", "a1", "a2", "a3", "a4"}, 0},
		{"from a middle one, inclusive", "user.42", mine[2], 10, []string{"a2", "a3", "a4"}, 0},
		{"from another channel's seq", "user.42", other[1], 10, []string{"a2", "a3", "a4"}, 0},
		{"from the last", "user.42", mine[4], 10, []string{"a4"}, 0},
		{"from beyond the end", "user.42", mine[4] + 1, 10, nil, 0},
		{"far beyond the end", "user.42", 1 << 40, 10, nil, 0},
		{"fewer than stored", "user.42", 0, 2, []string{"a0", "a1"}, 3},
		{"fewer from a middle one", "user.42", mine[1], 1, []string{"a1"}, 3},
		{"exactly what is left", "user.42", mine[3], 2, []string{"a3", "a4"}, 0},
		{"the other channel", "topic.news", 0, 1, []string{"b0"}, 2},
		{"a channel with nothing", "user.7", 0, 10, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			var prev uint64
			more, err := h.Read(t.Context(), tt.channel, tt.from, tt.max, func(seq uint64, data []byte) {
				if seq <= prev || seq < tt.from {
					t.Errorf("seq %d after %d, reading from %d", seq, prev, tt.from)
				}
				prev = seq
				got = append(got, string(data))
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) || more != tt.wantMore {
				t.Fatalf("Read(%s, from %d, max %d) = %q, more %d; want %q, more %d",
					tt.channel, tt.from, tt.max, got, more, tt.want, tt.wantMore)
			}
		})
	}
	if _, err := h.Read(t.Context(), "user.42", 0, 0, func(uint64, []byte) {}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Read of at most 0 = %v, want ErrInvalidConfig", err)
	}
	if _, err := h.Read(t.Context(), "user.*", 0, 1, func(uint64, []byte) {}); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Read of a wildcard = %v, want ErrInvalidName", err)
	}
}

// After the stream dropped a channel's oldest notifications, Read from an
// evicted sequence starts at the first one kept.
func TestHistoryReadEvicted(t *testing.T) {
	_, h, p := newHistory(t, StreamConfig{MaxMsgsPerChannel: 3})
	var seqs []uint64
	for i := range 6 {
		seqs = append(seqs, publish(t, p, "user.1", fmt.Sprint(i)))
		publish(t, p, "user.2", "other")
	}
	for _, from := range []uint64{0, seqs[0], seqs[2]} {
		var got []uint64
		more, err := h.Read(t.Context(), "user.1", from, 2, func(seq uint64, _ []byte) { got = append(got, seq) })
		if err != nil {
			t.Fatal(err)
		}
		if want := seqs[3:5]; !slices.Equal(got, want) || more != 1 {
			t.Fatalf("Read from %d = %v, more %d; want %v, more 1", from, got, more, want)
		}
	}
	last := make([]uint64, 1)
	if err := h.Last(t.Context(), []string{"user.1"}, last); err != nil || last[0] != seqs[5] {
		t.Fatalf("Last = %v, %v; want %d", last, err, seqs[5])
	}
}

func TestHistoryMarks(t *testing.T) {
	b, h, _ := newHistory(t, StreamConfig{})
	ctx := t.Context()
	js, err := jetstream.New(b.Conn())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, DefaultAckBucket)
	if err != nil {
		t.Fatal(err)
	}
	const epoch = 1764650000000
	puts := []struct {
		user, channel string
		m             Position
	}{
		{"42", "user.42", Position{Seq: 17, Epoch: epoch}},
		{"42", "topic.news", Position{Seq: 3, Epoch: epoch}},
		{"42", "user.42", Position{Seq: 18, Prev: 5, Epoch: epoch}}, // overwrites; Prev is not stored
		{"8", "broadcast", Position{Seq: 2, Epoch: epoch}},
		{"9", "topic.a.b", Position{Seq: 4, Epoch: epoch}},
	}
	for _, p := range puts {
		if err := h.PutMark(ctx, p.user, p.channel, p.m); err != nil {
			t.Fatalf("PutMark(%s, %s): %v", p.user, p.channel, err)
		}
	}
	if e, err := kv.Get(ctx, "42.user.42"); err != nil || string(e.Value()) != "1764650000000:18" {
		t.Fatalf("stored value of 42.user.42: %v", err)
	}
	if err := kv.Delete(ctx, "42.topic.news"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "8.broadcast"); err != nil {
		t.Fatal(err)
	}
	for key, value := range map[string]string{"7.user.7": "garbage", "7.topic.x": "1:", "7.topic.y": ""} {
		if _, err := kv.PutString(ctx, key, value); err != nil {
			t.Fatal(err)
		}
	}

	users := []string{"42", "42", "1", "8", "7", "7", "7", "9", "42"}
	channels := []string{"user.42", "topic.news", "user.1", "broadcast", "user.7", "topic.x", "topic.y", "topic.a.b", "user.42"}
	got := make([]Position, len(users))
	for i := range got {
		got[i] = Position{Seq: 99} // overwritten
	}
	if err := h.Marks(ctx, users, channels, got); err != nil {
		t.Fatal(err)
	}
	m18, m4 := Position{Seq: 18, Epoch: epoch}, Position{Seq: 4, Epoch: epoch}
	want := []Position{m18, {}, {}, {}, {}, {}, {}, m4, m18}
	if !slices.Equal(got, want) {
		t.Fatalf("Marks = %+v, want %+v", got, want)
	}
	if n := h.BadMarks(); n != 3 {
		t.Fatalf("BadMarks = %d, want 3 (garbage, a missing seq, empty)", n)
	}

	before := b.Conn().Stats().OutMsgs
	if err := h.Marks(ctx, nil, nil, nil); err != nil {
		t.Fatalf("Marks of nothing: %v", err)
	}
	if n := b.Conn().Stats().OutMsgs - before; n != 0 {
		t.Fatalf("Marks of nothing sent %d messages, want none", n)
	}
	none := make([]Position, 2)
	if err := h.Marks(ctx, []string{"100", "101"}, []string{"user.100", "user.101"}, none); err != nil || none[0] != (Position{}) || none[1] != (Position{}) {
		t.Fatalf("Marks of keys never written = %+v, %v", none, err)
	}

	tests := []struct {
		name   string
		call   func() error
		wanted error
	}{
		{"user with a dot", func() error { return h.PutMark(ctx, "4.2", "user.42", m18) }, ErrInvalidName},
		{"wildcard channel", func() error { return h.PutMark(ctx, "42", "user.*", m18) }, ErrInvalidName},
		{"marks of a bad user", func() error { return h.Marks(ctx, []string{""}, []string{"user.1"}, make([]Position, 1)) }, ErrInvalidName},
		{"fewer channels", func() error { return h.Marks(ctx, []string{"1", "2"}, []string{"user.1"}, make([]Position, 2)) }, ErrInvalidConfig},
		{"fewer results", func() error { return h.Marks(ctx, []string{"1"}, []string{"user.1"}, nil) }, ErrInvalidConfig},
		{"too many", func() error {
			n := MaxLastBatch + 1
			return h.Marks(ctx, make([]string, n), make([]string, n), make([]Position, n))
		}, ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.wanted) {
				t.Fatalf("%v, want %v", err, tt.wanted)
			}
		})
	}
}

func TestApplyAckBucket(t *testing.T) {
	b, _ := newBus(t, Config{StoreDir: t.TempDir()}, nil)
	ctx := t.Context()
	tests := []struct {
		cfg     AckBucketConfig
		wantTTL time.Duration
	}{
		{AckBucketConfig{}, DefaultMaxAge},
		{AckBucketConfig{}, DefaultMaxAge}, // idempotent
		{AckBucketConfig{MaxAge: time.Hour}, time.Hour},
		{AckBucketConfig{MaxAge: -1}, 0}, // forever
	}
	var created time.Time
	for i, tt := range tests {
		kv, err := ApplyAckBucket(ctx, b.Conn(), tt.cfg)
		if err != nil {
			t.Fatalf("ApplyAckBucket %d (%+v): %v", i, tt.cfg, err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		info := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
		if i == 0 {
			created = info.Created
			if _, err := kv.PutString(ctx, "1.user.1", "1:1"); err != nil {
				t.Fatal(err)
			}
			info.State.Msgs = 1
		}
		c := info.Config
		if st.Bucket() != DefaultAckBucket || st.TTL() != tt.wantTTL || st.History() != 1 ||
			c.Storage != jetstream.FileStorage || c.Replicas != 1 || !c.AllowDirect {
			t.Fatalf("ApplyAckBucket %d: bucket %s, TTL %v (want %v), history %d, config %+v",
				i, st.Bucket(), st.TTL(), tt.wantTTL, st.History(), c)
		}
		if !info.Created.Equal(created) || info.State.Msgs != 1 {
			t.Fatalf("ApplyAckBucket %d recreated the bucket or lost its values: created %v, %d values", i, info.Created, info.State.Msgs)
		}
	}
	for _, cfg := range []AckBucketConfig{{Name: "a.b"}, {Name: "acks>"}, {Replicas: -1}} {
		if _, err := ApplyAckBucket(ctx, b.Conn(), cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ApplyAckBucket(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

func TestHistoryConfigInvalid(t *testing.T) {
	b, _ := newBus(t, Config{}, nil)
	tests := []struct {
		cfg  HistoryConfig
		want error
	}{
		{HistoryConfig{Prefix: "notify..x"}, ErrInvalidName},
		{HistoryConfig{Stream: "a.b"}, ErrInvalidConfig},
		{HistoryConfig{AckBucket: "acks.x"}, ErrInvalidConfig},
	}
	for _, tt := range tests {
		if _, err := b.History(tt.cfg); !errors.Is(err, tt.want) {
			t.Errorf("History(%+v) = %v, want %v", tt.cfg, err, tt.want)
		}
	}
	h, err := b.History(HistoryConfig{Prefix: "app", Stream: "APP", AckBucket: "app_acks"})
	if err != nil {
		t.Fatal(err)
	}
	if h.durable != "durable.app." || h.stream != "APP" || h.kvPre != "$KV.app_acks." || h.kvStream != "KV_app_acks" {
		t.Fatalf("History names %+v", h)
	}
}

// historyCalls makes each kind of History request once.
func historyCalls(ctx context.Context, h *History) map[string]error {
	_, readErr := h.Read(ctx, "user.42", 0, 10, func(uint64, []byte) {})
	return map[string]error{
		"Last":    h.Last(ctx, []string{"user.42"}, make([]uint64, 1)),
		"Read":    readErr,
		"Marks":   h.Marks(ctx, []string{"42"}, []string{"user.42"}, make([]Position, 1)),
		"PutMark": h.PutMark(ctx, "42", "user.42", Position{Seq: 1, Epoch: 1}),
	}
}

func TestHistoryUnavailable(t *testing.T) {
	t.Run("no jetstream", func(t *testing.T) {
		b, _ := newBus(t, Config{}, nil)
		h, err := b.History(HistoryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		for call, err := range historyCalls(t.Context(), h) {
			if !errors.Is(err, ErrJetStreamUnavailable) {
				t.Errorf("%s without JetStream = %v, want ErrJetStreamUnavailable", call, err)
			}
		}
		err = h.Last(t.Context(), []string{"user.1"}, make([]uint64, 1))
		if want := "bus: history NOTIFY: jetstream unavailable"; err == nil || err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
		if _, err := ApplyAckBucket(t.Context(), b.Conn(), AckBucketConfig{}); !errors.Is(err, ErrJetStreamUnavailable) {
			t.Errorf("ApplyAckBucket without JetStream = %v, want ErrJetStreamUnavailable", err)
		}
	})
	t.Run("no stream, no bucket", func(t *testing.T) {
		b, _ := newBus(t, Config{StoreDir: t.TempDir()}, nil)
		h, err := b.History(HistoryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		for call, err := range historyCalls(t.Context(), h) {
			if !errors.Is(err, ErrNoStreamNamed) {
				t.Errorf("%s without the stream or bucket = %v, want ErrNoStreamNamed", call, err)
			}
		}
	})
	t.Run("no direct gets", func(t *testing.T) {
		b, _ := newBus(t, Config{StoreDir: t.TempDir()}, nil)
		sc, err := StreamConfig{}.JetStream()
		if err != nil {
			t.Fatal(err)
		}
		sc.AllowDirect = false
		js, err := jetstream.New(b.Conn())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.CreateStream(t.Context(), sc); err != nil {
			t.Fatal(err)
		}
		h, err := b.History(HistoryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.Read(t.Context(), "user.42", 0, 1, func(uint64, []byte) {})
		if err == nil || !strings.Contains(err.Error(), "allows no direct gets") {
			t.Fatalf("Read from a stream without direct gets = %v", err)
		}
	})
	t.Run("nats down", func(t *testing.T) {
		srv := runServer(t, -1)
		b, _ := newBus(t, Config{URL: srv.ClientURL()}, nil)
		h, err := b.History(HistoryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		shutdown(srv)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		for call, err := range historyCalls(ctx, h) {
			if !errors.Is(err, ErrJetStreamUnavailable) {
				t.Errorf("%s with NATS down = %v, want ErrJetStreamUnavailable", call, err)
			}
		}
	})
	t.Run("closed", func(t *testing.T) {
		b, _ := newBus(t, Config{StoreDir: t.TempDir()}, nil)
		h, err := b.History(HistoryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		for call, err := range historyCalls(t.Context(), h) {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("%s after Close = %v, want ErrClosed", call, err)
			}
		}
	})
}

// BenchmarkHistoryLast asks for the last sequence of n channels, each
// holding one notification, as a resume of n channels does.
func BenchmarkHistoryLast(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprint(n, "Channels"), func(b *testing.B) {
			_, h, p := newHistory(b, StreamConfig{})
			channels := make([]string, n)
			for i := range channels {
				channels[i] = fmt.Sprint("user.", i)
				publish(b, p, channels[i], "x")
			}
			last := make([]uint64, n)
			b.ReportAllocs()
			for b.Loop() {
				if err := h.Last(b.Context(), channels, last); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHistoryRead reads batches of n notifications of 200 bytes.
func BenchmarkHistoryRead(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprint(n, "Msgs"), func(b *testing.B) {
			_, h, p := newHistory(b, StreamConfig{})
			payload := strings.Repeat("x", 200)
			for range n {
				publish(b, p, "user.1", payload)
			}
			b.ReportAllocs()
			for b.Loop() {
				got := 0
				if _, err := h.Read(b.Context(), "user.1", 0, n, func(uint64, []byte) { got++ }); err != nil || got != n {
					b.Fatalf("Read: %d of %d, %v", got, n, err)
				}
			}
		})
	}
}

// FuzzMark: a stored mark is read back exactly, and any other value read
// from the bucket is no mark at all, never a position it does not say.
func FuzzMark(f *testing.F) {
	for _, seed := range []string{"1764650000000:17", "0:0", "1:", ":1", "01:1", "1:+1", "18446744073709551616:1", "1:2:3", " 1:2", "garbage"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, ok := parseMark(data)
		if !ok {
			if m != (Position{}) {
				t.Fatalf("%q refused with %+v", data, m)
			}
			return
		}
		if back := appendMark(nil, m); string(back) != string(data) {
			t.Fatalf("%q read as %+v, which is stored as %q", data, m, back)
		}
		if again, ok := parseMark(appendMark(nil, Position{Seq: m.Epoch, Epoch: m.Seq})); !ok || again.Seq != m.Epoch {
			t.Fatalf("swapped %+v does not round trip", m)
		}
	})
}

// Scan reads a range of the stream whatever the channels: every
// notification from a sequence on, in order, each with its channel.
func TestHistoryScan(t *testing.T) {
	_, h, p := newHistory(t, StreamConfig{})
	var want []string
	var seqs []uint64
	for i := range 9 {
		ch := []string{"user.1", "user.2", "topic.news"}[i%3]
		seqs = append(seqs, publish(t, p, ch, fmt.Sprintf(`{"n":%d}`, i)))
		want = append(want, fmt.Sprintf("%s %d {\"n\":%d}", ch, seqs[i], i))
	}
	var got []string
	more, err := h.Scan(t.Context(), seqs[2], 4, func(ch string, seq uint64, data []byte) {
		got = append(got, fmt.Sprintf("%s %d %s", ch, seq, data))
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want[2:6]) || more != 3 {
		t.Fatalf("Scan from seq %d, 4: got %q, %d more; want %q, 3 more", seqs[2], got, more, want[2:6])
	}
	got = got[:0]
	if more, err = h.Scan(t.Context(), seqs[8]+1, 10, func(string, uint64, []byte) { got = append(got, "x") }); err != nil || more != 0 || len(got) != 0 {
		t.Fatalf("Scan past the end: %d calls, %d more, %v", len(got), more, err)
	}
}
