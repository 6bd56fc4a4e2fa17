package bus

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/wstest"
)

// A durable notification reaches the Handler with its stream sequence and
// the previous sequence on its own channel: two channels published in
// turn chain separately. A volatile one between them has no position.
func TestDurablePosition(t *testing.T) {
	b, rec := newDurableBus(t, "", StreamConfig{})
	info, err := b.TrackStream(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	epoch := uint64(info.Created.UnixMilli())
	if epoch == 0 || b.Epoch() != epoch {
		t.Fatalf("Epoch() = %d, want the stream's creation %d", b.Epoch(), epoch)
	}
	for _, ch := range []string{"user.1", "user.2"} {
		if err := b.Interest(ch); err != nil {
			t.Fatal(err)
		}
	}
	p := newPublisher(t, b.ClientURL())
	last := map[string]uint64{}
	for i, id := range []string{"1", "2", "1", "1", "2"} {
		st, err := p.DurableUser(t.Context(), id, []byte{'a' + byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		ch := "user." + id
		rec.expect(t, delivery{ch, string(rune('a' + i)), Position{Seq: st.Sequence, Prev: last[ch], Epoch: epoch}})
		last[ch] = st.Sequence

		if err := p.User(id, []byte("volatile")); err != nil {
			t.Fatal(err)
		}
		rec.expect(t, delivery{channel: ch, payload: "volatile"})
	}
}

// A message on the volatile subject whose stream headers make no position
// (a publisher's own, or a broken republish) is delivered as volatile and
// counted; headers that are not the stream's leave it volatile silently.
func TestDeliverBadPosition(t *testing.T) {
	b, rec := newBus(t, Config{}, nil)
	if err := b.Interest("user.1"); err != nil {
		t.Fatal(err)
	}
	nc, err := Dial(b.ClientURL(), "test-forger")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tests := []struct {
		name   string
		header nats.Header
		bad    bool
	}{
		{"garbage sequence", nats.Header{"Nats-Stream": {"NOTIFY"}, "Nats-Sequence": {"x7"}, "Nats-Last-Sequence": {"5"}}, true},
		{"no last sequence", nats.Header{"Nats-Stream": {"NOTIFY"}, "Nats-Sequence": {"7"}}, true},
		{"sequence zero", nats.Header{"Nats-Sequence": {"0"}, "Nats-Last-Sequence": {"0"}}, true},
		{"last not before", nats.Header{"Nats-Sequence": {"7"}, "Nats-Last-Sequence": {"7"}}, true},
		{"stream without sequence", nats.Header{"Nats-Stream": {"NOTIFY"}}, true},
		{"a publisher's own header", nats.Header{"Trace-Id": {"abc"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.BadPositions()
			if err := nc.PublishMsg(&nats.Msg{Subject: "notify.user.1", Header: tt.header, Data: []byte(tt.name)}); err != nil {
				t.Fatal(err)
			}
			rec.expect(t, delivery{channel: "user.1", payload: tt.name})
			if got := b.BadPositions() - before; got != map[bool]uint64{true: 1}[tt.bad] {
				t.Errorf("BadPositions grew by %d", got)
			}
		})
	}
}

// The epoch follows the stream: deleted and created again, it has a new
// one, which the bus learns when it looks the stream up again, by
// TrackStream or after a reconnect.
func TestEpochRecreated(t *testing.T) {
	b, rec := newDurableBus(t, "", StreamConfig{})
	first, err := b.TrackStream(t.Context(), DefaultStreamName)
	if err != nil {
		t.Fatal(err)
	}
	old := uint64(first.Created.UnixMilli())
	recreated := func() uint64 {
		t.Helper()
		js, err := jetstream.New(b.Conn())
		if err != nil {
			t.Fatal(err)
		}
		if err := js.DeleteStream(t.Context(), DefaultStreamName); err != nil {
			t.Fatal(err)
		}
		info, err := ApplyStream(t.Context(), b.Conn(), StreamConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return uint64(info.Created.UnixMilli())
	}

	epoch := recreated()
	if epoch == old {
		t.Fatalf("the recreated stream has the old epoch %d", old)
	}
	if _, err := b.TrackStream(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	if got := b.Epoch(); got != epoch {
		t.Fatalf("after TrackStream: epoch %d, want %d (was %d)", got, epoch, old)
	}

	old, epoch = epoch, recreated()
	b.Conn().ForceReconnect()
	wstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		// The stream's advisory may bring the new epoch before the
		// reconnect makes the bus forget it and look it up again.
		if b.Reconnects() == 0 {
			return errors.New("not reconnected yet")
		}
		if got := b.Epoch(); got != epoch {
			return fmt.Errorf("after a reconnect: epoch %d, want %d (was %d)", got, epoch, old)
		}
		return nil
	})
	if err := b.Interest("user.9"); err != nil {
		t.Fatal(err)
	}
	st, err := newPublisher(t, b.ClientURL()).DurableUser(t.Context(), "9", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	rec.expect(t, delivery{"user.9", "x", Position{Seq: st.Sequence, Epoch: epoch}})
}

// Without the stream the epoch is unknown, and durable notifications carry
// 0; the bus keeps looking, and learns it once the stream exists.
func TestEpochUnknown(t *testing.T) {
	b, _ := newBus(t, Config{StoreDir: t.TempDir()}, nil)
	if _, err := b.TrackStream(t.Context(), ""); !errors.Is(err, ErrNoStreamNamed) {
		t.Fatalf("TrackStream without the stream = %v, want ErrNoStreamNamed", err)
	}
	if got := b.Epoch(); got != 0 {
		t.Fatalf("Epoch() = %d without the stream, want 0", got)
	}
	info, err := ApplyStream(t.Context(), b.Conn(), StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	wstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got, want := b.Epoch(), uint64(info.Created.UnixMilli()); got != want {
			return fmt.Errorf("Epoch() = %d once the stream exists, want %d", got, want)
		}
		return nil
	})
}

// FuzzPosition: whatever the stream headers say, a position is either
// zero or a positive sequence above its prev, read from those headers.
func FuzzPosition(f *testing.F) {
	f.Add("NOTIFY", "7", "5")
	f.Add("NOTIFY", "1", "0")
	f.Add("", "x7", "")
	f.Add("NOTIFY", "18446744073709551616", "1")
	f.Add("NOTIFY", "007", "-1")
	b := &Bus{log: zap.NewNop()}
	b.epochs.cur.Store(&trackedStream{name: "NOTIFY", epoch: 1764650000000})
	f.Fuzz(func(t *testing.T, stream, seq, last string) {
		h := nats.Header{}
		for k, v := range map[string]string{"Nats-Stream": stream, "Nats-Sequence": seq, "Nats-Last-Sequence": last} {
			if v != "" {
				h.Set(k, v)
			}
		}
		pos := b.position("notify.user.1", h)
		if pos == (Position{}) {
			return
		}
		s, err1 := strconv.ParseUint(seq, 10, 64)
		p, err2 := strconv.ParseUint(last, 10, 64)
		if err1 != nil || err2 != nil || pos.Seq != s || pos.Prev != p || pos.Seq <= pos.Prev {
			t.Fatalf("headers %q %q %q made %+v", stream, seq, last, pos)
		}
		if want := map[bool]uint64{true: 1764650000000}[stream == "NOTIFY"]; pos.Epoch != want {
			t.Fatalf("stream %q: epoch %d, want %d", stream, pos.Epoch, want)
		}
	})
}
