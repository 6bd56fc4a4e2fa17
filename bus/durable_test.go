package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsgate/wsgate/internal/wstest"
)

// newDurableBus starts a bus whose embedded server runs JetStream in dir
// (a new temporary directory when empty), with the stream of cfg applied.
func newDurableBus(t testing.TB, dir string, cfg StreamConfig) (*Bus, recorder) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	b, rec := newBus(t, Config{StoreDir: dir}, nil)
	if _, err := ApplyStream(t.Context(), b.Conn(), cfg); err != nil {
		t.Fatalf("ApplyStream: %v", err)
	}
	return b, rec
}

func TestDurablePublish(t *testing.T) {
	b, rec := newDurableBus(t, "", StreamConfig{})
	p := newPublisher(t, b.ClientURL())
	for _, ch := range []string{"user.42", "topic.sports", "broadcast"} {
		if err := b.Interest(ch); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	tests := []struct {
		publish func() (Stored, error)
		want    delivery
		subject string
	}{
		{func() (Stored, error) { return p.DurableUser(ctx, "42", []byte(`{"n":1}`)) }, delivery{"user.42", `{"n":1}`, Position{Seq: 1}}, "durable.notify.user.42"},
		{func() (Stored, error) { return p.DurableTopic(ctx, "sports", []byte("goal")) }, delivery{"topic.sports", "goal", Position{Seq: 2}}, "durable.notify.topic.sports"},
		{func() (Stored, error) { return p.DurableBroadcast(ctx, nil) }, delivery{"broadcast", "", Position{Seq: 3}}, "durable.notify.broadcast"},
		{func() (Stored, error) { return p.DurableUser(ctx, "42", []byte(`{"n":2}`)) }, delivery{"user.42", `{"n":2}`, Position{Seq: 4, Prev: 1}}, "durable.notify.user.42"},
	}
	for i, tt := range tests {
		got, err := tt.publish()
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		want := Stored{Stream: DefaultStreamName, Subject: tt.subject, Sequence: uint64(i + 1)}
		if got != want {
			t.Errorf("publish %d = %+v, want %+v", i, got, want)
		}
		rec.expect(t, tt.want) // republished on the volatile subject, once stored
	}
	if _, err := p.DurableUser(ctx, "4.2", nil); !errors.Is(err, ErrInvalidName) {
		t.Errorf("DurableUser(\"4.2\") = %v, want ErrInvalidName", err)
	}
	if _, err := p.DurableTopic(ctx, "news.>", nil); !errors.Is(err, ErrInvalidName) {
		t.Errorf("DurableTopic(\"news.>\") = %v, want ErrInvalidName", err)
	}
	if _, err := p.DurableUser(ctx, "42", nil, WithTTL(time.Millisecond)); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("a TTL below 1s = %v, want ErrInvalidConfig", err)
	}
}

func TestDurableMsgID(t *testing.T) {
	b, rec := newDurableBus(t, "", StreamConfig{})
	if err := b.Interest("user.7"); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, b.ClientURL())
	first, err := p.DurableUser(t.Context(), "7", []byte("once"), WithMsgID("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	rec.expect(t, delivery{"user.7", "once", Position{Seq: first.Sequence}})
	again, err := p.DurableUser(t.Context(), "7", []byte("once"), WithMsgID("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Stored{Stream: first.Stream, Subject: first.Subject, Sequence: first.Sequence, Duplicate: true}); again != want {
		t.Fatalf("retry = %+v, want %+v", again, want)
	}
	other, err := p.DurableUser(t.Context(), "7", []byte("next"), WithMsgID("order-2"))
	if err != nil {
		t.Fatal(err)
	}
	if other.Duplicate || other.Sequence != first.Sequence+1 {
		t.Fatalf("a new id = %+v, want seq %d, not a duplicate", other, first.Sequence+1)
	}
	// The duplicate was not republished: the next delivery is "next".
	rec.expect(t, delivery{"user.7", "next", Position{Seq: other.Sequence, Prev: first.Sequence}})
}

func TestDurableTTL(t *testing.T) {
	b, _ := newDurableBus(t, "", StreamConfig{})
	p := newPublisher(t, b.ClientURL())
	short, err := p.DurableUser(t.Context(), "1", []byte("soon gone"), WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	kept, err := p.DurableUser(t.Context(), "1", []byte("kept"))
	if err != nil {
		t.Fatal(err)
	}
	s := stream(t, b)
	if _, err := s.GetMsg(t.Context(), short.Sequence); err != nil {
		t.Fatalf("the TTL message right after its publish: %v", err)
	}
	wstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if _, err := s.GetMsg(t.Context(), short.Sequence); !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("seq %d with a TTL of 1s: %v, want ErrMsgNotFound", short.Sequence, err)
		}
		return nil
	})
	if _, err := s.GetMsg(t.Context(), kept.Sequence); err != nil {
		t.Fatalf("the message without a TTL: %v", err)
	}
}

