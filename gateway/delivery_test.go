package gateway

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/channel"
	"github.com/wsgate/wsgate/internal/wstest"
)

func TestDeliveryUserTopicBroadcast(t *testing.T) {
	e := newEnv(t, nil)
	a1 := e.connect("alice", "topic.sports")
	a2 := e.connect("alice")
	bob := e.connect("bob")

	if err := e.pub.User("alice", []byte(`{"text":"hi"}`)); err != nil {
		t.Fatal(err)
	}
	for i, c := range []*client{a1, a2} {
		m := c.next()
		data, _ := m["data"].(map[string]any)
		if m["type"] != "message" || m["channel"] != "user.alice" || data["text"] != "hi" {
			t.Errorf("socket %d of alice got %v", i, m)
		}
	}
	bob.silent(100 * time.Millisecond)

	a1.send(map[string]any{"op": "subscribe", "channel": "topic.sports", "ref": 7})
	if m := a1.next(); m["type"] != "subscribed" || m["channel"] != "topic.sports" || m["ref"] != 7.0 {
		t.Fatalf("subscribe reply = %v", m)
	}
	if err := e.pub.Topic("sports", []byte("goal")); err != nil {
		t.Fatal(err)
	}
	if m := a1.next(); m["channel"] != "topic.sports" || m["data"] != "goal" {
		t.Errorf("topic message = %v (non-JSON payloads arrive as strings)", m)
	}
	a2.silent(50 * time.Millisecond)

	if err := e.pub.Broadcast([]byte(`[1,2]`)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{a1, a2, bob} {
		if m := c.next(); m["channel"] != "broadcast" || fmt.Sprint(m["data"]) != "[1 2]" {
			t.Errorf("broadcast = %v", m)
		}
	}
}

// A notification published right after the welcome frame must arrive: the
// welcome is only sent once the user's subscription is live on NATS.
func TestNoLossAfterWelcome(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 200 {
		user := "u" + strconv.Itoa(i)
		c := e.connect(user)
		if err := e.pub.User(user, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if m := c.next(); m["data"] != float64(i) {
			t.Fatalf("round %d: got %v", i, m)
		}
		c.Conn.Close()
	}
}

func TestSubscribeRules(t *testing.T) {
	e := newEnv(t, nil)
	c := e.connect("carol", "topic.news.*", "topic.team")
	tests := []struct {
		channel string
		want    string // reply type, or the error code
	}{
		{channel: "topic.news.eu", want: "subscribed"},
		{channel: "topic.team", want: "subscribed"},
		{channel: "topic.news", want: "forbidden"},
		{channel: "topic.other", want: "forbidden"},
		{channel: "user.dave", want: "forbidden"},
		{channel: "user.carol", want: "forbidden"},
		{channel: "broadcast", want: "forbidden"},
		{channel: "topic.*", want: "invalid_channel"},
		{channel: "topic.>", want: "invalid_channel"},
		{channel: "topic..x", want: "invalid_channel"},
		{channel: "topic.", want: "invalid_channel"},
		{channel: "", want: "invalid_channel"},
		{channel: "topic.a b", want: "invalid_channel"},
	}
	for i, tt := range tests {
		t.Run(tt.channel, func(t *testing.T) {
			c.send(map[string]any{"op": "subscribe", "channel": tt.channel, "ref": i})
			m := c.next()
			got, _ := m["type"].(string)
			if got == "error" {
				got, _ = m["code"].(string)
			}
			if got != tt.want || m["ref"] != float64(i) {
				t.Errorf("subscribe %q = %v, want %s with ref %d", tt.channel, m, tt.want, i)
			}
		})
	}
}

func TestUnsubscribeDropsInterest(t *testing.T) {
	e := newEnv(t, nil)
	c1 := e.connect("u1", "topic.>")
	c2 := e.connect("u2", "topic.>")
	subs := func() int { return e.bus.Subscriptions() }
	base := subs()
	for _, c := range []*client{c1, c2} {
		c.send(map[string]any{"op": "subscribe", "channel": "topic.weather", "ref": 1})
		if m := c.next(); m["type"] != "subscribed" {
			t.Fatalf("subscribe = %v", m)
		}
	}
	if got := subs(); got != base+1 {
		t.Fatalf("NATS subscriptions = %d, want %d (one for the topic)", got, base+1)
	}
	c1.send(map[string]any{"op": "unsubscribe", "channel": "topic.weather", "ref": 2})
	if m := c1.next(); m["type"] != "unsubscribed" || m["ref"] != 2.0 {
		t.Fatalf("unsubscribe = %v", m)
	}
	if got := subs(); got != base+1 {
		t.Fatalf("NATS subscriptions = %d after one of two left, want %d", got, base+1)
	}
	e.pub.Topic("weather", []byte(`"rain"`))
	if m := c2.next(); m["data"] != "rain" {
		t.Fatalf("c2 got %v", m)
	}
	c1.silent(100 * time.Millisecond)

	c2.send(map[string]any{"op": "unsubscribe", "channel": "topic.weather", "ref": 3})
	c2.next()
	wstest.CheckFor(t, 2*time.Second, poll, func() error {
		if got := subs(); got != base {
			return fmt.Errorf("NATS subscriptions = %d after the last left, want %d", got, base)
		}
		return nil
	})
	// The user's own subscription goes with its last socket too.
	c1.Conn.Close()
	c2.Conn.Close()
	wstest.CheckFor(t, 2*time.Second, poll, func() error {
		if got := subs(); got != base-2 {
			return fmt.Errorf("NATS subscriptions = %d after both users left, want %d", got, base-2)
		}
		return nil
	})
	if n := e.srv.hub.members(channel.User("u1")); n != 0 {
		t.Errorf("hub still holds %d members of user.u1", n)
	}
}

func TestPingOpAndRFCPing(t *testing.T) {
	e := newEnv(t, nil)
	c := e.connect("pinger")
	c.send(map[string]any{"op": "ping", "ref": 42})
	if m := c.next(); m["type"] != "pong" || m["ref"] != 42.0 {
		t.Fatalf("ping op reply = %v", m)
	}
	if err := writeFrame(c.Conn, true, opPing, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	f := readRawFrame(t, c)
	if f.op != opPong || string(f.payload) != "hello" {
		t.Fatalf("RFC ping reply = %v %q, want a pong with the same payload", f.op, f.payload)
	}
}

func TestUnknownAndMalformedOps(t *testing.T) {
	e := newEnv(t, nil)
	c := e.connect("x")
	c.send(map[string]any{"op": "dance", "ref": 5})
	if m := c.next(); m["code"] != "unknown_op" || m["ref"] != 5.0 {
		t.Fatalf("unknown op reply = %v", m)
	}
	if err := writeFrame(c.Conn, true, opText, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if m := c.next(); m["code"] != "bad_request" {
		t.Fatalf("bad JSON reply = %v", m)
	}
	// The connection is still fine.
	c.send(map[string]any{"op": "ping", "ref": 6})
	if m := c.next(); m["type"] != "pong" {
		t.Fatalf("after errors: %v", m)
	}
}

// Connecting 2,000 clients adds no goroutine: the pool is prespawned, and
// a connection is a struct in the hub plus a poller registration.
func TestNoGoroutinePerConnection(t *testing.T) {
	e := newEnv(t, nil)
	e.connect("warmup")
	before := runtime.NumGoroutine()
	clients := make([]*client, 0, 2000)
	for i := range 2000 {
		c, err := e.dialURL(e.url+"?token="+token(t, "g"+strconv.Itoa(i), time.Hour), nil)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	for _, c := range clients {
		if m := c.next(); m["type"] != "welcome" {
			t.Fatalf("got %v", m)
		}
	}
	after := runtime.NumGoroutine()
	t.Logf("goroutines: %d before, %d with 2,000 more connections", before, after)
	if after > before+2 { // +2 for goroutines of the runtime and the NATS client coming and going
		t.Fatalf("goroutines grew from %d to %d for 2,000 connections", before, after)
	}
	if got := e.srv.hub.count(); got != 2001 {
		t.Fatalf("the hub holds %d connections, want 2001", got)
	}
	// A broadcast to all of them is split into chunks on the pool; every
	// client gets it once.
	if err := e.pub.Broadcast([]byte(`"all"`)); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		if m := c.next(); m["data"] != "all" {
			t.Fatalf("client %d got %v", i, m)
		}
	}
}
