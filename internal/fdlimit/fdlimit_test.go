package fdlimit

import (
	"math"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCapacity(t *testing.T) {
	tests := []struct {
		name  string
		limit uint64
		want  int
	}{
		{"zero", 0, 0},
		{"below reserved", Reserved - 1, 0},
		{"reserved", Reserved, 0},
		{"one over", Reserved + 1, 1},
		{"macOS soft default", 256, 256 - Reserved},
		{"common soft default", 1024, 1024 - Reserved},
		{"systemd hard default", 524288, 524288 - Reserved},
		{"fs.nr_open maximum", 1 << 30, 1<<30 - Reserved},
		{"largest int", math.MaxInt + Reserved, math.MaxInt},
		{"RLIM_INFINITY", math.MaxUint64, math.MaxInt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Capacity(tt.limit); got != tt.want {
				t.Errorf("Capacity(%d) = %d, want %d", tt.limit, got, tt.want)
			}
		})
	}
}
