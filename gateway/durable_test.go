package gateway

import (
	"bytes"
	"testing"
	"time"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/internal/wstest"
)

// A durable notification, stored by JetStream and republished on the
// volatile subject, reaches a connected socket once, in the same frame as
// the same payload published volatile.
func TestDurableDelivery(t *testing.T) {
	e := newEnvBus(t, bus.Config{StoreDir: t.TempDir()}, nil)
	if _, err := bus.ApplyStream(t.Context(), e.bus.Conn(), bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	c := e.connect("42")
	payload := []byte(`{"order":"shipped"}`)

	if err := e.pub.User("42", payload); err != nil {
		t.Fatal(err)
	}
	volatile, err := c.ReadText(time.Now().Add(wstest.NextTimeout))
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.pub.DurableUser(t.Context(), "42", payload)
	if err != nil {
		t.Fatal(err)
	}
	if st.Sequence != 1 || st.Duplicate {
		t.Fatalf("stored %+v, want seq 1", st)
	}
	durable, err := c.ReadText(time.Now().Add(wstest.NextTimeout))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(durable, volatile) {
		t.Fatalf("durable frame %s, volatile frame %s", durable, volatile)
	}
	c.silent(100 * time.Millisecond) // once
}
