package lograte

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLimiter(t *testing.T) {
	l := Limiter{Period: time.Hour}
	if ok, held := l.Allow(); !ok || held != 0 {
		t.Fatalf("first event: %v, %d", ok, held)
	}
	for range 5 {
		if ok, _ := l.Allow(); ok {
			t.Fatal("an event passed within the period")
		}
	}
	l.mu.Lock()
	l.next = time.Now() // the period is over
	l.mu.Unlock()
	if ok, held := l.Allow(); !ok || held != 5 {
		t.Fatalf("after the period: %v, %d; want true, 5", ok, held)
	}
}
