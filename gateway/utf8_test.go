package gateway

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// utf8Tail fails at the first piece after which the text cannot be valid
// any more, wherever the pieces cut it, and only then.
func TestUTF8Tail(t *testing.T) {
	tests := []struct {
		name   string
		pieces []string
		fail   int  // the index of the piece that must fail; -1 for none
		whole  bool // with no failure: the text ends on a whole code point
	}{
		{name: "empty", pieces: []string{""}, fail: -1, whole: true},
		{name: "ASCII", pieces: []string{"hello", " ", "world"}, fail: -1, whole: true},
		{name: "κόσμε whole", pieces: []string{"κόσμε"}, fail: -1, whole: true},
		{name: "κόσμε a byte at a time", pieces: bytePieces("κόσμε"), fail: -1, whole: true},
		{name: "4-byte code point over 4 pieces", pieces: []string{"\xf0", "\x9f", "\x98", "\x80"}, fail: -1, whole: true},
		{name: "4-byte code point then text in one piece", pieces: []string{"\xf0\x9f", "\x98\x80ok"}, fail: -1, whole: true},
		{name: "boundaries", pieces: []string{"\u0000\u007f\u0080\u07ff\u0800\ud7ff\ue000\ufffd\uffff\U00010000\U0010ffff"}, fail: -1, whole: true},
		{name: "cut code point at the end", pieces: []string{"price ", "\xe2\x82"}, fail: -1, whole: false},
		{name: "empty pieces keep the state", pieces: []string{"\xe2", "", "\x82", "", "\xac"}, fail: -1, whole: true},
		// Autobahn 6.4.1-6.4.4: κόσμε, U+110000, "edited".
		{name: "U+110000 in the second piece", pieces: []string{"κόσμε", "\xf4\x90\x80\x80", "edited"}, fail: 1},
		{name: "U+110000 cut after its first byte", pieces: []string{"κόσμε\xf4", "\x90", "\x80\x80edited"}, fail: 1},
		{name: "surrogate cut after its first byte", pieces: []string{"\xed", "\xa0\x80"}, fail: 1},
		{name: "surrogate cut after its second byte", pieces: []string{"a\xed\x9f", "\xbf"}, fail: -1, whole: true}, // U+D7FF is not one
		{name: "overlong 3-byte cut", pieces: []string{"\xe0", "\x80\xaf"}, fail: 1},
		{name: "overlong 4-byte cut", pieces: []string{"\xf0", "\x8f\xbf\xbf"}, fail: 1},
		{name: "third byte not a continuation", pieces: []string{"\xe2", "\x82", "("}, fail: 2},
		{name: "fourth byte not a continuation", pieces: []string{"\xf0\x9f\x98", "a"}, fail: 1},
		{name: "cut code point, then ASCII", pieces: []string{"€\xe2\x82", "a"}, fail: 1},
		{name: "C0 can start nothing", pieces: []string{"ok", "\xc0"}, fail: 1},
		{name: "F5 can start nothing", pieces: []string{"\xf5"}, fail: 0},
		{name: "lone continuation byte", pieces: []string{"κόσμε", "\x80"}, fail: 1},
		{name: "invalid in the first piece", pieces: []string{"κό\xffσ", "με"}, fail: 0},
		{name: "invalid after a completed cut", pieces: []string{"\xce", "\xba\xff"}, fail: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v utf8Tail
			for i, p := range tt.pieces {
				ok := v.feed([]byte(p))
				switch {
				case !ok && i != tt.fail:
					t.Fatalf("piece %d %q refused, want failure at %d", i, p, tt.fail)
				case ok && i == tt.fail:
					t.Fatalf("piece %d %q accepted, want it refused", i, p)
				case !ok:
					return
				}
			}
			if tt.fail >= 0 {
				t.Fatalf("no failure, want one at piece %d", tt.fail)
			}
			if v.complete() != tt.whole {
				t.Fatalf("complete() = %v, want %v", v.complete(), tt.whole)
			}
		})
	}
}

func bytePieces(s string) []string {
	var ps []string
	for i := range len(s) {
		ps = append(ps, s[i:i+1])
	}
	return ps
}

// Feeding never allocates: a fragmented message costs its readState only.
func TestUTF8TailAllocs(t *testing.T) {
	pieces := [][]byte{[]byte("κό"), []byte("\xcf"), []byte("\x83με \xf0\x9f"), []byte("\x98\x80")}
	allocs := testing.AllocsPerRun(100, func() {
		var v utf8Tail
		for _, p := range pieces {
			v.feed(p)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message", allocs)
	}
}

// FuzzUTF8Tail feeds text cut at the points the fuzzer picks (each byte of
// cuts is the length of the next piece) and compares with utf8.Valid on
// what has come so far: a piece is refused exactly when no bytes could
// follow that make the text valid, and a text that is never refused is
// complete exactly when it is valid.
func FuzzUTF8Tail(f *testing.F) {
	f.Add([]byte("κόσμε\xf4\x90\x80\x80edited"), []byte{11, 1, 3})
	f.Add([]byte("€\xe2\x82a"), []byte{3, 2})
	f.Add([]byte("\xed\xa0\x80"), []byte{1})
	f.Add([]byte("\xf0\x9f\x98\x80 and \U0010ffff"), []byte{1, 1, 1, 1, 2})
	f.Fuzz(func(t *testing.T, text, cuts []byte) {
		var v utf8Tail
		seen := 0
		for len(cuts) > 0 || seen < len(text) {
			n := len(text) - seen
			if len(cuts) > 0 {
				n, cuts = min(int(cuts[0]), n), cuts[1:]
			}
			ok := v.feed(text[seen : seen+n])
			seen += n
			if want := canBeValid(text[:seen]); ok != want {
				t.Fatalf("%q cut at %d: feed says %v, want %v", text, seen, ok, want)
			}
			if !ok {
				return
			}
		}
		if v.complete() != utf8.Valid(text) {
			t.Fatalf("%q: complete() = %v, utf8.Valid = %v", text, v.complete(), utf8.Valid(text))
		}
	})
}

// canBeValid reports whether some bytes appended to p make it valid UTF-8.
// Only a cut code point at the end can be completed, by up to 3
// continuation bytes; one from each range a continuation byte may need
// (RFC 3629 section 4) is tried.
func canBeValid(p []byte) bool {
	if utf8.Valid(p) {
		return true
	}
	conts := []byte{0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf}
	var try func(tail []byte) bool
	try = func(tail []byte) bool {
		if len(tail) > 0 && utf8.Valid(append(bytes.Clone(p), tail...)) {
			return true
		}
		if len(tail) == utf8.UTFMax-1 {
			return false
		}
		for _, c := range conts {
			if try(append(tail, c)) {
				return true
			}
		}
		return false
	}
	return try(nil)
}
