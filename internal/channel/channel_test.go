package channel

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	long := "a"
	for len(long) < MaxLen {
		long += "b"
	}
	tests := []struct {
		name string
		want bool
	}{
		{name: "user.42", want: true},
		{name: "topic.sports", want: true},
		{name: "topic.a-b_c.D9", want: true},
		{name: "broadcast", want: true},
		{name: long, want: true},
		{name: long + "c", want: false},
		{name: "", want: false},
		{name: ".", want: false},
		{name: "topic.", want: false},
		{name: ".topic", want: false},
		{name: "topic..a", want: false},
		{name: "topic.*", want: false},
		{name: "topic.>", want: false},
		{name: "topic.a b", want: false},
		{name: "topic.ü", want: false},
		{name: "topic.a\x00", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Valid(tt.name); got != tt.want {
				t.Errorf("Valid(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern string
		name    string
		want    bool
	}{
		{pattern: "topic.sports", name: "topic.sports", want: true},
		{pattern: "topic.sports", name: "topic.news", want: false},
		{pattern: "topic.*", name: "topic.news", want: true},
		{pattern: "topic.*", name: "topic.news.eu", want: false},
		{pattern: "topic.>", name: "topic.news.eu", want: true},
		{pattern: "topic.>", name: "topic", want: false},
		{pattern: "topic.*.eu", name: "topic.news.eu", want: true},
		{pattern: "topic.*.eu", name: "topic.news.us", want: false},
		{pattern: ">", name: "user.1", want: true},
		{pattern: "topic.>.x", name: "topic.a.x", want: false},
		{pattern: "topic.sports", name: "topic.sports.extra", want: false},
		{pattern: "topic.sports.extra", name: "topic.sports", want: false},
		{pattern: "", name: "topic.sports", want: false},
		{pattern: "topic.sp*", name: "topic.sports", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.name, func(t *testing.T) {
			if got := Match(tt.pattern, tt.name); got != tt.want {
				t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
			}
		})
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("topic.*", "topic.news")
	f.Add("topic.>", "topic.a.b")
	f.Fuzz(func(t *testing.T, p, name string) {
		if got, want := Match(p, name), matchRef(p, name); got != want {
			t.Fatalf("Match(%q, %q) = %v, want %v", p, name, got, want)
		}
		if Match(p, name) && (!Valid(name) || !ValidPattern(p)) {
			t.Fatalf("Match(%q, %q) accepted a malformed input", p, name)
		}
		if Valid(name) && !Match(name, name) {
			t.Fatalf("a valid name %q does not match itself", name)
		}
	})
}

// A user id is at most 123 bytes: "user." and 123 bytes make 128.
func TestMaxUserLen(t *testing.T) {
	if MaxUserLen != 123 {
		t.Fatalf("MaxUserLen = %d, want 123", MaxUserLen)
	}
	if id := strings.Repeat("u", MaxUserLen); !ValidUser(id) || !Valid(User(id)) {
		t.Fatalf("a user id of %d bytes is refused", len(id))
	}
	if id := strings.Repeat("u", MaxUserLen+1); ValidUser(id) {
		t.Fatalf("a user id of %d bytes is accepted", len(id))
	}
}

// validRef is Valid written the obvious way, from the rule in the package
// doc: dot-separated non-empty tokens of [A-Za-z0-9_-], at most MaxLen bytes.
func validRef(name string) bool {
	if name == "" || len(name) > MaxLen {
		return false
	}
	for _, tok := range strings.Split(name, ".") {
		if tok == "" || strings.Trim(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
			return false
		}
	}
	return true
}

// validPatternRef is ValidPattern written the obvious way: like a name,
// but a token may be "*", and the last may be ">".
func validPatternRef(p string) bool {
	if p == "" || len(p) > MaxLen {
		return false
	}
	toks := strings.Split(p, ".")
	for i, tok := range toks {
		if tok != "*" && !(tok == ">" && i == len(toks)-1) && !validRef(tok) {
			return false
		}
	}
	return true
}

// matchRef is Match on token slices: "*" is one token, a final ">" one or
// more.
func matchRef(p, name string) bool {
	if !validPatternRef(p) || !validRef(name) {
		return false
	}
	pt, nt := strings.Split(p, "."), strings.Split(name, ".")
	for i, tok := range pt {
		switch {
		case tok == ">":
			return len(nt) > i
		case i >= len(nt), tok != "*" && tok != nt[i]:
			return false
		}
	}
	return len(pt) == len(nt)
}

// FuzzValid checks the name rules against their plain definitions, and
// that they agree with each other.
func FuzzValid(f *testing.F) {
	for _, s := range []string{"user.42", "topic.sports", "broadcast", "topic.a-b_c.D9", "topic.*", "topic.>", "", ".", "topic..a", "topic.ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		valid := Valid(s)
		if want := validRef(s); valid != want {
			t.Fatalf("Valid(%q) = %v, want %v", s, valid, want)
		}
		if got, want := ValidToken(s), valid && !strings.Contains(s, "."); got != want {
			t.Fatalf("ValidToken(%q) = %v, want %v", s, got, want)
		}
		if got, want := ValidUser(s), ValidToken(s) && Valid(User(s)); got != want {
			t.Fatalf("ValidUser(%q) = %v, want %v", s, got, want)
		}
		if got, want := IsTopic(s), valid && strings.HasPrefix(s, "topic."); got != want {
			t.Fatalf("IsTopic(%q) = %v, want %v", s, got, want)
		}
		if got, want := ValidPattern(s), validPatternRef(s); got != want {
			t.Fatalf("ValidPattern(%q) = %v, want %v", s, got, want)
		}
		if valid && !ValidPattern(s) {
			t.Fatalf("the name %q is not a pattern", s)
		}
	})
}
