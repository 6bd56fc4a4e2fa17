package main

import (
	"strings"
	"testing"
)

func TestHelp(t *testing.T) {
	out, code := wsbench(t, "-help")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{"Scenarios", "connect", "broadcast", "topic", "unicast", "churn", "floor", "compare", "-msg-rate", "-deflate", "-payload-kind", "resume", "-missed", "-durable", "-publishers"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestBadUsage(t *testing.T) {
	if _, code := wsbench(t, "nosuch"); code != 2 {
		t.Errorf("unknown scenario: exit %d, want 2", code)
	}
	if _, code := wsbench(t, "broadcast", "--conns", "x"); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	if _, code := wsbench(t, "compare", "only-one.json"); code != 2 {
		t.Errorf("compare with one file: exit %d, want 2", code)
	}
}

func TestConnectRefused(t *testing.T) {
	out, code := wsbench(t, "connect", "--url", "ws://127.0.0.1:1/ws", "--conns", "3", "--settle", "1ms")
	if code != 0 || !strings.Contains(out, "3 failed: dial 3") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}
