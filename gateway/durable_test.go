package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/internal/wstest"
)

// newDurableEnv starts a gateway (configured by mod, when not nil) whose
// bus runs JetStream with the stream applied and tracked, and returns the
// stream's epoch.
func newDurableEnv(t testing.TB, mod func(*Config), wrap ...func(bus.Handler) bus.Handler) (*env, uint64) {
	t.Helper()
	e := newEnvBus(t, bus.Config{StoreDir: t.TempDir()}, mod, wrap...)
	if _, err := bus.ApplyStream(t.Context(), e.bus.Conn(), bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.ApplyAckBucket(t.Context(), e.bus.Conn(), bus.AckBucketConfig{}); err != nil {
		t.Fatal(err)
	}
	info, err := e.bus.TrackStream(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	return e, uint64(info.Created.UnixMilli())
}

// deleteStream deletes the stream of durable notifications behind e.
func deleteStream(t testing.TB, e *env) {
	t.Helper()
	js, err := jetstream.New(e.bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(t.Context(), bus.DefaultStreamName); err != nil {
		t.Fatal(err)
	}
}

// expectDurable publishes payload durably to user id and checks that c
// receives it, once, in a frame that carries its sequence, prev and epoch.
func expectDurable(t *testing.T, e *env, c *client, id string, payload string, prev, epoch uint64) uint64 {
	t.Helper()
	st, err := e.pub.DurableUser(t.Context(), id, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadText(time.Now().Add(wstest.NextTimeout))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"type":"message","channel":"user.%s","seq":%d,"prev":%d,"epoch":%d,"data":%s}`,
		id, st.Sequence, prev, epoch, payload)
	if string(got) != want {
		t.Fatalf("durable frame\n got  %s\n want %s", got, want)
	}
	return st.Sequence
}

// A durable notification, stored by JetStream and republished on the
// volatile subject, reaches a connected socket once, in a frame that says
// where it is: its sequence, the previous one on the same channel (each
// user's chain is its own), and the stream's epoch. A volatile frame
// carries none of it and is what it always was.
func TestDurableDelivery(t *testing.T) {
	e, epoch := newDurableEnv(t, nil)
	c42, c43 := e.connect("42"), e.connect("43")
	conns := map[string]*client{"42": c42, "43": c43}

	if err := e.pub.User("42", []byte(`{"order":"shipped"}`)); err != nil {
		t.Fatal(err)
	}
	volatile, err := c42.ReadText(time.Now().Add(wstest.NextTimeout))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"message","channel":"user.42","data":{"order":"shipped"}}`; string(volatile) != want {
		t.Fatalf("volatile frame %s, want %s", volatile, want)
	}

	last := map[string]uint64{}
	for i, id := range []string{"42", "43", "42", "42"} {
		last[id] = expectDurable(t, e, conns[id], id, fmt.Sprintf(`{"n":%d}`, i), last[id], epoch)
	}
	c42.silent(100 * time.Millisecond) // once
	c43.silent(50 * time.Millisecond)
}

// A stream deleted and created again restarts its sequences; once the bus
// has looked it up again, the frames carry its new epoch, so a client
// knows its positions are void.
func TestDurableEpochRecreated(t *testing.T) {
	e, epoch := newDurableEnv(t, nil)
	c := e.connect("42")
	expectDurable(t, e, c, "42", `"before"`, 0, epoch)

	deleteStream(t, e)
	info, err := bus.ApplyStream(t.Context(), e.bus.Conn(), bus.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	again := uint64(info.Created.UnixMilli())
	if again == epoch {
		t.Fatalf("the recreated stream kept epoch %d", epoch)
	}
	e.bus.Conn().ForceReconnect() // what a gateway sees when NATS went away meanwhile
	wstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		switch got := e.bus.Epoch(); {
		case e.bus.Reconnects() == 0 || !e.bus.Connected():
			return fmt.Errorf("the bus has not reconnected")
		case got != again:
			return fmt.Errorf("bus epoch %d, want %d", got, again)
		}
		return nil
	})
	if m := c.next(); m["type"] != "missed" { // the reconnect's notice
		t.Fatalf("got %v, want missed", m)
	}
	if seq := expectDurable(t, e, c, "42", `"after"`, 0, again); seq != 1 {
		t.Fatalf("the recreated stream stored at seq %d, want 1", seq)
	}
}

// A durable frame over the compression threshold is compressed like a
// volatile one, position included.
func TestDurableDeflate(t *testing.T) {
	e, epoch := newDurableEnv(t, func(c *Config) { c.CompressThreshold = 200 })
	z := dialDeflate(t, e, "z1", "permessage-deflate")
	big := fmt.Sprintf(`{"text":%q}`, strings.Repeat("compressible ", 100))
	st, err := e.pub.DurableUser(t.Context(), "z1", []byte(big))
	if err != nil {
		t.Fatal(err)
	}
	m, compressed := z.next()
	if !compressed || m["seq"] != float64(st.Sequence) || m["prev"] != 0.0 || m["epoch"] != float64(epoch) ||
		!strings.Contains(fmt.Sprint(m["data"]), "compressible") {
		t.Fatalf("got %v (compressed %v), want the durable notification compressed, seq %d, epoch %d", m, compressed, st.Sequence, epoch)
	}
}

// A stream deleted and created again while the gateway stays connected is
// noticed from JetStream's advisories: the epoch is unknown (0) while the
// stream is gone, and the new one's as soon as it is back, no reconnect
// needed.
func TestDurableEpochFollowsAdvisories(t *testing.T) {
	e, epoch := newDurableEnv(t, nil)
	c := e.connect("42")
	expectDurable(t, e, c, "42", `"before"`, 0, epoch)
	deleteStream(t, e)
	wstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got := e.bus.Epoch(); got != 0 {
			return fmt.Errorf("bus epoch %d after the stream was deleted, want 0", got)
		}
		return nil
	})
	info, err := bus.ApplyStream(t.Context(), e.bus.Conn(), bus.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	again := uint64(info.Created.UnixMilli())
	wstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got := e.bus.Epoch(); got != again {
			return fmt.Errorf("bus epoch %d, want the new stream's %d", got, again)
		}
		return nil
	})
	expectDurable(t, e, c, "42", `"after"`, 0, again)
	if _, err := bus.ApplyStream(t.Context(), e.bus.Conn(), bus.StreamConfig{MaxMsgsPerChannel: 7}); err != nil {
		t.Fatal(err) // an update: the epoch stays
	}
	time.Sleep(50 * time.Millisecond)
	if got := e.bus.Epoch(); got != again {
		t.Fatalf("bus epoch %d after an update, want %d", got, again)
	}
}
