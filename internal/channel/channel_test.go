package channel

import "testing"

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
		if Match(p, name) && (!Valid(name) || !ValidPattern(p)) {
			t.Fatalf("Match(%q, %q) accepted a malformed input", p, name)
		}
		if Valid(name) && !Match(name, name) {
			t.Fatalf("a valid name %q does not match itself", name)
		}
	})
}