// stream returns the bus's NOTIFY stream.
func stream(t testing.TB, b *Bus) jetstream.Stream {
	t.Helper()
	js, err := jetstream.New(b.Conn())
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), DefaultStreamName)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDurableUnavailable(t *testing.T) {
	tests := []struct {
		name     string
		storeDir bool // JetStream on
		want     error
		msg      string
	}{
		{"no jetstream", false, ErrJetStreamUnavailable, "bus: durable publish to durable.notify.user.42: jetstream unavailable"},
		{"no stream", true, ErrNoStream, "bus: durable publish to durable.notify.user.42: no stream stores this subject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{}
			if tt.storeDir {
				cfg.StoreDir = t.TempDir()
			}
			b, _ := newBus(t, cfg, nil)
			p := newPublisher(t, b.ClientURL())
			_, err := p.DurableUser(t.Context(), "42", []byte("x"))
			if !errors.Is(err, tt.want) || err.Error() != tt.msg {
				t.Fatalf("durable publish = %v, want %q", err, tt.msg)
			}
			// Volatile publishing is unaffected.
			if err := p.User("42", []byte("x")); err != nil {
				t.Fatalf("volatile publish: %v", err)
			}
		})
	}
	b, _ := newBus(t, Config{}, nil)
	if _, err := ApplyStream(t.Context(), b.Conn(), StreamConfig{}); !errors.Is(err, ErrJetStreamUnavailable) {
		t.Fatalf("ApplyStream without JetStream = %v, want ErrJetStreamUnavailable", err)
	}
}

