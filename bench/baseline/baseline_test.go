package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestHTTPAnswers(t *testing.T) {
	e := newEnv(t)
	defer e.close()
	for _, path := range []string{"/ws", "/ws?user=", "/ws?user=a.b", "/ws?user=" + strings.Repeat("x", 124)} {
		_, resp, err := websocket.DefaultDialer.Dial(e.url+path, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %v %v, want 401", path, resp, err)
		}
		if resp != nil {
			_ = resp.Body.Close()
		}
	}
	_, resp, err := websocket.DefaultDialer.Dial(e.url+"/other?user=a", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("/other: %v %v, want 404", resp, err)
	}
	if resp != nil {
		_ = resp.Body.Close()
	}
}

func TestEndToEnd(t *testing.T) {
	e := newEnv(t)
	defer e.close()

	a1, a2, b := e.dial("alice"), e.dial("alice"), e.dial("bob")
	conns := []*websocket.Conn{a1, a2, b}
	// Connection ids follow the order in which the server finished the
	// upgrades, which concurrent dials do not fix: any of 1, 2, 3, once each.
	ids := map[string]bool{}
	for _, w := range []struct {
		c    *websocket.Conn
		user string
	}{{c: a1, user: "alice"}, {c: a2, user: "alice"}, {c: b, user: "bob"}} {
		got := read(t, w.c)
		var id string
		if _, err := fmt.Sscanf(got, `{"type":"welcome","conn":%q`, &id); err != nil {
			t.Fatalf("welcome %s: %v", got, err)
		}
		want := `{"type":"welcome","conn":"` + id + `","user":"` + w.user + `","ping_interval":25}`
		if got != want || ids[id] || id < "1" || id > "3" {
			t.Fatalf("got  %s\nwant %s with a conn id of 1, 2 or 3 not seen before", got, want)
		}
		ids[id] = true
	}
	e.connections(3, nil)

	// A user message reaches both of alice's sockets and not bob's.
	e.publish("notify.user.alice", `{"n": 1}`)
	expect(t, a1, `{"type":"message","channel":"user.alice","data":{"n": 1}}`)
	expect(t, a2, `{"type":"message","channel":"user.alice","data":{"n": 1}}`)
	send(t, b, `{"op":"ping","ref":7}`)
	expect(t, b, `{"type":"pong","ref":7}`)

	// Topics: subscribe, receive, unsubscribe.
	send(t, b, `{"op":"subscribe","channel":"topic.sports","ref":1}`)
	expect(t, b, `{"type":"subscribed","channel":"topic.sports","ref":1}`)
	send(t, b, `{"op":"subscribe","channel":"topic.sports","ref":2}`)
	expect(t, b, `{"type":"subscribed","channel":"topic.sports","ref":2}`)
	e.publish("notify.topic.sports", "goal \xff")
	expect(t, b, `{"type":"message","channel":"topic.sports","data":"goal \ufffd"}`)
	send(t, b, `{"op":"unsubscribe","channel":"topic.sports","ref":3}`)
	expect(t, b, `{"type":"unsubscribed","channel":"topic.sports","ref":3}`)
	e.publish("notify.topic.sports", `"late"`)

	// Broadcast reaches everyone, verbatim; bob's next frame is not "late".
	e.publish("notify.broadcast", ` [1, 2] `)
	for _, c := range conns {
		expect(t, c, `{"type":"message","channel":"broadcast","data": [1, 2] }`)
	}

	// Errors.
	for _, tc := range []struct{ op, want string }{
		{`{"op":"subscribe","channel":"user.bob","ref":4}`, `{"type":"error","ref":4,"code":"forbidden","message":"only topic.\u003cname\u003e channels can be subscribed"}`},
		{`{"op":"unsubscribe","channel":"topic","ref":5}`, `{"type":"error","ref":5,"code":"forbidden","message":"only topic.\u003cname\u003e channels can be subscribed"}`},
		{`{"op":"subscribe","channel":"topic..x","ref":6}`, `{"type":"error","ref":6,"code":"invalid_channel","message":"a channel is dot-separated tokens of [A-Za-z0-9_-], at most 128 bytes, without wildcards"}`},
		{`{"op":"subscribe","channel":"topic.>","ref":7}`, `{"type":"error","ref":7,"code":"invalid_channel","message":"a channel is dot-separated tokens of [A-Za-z0-9_-], at most 128 bytes, without wildcards"}`},
		{`{"op":"nope","ref":8}`, `{"type":"error","ref":8,"code":"unknown_op","message":"op must be subscribe, unsubscribe or ping"}`},
		{`hello`, `{"type":"error","ref":0,"code":"bad_request","message":"a message is a JSON object with op, channel and ref"}`},
	} {
		send(t, b, tc.op)
		expect(t, b, tc.want)
	}

	// Metrics.
	rec := httptest.NewRecorder()
	e.srv.adminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, name := range []string{"process_resident_memory_bytes", "process_cpu_seconds_total", "go_goroutines", "baseline_connections 3", "baseline_messages_delivered_total 6"} {
		if !strings.Contains(rec.Body.String(), "\n"+name) {
			t.Errorf("/metrics has no %q", name)
		}
	}

	// A client close removes the connection.
	if err := a2.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")); err != nil {
		t.Fatal(err)
	}
	var ce *websocket.CloseError
	if _, _, err := a2.ReadMessage(); !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
		t.Fatalf("after client close: %v, want 1000", err)
	}
	_ = a2.Close()
	e.connections(2, nil)

	// Closing the server sends 1001 to the rest.
	_ = e.http.Close()
	errs := make(chan error, 2)
	for _, c := range []*websocket.Conn{a1, b} {
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				if _, _, err := c.ReadMessage(); err != nil { // answers the close frame
					errs <- err
					_ = c.Close()
					return
				}
			}
		}()
	}
	e.srv.Close()
	for range 2 {
		if err := <-errs; !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("at shutdown: %v, want 1001", err)
		}
	}
}

// A client that stops reading is dropped once its queue is full, without
// holding up the others.
func TestSlowConsumer(t *testing.T) {
	e := newEnv(t)
	defer e.close()
	// The server numbers a connection after its 101, so the welcome of one
	// is read before the next is dialed.
	slow := e.dial("slow")
	defer slow.Close()
	expect(t, slow, `{"type":"welcome","conn":"1","user":"slow","ping_interval":25}`)
	fast := e.dial("fast")
	defer fast.Close()
	expect(t, fast, `{"type":"welcome","conn":"2","user":"fast","ping_interval":25}`)
	payload := `"` + strings.Repeat("x", 256<<10) + `"`
	e.connections(1, func() { e.publish("notify.user.slow", payload) }) // until the slow consumer is dropped
	e.publish("notify.user.fast", `1`)
	expect(t, fast, `{"type":"message","channel":"user.fast","data":1}`)
}
