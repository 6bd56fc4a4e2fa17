//go:build linux || darwin

package fdlimit

import (
	"errors"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func getrlimit(t *testing.T) unix.Rlimit {
	t.Helper()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	return lim
}

// lowerSoft sets the soft limit to soft for the rest of the test, so that
// Raise has something to do, and puts the original limit back afterwards.
// Lowering needs no privilege.
func lowerSoft(t *testing.T, soft uint64) unix.Rlimit {
	t.Helper()
	orig := getrlimit(t)
	if orig.Cur <= soft {
		t.Skipf("the soft limit is %d already, not above %d", orig.Cur, soft)
	}
	t.Cleanup(func() {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
			t.Errorf("restoring the limit %+v: %v", orig, err)
		}
	})
	lowered := unix.Rlimit{Cur: soft, Max: orig.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lowered); err != nil {
		t.Fatal(err)
	}
	return orig
}

// Raise returns the soft limit getrlimit reports, and calling it again
// changes nothing.
func TestRaiseReportsTheLimitInForce(t *testing.T) {
	for i := range 2 {
		got, err := Raise()
		if err != nil {
			t.Fatal(err)
		}
		lim := getrlimit(t)
		if got != lim.Cur {
			t.Fatalf("call %d: Raise returned %d, getrlimit says the soft limit is %d", i+1, got, lim.Cur)
		}
		if runtime.GOOS == "linux" && got != lim.Max {
			t.Fatalf("call %d: soft limit %d, want the hard limit %d", i+1, got, lim.Max)
		}
	}
}

func TestRaiseLiftsALoweredLimit(t *testing.T) {
	orig := lowerSoft(t, 100)
	got, err := Raise()
	if err != nil {
		t.Fatal(err)
	}
	if lim := getrlimit(t); got != lim.Cur || got <= 100 {
		t.Fatalf("Raise returned %d; soft limit %d (was 100, hard %d)", got, lim.Cur, orig.Max)
	}
	if runtime.GOOS == "linux" && got != orig.Max {
		t.Fatalf("Raise returned %d, want the hard limit %d", got, orig.Max)
	}
}

// When setrlimit refuses a ceiling, Raise tries the next one; when it
// refuses them all, the limit is left as it was and still reported.
func TestRaiseRefused(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("relies on Linux refusing a soft limit above the hard one")
	}
	orig := lowerSoft(t, 100)
	aboveHard := func(hard uint64) []uint64 { return []uint64{hard + 1} }
	got, err := raiseTo(aboveHard)
	if !errors.Is(err, unix.EINVAL) {
		t.Fatalf("above the hard limit: err %v, want EINVAL", err)
	}
	if lim := getrlimit(t); got != 100 || lim.Cur != 100 {
		t.Fatalf("after a refused raise: returned %d, soft limit %d; want both 100", got, lim.Cur)
	}

	fallback := func(hard uint64) []uint64 { return []uint64{hard + 1, hard - 1} }
	got, err = raiseTo(fallback)
	if err != nil {
		t.Fatal(err)
	}
	if lim := getrlimit(t); got != orig.Max-1 || lim.Cur != got {
		t.Fatalf("with a fallback: returned %d, soft limit %d; want both %d", got, lim.Cur, orig.Max-1)
	}
}
