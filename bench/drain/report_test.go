package main

import (
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBuckets(t *testing.T) {
	s := time.Second
	ms := time.Millisecond
	tests := []struct {
		name            string
		width, end      time.Duration
		closes, welcome []time.Duration
		want            []Bucket
	}{
		{"empty", s, 3 * s, nil, nil, []Bucket{{StartS: 0}, {StartS: 1}, {StartS: 2}}},
		{"edges", s, 2 * s, []time.Duration{0, 999 * ms, s}, []time.Duration{s, 2*s - 1}, []Bucket{
			{StartS: 0, Closes: 2}, {StartS: 1, Closes: 1, Reconnects: 2}}},
		{"outside clamps", 500 * ms, s, []time.Duration{-ms}, []time.Duration{5 * s}, []Bucket{
			{StartS: 0, Closes: 1}, {StartS: 0.5, Reconnects: 1}}},
		{"end rounds up", s, 1500 * ms, nil, nil, []Bucket{{StartS: 0}, {StartS: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buckets(tt.width, tt.end, tt.closes, tt.welcome); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSpread(t *testing.T) {
	tests := []struct {
		name            string
		counts          []int
		active, largest int
	}{
		{"none", []int{0, 0}, 0, 0},
		{"flat after the delay", []int{0, 0, 10, 10, 10, 0}, 3, 10},
		{"wave", []int{0, 90, 0, 0, 10}, 4, 90},
		{"one bucket", []int{0, 7}, 1, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := make([]Bucket, len(tt.counts))
			for i, n := range tt.counts {
				bs[i].Reconnects = n
			}
			if active, largest := spread(bs); active != tt.active || largest != tt.largest {
				t.Errorf("got %d, %d; want %d, %d", active, largest, tt.active, tt.largest)
			}
		})
	}
}

func TestPercentiles(t *testing.T) {
	ms := make([]float64, 100)
	for i := range ms {
		ms[i] = float64(100 - i) // 100 .. 1, unsorted
	}
	tests := []struct {
		name string
		in   []float64
		want Percentiles
	}{
		{"none", nil, Percentiles{}},
		{"one", []float64{3}, Percentiles{3, 3, 3}},
		{"hundred", ms, Percentiles{50, 99, 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentiles(tt.in); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestKind(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{wsutil.ClosedError{Code: ws.StatusNormalClosure}, "close 1000"},
		{ws.StatusError(503), "http 503"},
		{io.EOF, "eof"},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, "reset"},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "refused"},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, "timeout"},
		{errDeadline, "deadline"},
		{errors.New("odd"), "odd"},
	}
	for _, tt := range tests {
		if got := kind(tt.err); got != tt.want {
			t.Errorf("kind(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestReport checks the sums over a few made-up clients.
func TestReport(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	clients := []client{
		{id: 0, endAt: at(1000), code: ws.StatusGoingAway, welcomeB: at(1002)},
		{id: 1, endAt: at(2500), code: ws.StatusGoingAway, welcomeB: at(2510)},
		{id: 2, endAt: at(2600), closeErr: io.EOF, welcomeB: at(2601)},
		{id: 3, endAt: at(2700), code: ws.StatusGoingAway, reconnErr: ws.StatusError(503)},
		{id: 4, dialErr: io.EOF},
	}
	cfg := config{drainDelay: time.Second, drainTimeout: 2 * time.Second, bucket: time.Second}
	r := newReport(cfg, clients, observed{t0: t0, exitAt: at(3100), exitStatus: "exit status 0"})
	if r.Connected != 4 || r.Got1001 != 3 || r.Reconnected != 3 || r.No1001 != 1 || r.NoReconnect != 1 || r.ConnectFailed != 1 {
		t.Errorf("counts: %+v", r)
	}
	if *r.First1001S != 1 || *r.Last1001S != 2.7 || *r.ExitS != 3.1 || r.Readyz503S != nil {
		t.Errorf("times: first %v last %v exit %v readyz %v", *r.First1001S, *r.Last1001S, *r.ExitS, r.Readyz503S)
	}
	if want := (Percentiles{P50: 2, P99: 10, Max: 10}); r.ReconnectMs != want {
		t.Errorf("latency %+v, want %+v", r.ReconnectMs, want)
	}
	if want := []Bucket{{0, 0, 0}, {1, 1, 1}, {2, 2, 2}}; !reflect.DeepEqual(r.Buckets, want) {
		t.Errorf("buckets %+v, want %+v", r.Buckets, want)
	}
	if r.MaxBucket != 2 || r.MeanBucket != 1.5 || r.MaxOverMean != 1.333 || r.ActiveBuckets != 2 {
		t.Errorf("spread: max %d mean %v active %d", r.MaxBucket, r.MeanBucket, r.ActiveBuckets)
	}
	want := map[string]map[string]int{"connect": {"eof": 1}, "close": {"eof": 1}, "reconnect": {"http 503": 1}}
	if !reflect.DeepEqual(r.Failures, want) {
		t.Errorf("failures %v, want %v", r.Failures, want)
	}
	var out strings.Builder
	r.print(&out)
	for _, s := range []string{"drain of 5 connections", "no reconnect", "http 503: 1", "#"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("the table lacks %q:\n%s", s, out.String())
		}
	}
}