// With NATS down a durable publish fails when its context ends, saying
// that JetStream did not answer; nothing is buffered for later as a
// volatile publish would be.
func TestDurableNATSDown(t *testing.T) {
	srv := runServer(t, -1)
	p := newPublisher(t, srv.ClientURL())
	shutdown(srv)
	wstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if !p.nc.IsReconnecting() {
			return errors.New("the publisher has not noticed the outage")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := p.DurableUser(ctx, "42", []byte("x"))
	if !errors.Is(err, ErrJetStreamUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("durable publish with NATS down = %v, want ErrJetStreamUnavailable and the deadline", err)
	}
	const want = "bus: durable publish to durable.notify.user.42: jetstream unavailable: no ack in time (context deadline exceeded)"
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

func TestApplyStream(t *testing.T) {
	b, _ := newBus(t, Config{StoreDir: t.TempDir()}, nil)
	if _, err := StreamInfo(t.Context(), b.Conn(), ""); !errors.Is(err, ErrNoStreamNamed) {
		t.Fatalf("StreamInfo before ApplyStream = %v, want ErrNoStreamNamed", err)
	}
	first, err := ApplyStream(t.Context(), b.Conn(), StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c := first.Config
	if c.Name != "NOTIFY" || len(c.Subjects) != 1 || c.Subjects[0] != "durable.notify.>" ||
		c.RePublish == nil || c.RePublish.Source != "durable.notify.>" || c.RePublish.Destination != "notify.>" ||
		c.Storage != jetstream.FileStorage || c.Discard != jetstream.DiscardOld || !c.AllowDirect || !c.AllowMsgTTL ||
		c.MaxMsgsPerSubject != DefaultMaxMsgsPerChannel || c.MaxAge != DefaultMaxAge || c.Duplicates != DefaultDuplicates ||
		c.Replicas != 1 || c.MaxBytes != -1 {
		t.Fatalf("stream config %+v", c)
	}
	again, err := ApplyStream(t.Context(), b.Conn(), StreamConfig{})
	if err != nil {
		t.Fatalf("ApplyStream again: %v", err)
	}
	if !again.Created.Equal(first.Created) {
		t.Fatalf("ApplyStream again recreated the stream: created %v, then %v", first.Created, again.Created)
	}
	p := newPublisher(t, b.ClientURL())
	if _, err := p.DurableUser(t.Context(), "1", []byte("kept across the update")); err != nil {
		t.Fatal(err)
	}
	changed, err := ApplyStream(t.Context(), b.Conn(), StreamConfig{MaxMsgsPerChannel: 5, MaxAge: time.Hour, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatalf("ApplyStream with new limits: %v", err)
	}
	if c := changed.Config; c.MaxMsgsPerSubject != 5 || c.MaxAge != time.Hour || c.MaxBytes != 1<<20 {
		t.Fatalf("updated limits: per subject %d, age %v, bytes %d", c.MaxMsgsPerSubject, c.MaxAge, c.MaxBytes)
	}
	if changed.State.Msgs != 1 {
		t.Fatalf("the update lost messages: %d left, want 1", changed.State.Msgs)
	}
	info, err := StreamInfo(t.Context(), b.Conn(), "")
	if err != nil || info.Config.MaxMsgsPerSubject != 5 {
		t.Fatalf("StreamInfo = %+v, %v", info, err)
	}
	short, err := ApplyStream(t.Context(), b.Conn(), StreamConfig{MaxAge: time.Minute})
	if err != nil {
		t.Fatalf("ApplyStream with a max age below the default duplicate window: %v", err)
	}
	if d := short.Config.Duplicates; d != time.Minute {
		t.Fatalf("duplicate window %v with a max age of 1m, want 1m", d)
	}
	none, err := ApplyStream(t.Context(), b.Conn(), StreamConfig{MaxMsgsPerChannel: -1, MaxAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	if c := none.Config; c.MaxMsgsPerSubject != -1 || c.MaxAge != 0 {
		t.Fatalf("no limits: per subject %d, age %v, want -1 and 0", c.MaxMsgsPerSubject, c.MaxAge)
	}
	// JetStream does not move a stream between storages: memory is for a
	// stream made so from the start.
	if _, err := ApplyStream(t.Context(), b.Conn(), StreamConfig{Memory: true}); err == nil {
		t.Fatal("a file stream was changed to memory")
	}
	mem, err := ApplyStream(t.Context(), b.Conn(), StreamConfig{Name: "MEM", Prefix: "mem", Memory: true})
	if err != nil || mem.Config.Storage != jetstream.MemoryStorage {
		t.Fatalf("memory stream: %+v, %v", mem, err)
	}
	kv, err := ApplyAckBucket(t.Context(), b.Conn(), AckBucketConfig{Name: "MEM_ACKS", Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := kv.Status(t.Context()); err != nil || st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Storage != jetstream.MemoryStorage {
		t.Fatalf("memory bucket: %v", err)
	}
}

func TestStreamConfigInvalid(t *testing.T) {
	for _, cfg := range []StreamConfig{{Name: "a.b"}, {Name: "A*"}, {Duplicates: -1}, {Replicas: -1}} {
		if _, err := cfg.JetStream(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v, want ErrInvalidConfig", cfg, err)
		}
	}
	if _, err := (StreamConfig{Prefix: "notify.>"}).JetStream(); !errors.Is(err, ErrInvalidName) {
		t.Errorf("an invalid prefix: %v, want ErrInvalidName", err)
	}
}

// A stored notification survives a restart of the bus and its embedded
// server on the same StoreDir.
func TestDurableRestart(t *testing.T) {
	dir := t.TempDir()
	b, err := New(Config{EmbeddedListen: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ApplyStream(t.Context(), b.Conn(), StreamConfig{}); err != nil {
		b.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	st, err := NewPublisher(b.Conn(), "").DurableUser(ctx, "42", []byte("across a restart"))
	b.Close()
	if err != nil {
		t.Fatal(err)
	}

	b2, _ := newBus(t, Config{StoreDir: dir}, nil)
	m, err := stream(t, b2).GetMsg(t.Context(), st.Sequence)
	if err != nil {
		t.Fatalf("seq %d after the restart: %v", st.Sequence, err)
	}
	if m.Subject != "durable.notify.user.42" || string(m.Data) != "across a restart" {
		t.Fatalf("after the restart: %s %q", m.Subject, m.Data)
	}
}

// storedOverhead is what JetStream's file store adds to each stored
// message besides its subject, headers and payload: a 22-byte record
// header and an 8-byte hash. docs/operations.md sizes the stream with it.
const storedOverhead = 30

func TestDurableStoredBytes(t *testing.T) {
	b, _ := newDurableBus(t, "", StreamConfig{})
	p := newPublisher(t, b.ClientURL())
	const n = 100
	payload := make([]byte, 200)
	for i := range n {
		if _, err := p.DurableUser(t.Context(), fmt.Sprint(100000+i), payload); err != nil {
			t.Fatal(err)
		}
	}
	info, err := StreamInfo(t.Context(), b.Conn(), "")
	if err != nil {
		t.Fatal(err)
	}
	per := len("durable.notify.user.100000") + len(payload) + storedOverhead
	if got := info.State.Bytes; got != n*uint64(per) {
		t.Fatalf("%d notifications of %d bytes take %d bytes (%d each), want %d each",
			n, len(payload), got, got/n, per)
	}
}
