package wire

import (
	"bytes"
	"encoding/json"
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
			got := string(AppendMessage(nil, "user.42", []byte(tt.payload)))
			if got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			frame, body := MessageFrame("user.42", []byte(tt.payload))
			if string(body) != got || cap(frame) < len(frame) {
				t.Fatalf("MessageFrame body %s, want %s", body, got)
			}
			if !strings.HasPrefix(got, MessageHead) || !json.Valid([]byte(got)) {
				t.Fatalf("%s: not a valid envelope", got)
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

// FuzzAppendMessage: every payload makes a valid JSON envelope whose data
// is the payload itself when that is valid JSON, its string otherwise.
func FuzzAppendMessage(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1,2]`, `"s"`, `12`, `null`, `hello`, `{"a":`, "\xff", ` {"a":1} `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		got := AppendMessage(nil, "topic.x", payload)
		var env struct {
			Type    string          `json:"type"`
			Channel string          `json:"channel"`
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
	})
}
