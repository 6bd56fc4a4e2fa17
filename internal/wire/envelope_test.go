package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendMessage(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    string
	}{
		{"json object", `{"a":1}`, `{"type":"message","channel":"user.42","data":{"a":1}}`},
		{"json string", `"goal!"`, `{"type":"message","channel":"user.42","data":"goal!"}`},
		{"text", `hello`, `{"type":"message","channel":"user.42","data":"hello"}`},
		{"html stays as it is", `<b>&`, `{"type":"message","channel":"user.42","data":"<b>&"}`},
		{"quotes and controls", "a\"b\\c\n\x01", `{"type":"message","channel":"user.42","data":"a\"b\\c\n\u0001"}`},
		{"invalid utf-8 in json", "\"\xff\"", `{"type":"message","channel":"user.42","data":"\"\ufffd\""}`},
		{"empty", ``, `{"type":"message","channel":"user.42","data":""}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendMessage(nil, "user.42", []byte(tt.payload), Position{}))
			if got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			frame, body := MessageFrame("user.42", []byte(tt.payload), Position{})
			if string(body) != got || cap(frame) < len(frame) {
				t.Fatalf("MessageFrame body %s, want %s", body, got)
			}
			if !strings.HasPrefix(got, MessageHead) || !json.Valid([]byte(got)) {
				t.Fatalf("%s: not a valid envelope", got)
			}
		})
	}
}

func TestAppendDurableMessage(t *testing.T) {
	tests := []struct {
		name    string
		pos     Position
		payload string
		want    string
	}{
		{"first on its channel", Position{Seq: 7, Epoch: 1764650000000}, `{"a":1}`,
			`{"type":"message","channel":"user.42","seq":7,"prev":0,"epoch":1764650000000,"data":{"a":1}}`},
		{"after another", Position{Seq: 12, Prev: 7, Epoch: 1764650000000}, `hello`,
			`{"type":"message","channel":"user.42","seq":12,"prev":7,"epoch":1764650000000,"data":"hello"}`},
		{"epoch unknown", Position{Seq: 1}, ``,
			`{"type":"message","channel":"user.42","seq":1,"prev":0,"epoch":0,"data":""}`},
		{"largest numbers", Position{Seq: math.MaxUint64, Prev: math.MaxUint64 - 1, Epoch: math.MaxUint64}, `[]`,
			`{"type":"message","channel":"user.42","seq":18446744073709551615,"prev":18446744073709551614,"epoch":18446744073709551615,"data":[]}`},
		{"a prev without a seq is volatile", Position{Prev: 3, Epoch: 9}, `1`,
			`{"type":"message","channel":"user.42","data":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendMessage(nil, "user.42", []byte(tt.payload), tt.pos))
			if got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			frame, body := MessageFrame("user.42", []byte(tt.payload), tt.pos)
			if string(body) != got {
				t.Fatalf("MessageFrame body %s, want %s", body, got)
			}
			if want := HeaderLen(len(body)) + len(body); cap(frame) != want || len(frame) != want {
				t.Fatalf("frame len %d cap %d, want %d: sized exactly", len(frame), cap(frame), want)
			}
		})
	}
}

// A megabyte of "<" stays about a megabyte: only what JSON requires is
// escaped (encoding/json would make it 6 MiB of \u003c).
func TestAppendJSONStringNoHTMLEscaping(t *testing.T) {
	s := strings.Repeat("<", 1<<20)
	got := AppendJSONString(nil, []byte(s))
	if len(got) != len(s)+2 {
		t.Fatalf("1 MiB of < became %d bytes, want %d", len(got), len(s)+2)
	}
}

func TestAppendJSONStringAllocs(t *testing.T) {
	s := []byte("a \"quoted\" <text>\twith\x00controls and é")
	buf := make([]byte, 0, 256)
	if got := testing.AllocsPerRun(100, func() { AppendJSONString(buf[:0], s) }); got != 0 {
		t.Errorf("%v allocations, want 0", got)
	}
}

// FuzzAppendJSONString: the result is valid JSON in valid UTF-8 that
// decodes to s with invalid bytes replaced (what encoding/json decodes
// from its own encoding), and <, >, & are never escaped.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "<>&", "\"\\/\b\f\n\r\t", "\x00\x1f\x7f", "\xff\xfe", "é\u2028\U0001F600", "\xed\xa0\x80"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		got := AppendJSONString(nil, s)
		if !utf8.Valid(got) {
			t.Fatalf("%q: invalid UTF-8 out", got)
		}
		var dec string
		if err := json.Unmarshal(got, &dec); err != nil {
			t.Fatalf("%q: %v", got, err)
		}
		ref, _ := json.Marshal(string(s))
		var want string
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if dec != want {
			t.Fatalf("decodes to %q, want %q", dec, want)
		}
		if strings.Contains(string(got), `\u003c`) || strings.Contains(string(got), `\u0026`) {
			t.Fatalf("%q: HTML-escaped", got)
		}
	})
}

// FuzzAppendMessage: every payload at every position makes a valid JSON
// envelope, with the fields in the documented order, whose data is the
// payload itself when that is valid JSON, its string otherwise; a
// durable one carries its position, a volatile one none.
func FuzzAppendMessage(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1,2]`, `"s"`, `12`, `null`, `hello`, `{"a":`, "\xff", ` {"a":1} `} {
		f.Add([]byte(s), uint64(0), uint64(0), uint64(0))
		f.Add([]byte(s), uint64(7), uint64(5), uint64(1764650000000))
	}
	f.Fuzz(func(t *testing.T, payload []byte, seq, prev, epoch uint64) {
		pos := Position{Seq: seq, Prev: prev, Epoch: epoch}
		got := AppendMessage(nil, "topic.x", payload, pos)
		var env struct {
			Type    string          `json:"type"`
			Channel string          `json:"channel"`
			Seq     *uint64         `json:"seq"`
			Prev    *uint64         `json:"prev"`
			Epoch   *uint64         `json:"epoch"`
			Data    json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(got, &env); err != nil || !utf8.Valid(got) {
			t.Fatalf("%q: %v", got, err)
		}
		if env.Type != "message" || env.Channel != "topic.x" {
			t.Fatalf("%q: envelope %+v", got, env)
		}
		if json.Valid(payload) && utf8.Valid(payload) && string(env.Data) != string(bytes.TrimSpace(payload)) {
			t.Fatalf("valid JSON %q not verbatim: %q", payload, env.Data)
		}
		head := `{"type":"message","channel":"topic.x","data":`
		if pos.Durable() {
			if env.Seq == nil || env.Prev == nil || env.Epoch == nil || *env.Seq != seq || *env.Prev != prev || *env.Epoch != epoch {
				t.Fatalf("%q: position %v %v %v, want %+v", got, env.Seq, env.Prev, env.Epoch, pos)
			}
			head = fmt.Sprintf(`{"type":"message","channel":"topic.x","seq":%d,"prev":%d,"epoch":%d,"data":`, seq, prev, epoch)
		}
		if !strings.HasPrefix(string(got), head) {
			t.Fatalf("%q does not start with %q", got, head)
		}
		frame, body := MessageFrame("topic.x", payload, pos)
		if !bytes.Equal(body, got) || len(frame) < len(body) {
			t.Fatalf("MessageFrame body %q, want %q", body, got)
		}
	})
}
