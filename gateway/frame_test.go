package gateway

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/wire"
)

func TestFrames(t *testing.T) {
	long := strings.Repeat("x", 70000)
	tests := []struct {
		name  string
		frame []byte
		want  string
	}{
		{name: "json payload", frame: msgFrame("user.42", []byte(`{"a":1}`)), want: `{"type":"message","channel":"user.42","data":{"a":1}}`},
		{name: "text payload", frame: msgFrame("broadcast", []byte(`he said "hi"`)), want: `{"type":"message","channel":"broadcast","data":"he said \"hi\""}`},
		{name: "invalid utf-8 payload", frame: msgFrame("user.1", []byte{0xff}), want: `{"type":"message","channel":"user.1","data":"\ufffd"}`},
		{name: "JSON with invalid utf-8", frame: msgFrame("user.1", []byte("\"a\xffb\"")), want: `{"type":"message","channel":"user.1","data":"\"a\ufffdb\""}`},
		{name: "16-bit length", frame: msgFrame("user.1", []byte(`"`+long[:300]+`"`)), want: `{"type":"message","channel":"user.1","data":"` + long[:300] + `"}`},
		{name: "html characters stay", frame: msgFrame("user.1", []byte(`<b>&`)), want: `{"type":"message","channel":"user.1","data":"<b>&"}`},
		{name: "64-bit length", frame: msgFrame("user.1", []byte(`"`+long+`"`)), want: `{"type":"message","channel":"user.1","data":"` + long + `"}`},
		{name: "welcome", frame: welcomeFrame("ab-1", "42", 25), want: `{"type":"welcome","conn":"ab-1","user":"42","ping_interval":25}`},
		{name: "subscribed", frame: replyFrame("subscribed", "topic.x", 7), want: `{"type":"subscribed","channel":"topic.x","ref":7}`},
		{name: "pong", frame: replyFrame("pong", "", 3), want: `{"type":"pong","ref":3}`},
		{name: "error", frame: errorFrame(2, "forbidden", `no "way"`), want: `{"type":"error","ref":2,"code":"forbidden","message":"no \"way\""}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n, err := wire.ParseHeader(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			payload := tt.frame[n:]
			if !h.Fin || h.Masked || h.OpCode != ws.OpText || h.Length != int64(len(payload)) {
				t.Fatalf("header = %+v for %d bytes of payload", h, len(payload))
			}
			if string(payload) != tt.want {
				t.Fatalf("payload = %.200s, want %.200s", payload, tt.want)
			}
			if !json.Valid(payload) {
				t.Fatal("payload is not JSON")
			}
		})
	}
}

// msgFrame is messageFrame's frame alone.
func msgFrame(ch string, payload []byte) []byte {
	frame, _ := wire.MessageFrame(ch, payload, wire.Position{})
	return frame
}

func TestCloseReasons(t *testing.T) {
	for r := CloseReason(1); r < numReasons; r++ {
		if r.String() == "unknown" {
			t.Errorf("reason %d has no name", r)
		}
		if code := closeReasons[r].code; code != 0 && code.IsNotUsed() {
			t.Errorf("%v sends close code %d", r, code)
		}
	}
}

// Every upgrade result and client message kind has its own label: they
// are the label values of wsgate_upgrades_total and
// wsgate_client_messages_total.
func TestMetricLabels(t *testing.T) {
	seen := map[string]bool{}
	for r := upgradeResult(1); r < numResults; r++ {
		if l := r.String(); l == "unknown" || l == "" || seen[l] {
			t.Errorf("upgrade result %d has label %q", r, l)
		}
		seen[r.String()] = true
	}
	clear(seen)
	for k := clientMsg(0); k < numClientMsgs; k++ {
		if l := k.String(); l == "" || seen[l] {
			t.Errorf("client message kind %d has label %q", k, l)
		}
		seen[k.String()] = true
	}
}

func TestElapsed(t *testing.T) {
	tests := []struct {
		now, then uint32
		want      time.Duration
	}{
		{now: 1500, then: 500, want: time.Second},
		{now: 500, then: 501, want: 0},                                   // stamped after the sweep read the clock
		{now: 10, then: math.MaxUint32 - 9, want: 20 * time.Millisecond}, // across the wrap
	}
	for _, tt := range tests {
		if got := elapsed(tt.now, tt.then); got != tt.want {
			t.Errorf("elapsed(%d, %d) = %v, want %v", tt.now, tt.then, got, tt.want)
		}
	}
}
