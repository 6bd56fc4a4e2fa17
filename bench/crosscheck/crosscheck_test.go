package main

import (
	"bytes"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRunFloor runs the client against the floor server and a NATS server
// in this process: every connection welcomed, every broadcast delivered.
func TestRunFloor(t *testing.T) {
	ns := natstest.Run(t, false)
	f, err := newFloor(ns.ClientURL(), "notify")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		f.Close()
	})

	const conns, messages = 50, 3
	res, err := run(t.Context(), runConfig{
		Label: "floor", URL: "ws://" + ln.Addr().String() + "/ws", NATS: ns.ClientURL(), SubjectPrefix: "notify",
		Conns: conns, Dialers: 8, UserPrefix: "t", Messages: messages, MsgRate: 50, PayloadSize: 200,
		ServerPID: os.Getpid(), Settle: 10 * time.Millisecond, Timeout: 10 * time.Second, DialTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.ConnsEstablished != conns || res.ConnsFailed != 0 {
		t.Errorf("established %d, failed %d %v; want %d, 0", res.ConnsEstablished, res.ConnsFailed, res.FailReasons, conns)
	}
	if res.DeliveriesExpected != conns*messages || res.Delivered != res.DeliveriesExpected || res.Lost != 0 {
		t.Errorf("delivered %d/%d, lost %d; want %d, none lost", res.Delivered, res.DeliveriesExpected, res.Lost, conns*messages)
	}
	if res.Duplicated != 0 || res.Reordered != 0 || res.OtherFrames != 0 || res.ClosedEarly != nil {
		t.Errorf("dup %d, reordered %d, other %d, closed early %v; want none", res.Duplicated, res.Reordered, res.OtherFrames, res.ClosedEarly)
	}
	if res.ConnectRatePerS <= 0 || res.LatencyMS.Max <= 0 || res.LatencyMS.P50 > res.LatencyMS.P99 {
		t.Errorf("connect rate %v, latency %+v", res.ConnectRatePerS, res.LatencyMS)
	}
	if res.ServerRSSBefore <= 0 || res.ServerCPUSPerM < 0 {
		t.Errorf("server RSS %d, CPU per million %v: /proc not read", res.ServerRSSBefore, res.ServerCPUSPerM)
	}
}

func TestRunRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res, err := run(t.Context(), runConfig{URL: "ws://" + addr + "/ws", Conns: 3, Dialers: 2, DialTimeout: time.Second})
	if err == nil || res.ConnsFailed != 3 || res.FailReasons["dial_refused"] != 3 {
		t.Errorf("err %v, failed %d %v; want an error and 3 dial_refused", err, res.ConnsFailed, res.FailReasons)
	}
}

func TestPayload(t *testing.T) {
	for _, tc := range []struct {
		seq  uint32
		ts   int64
		size int
	}{
		{1, 1_700_000_000_123_456_789, 200},
		{20, 1, 0},
		{math.MaxUint32, math.MaxInt64, 40},
		{7, 0, 1000},
	} {
		p := appendPayload(nil, tc.seq, tc.ts, tc.size)
		if !json.Valid(p) {
			t.Errorf("%+v: %s is not JSON", tc, p)
		}
		if len(p) < tc.size || (len(p) > tc.size && tc.size >= 40) {
			t.Errorf("%+v: %d bytes", tc, len(p))
		}
		// Both servers' frame, and the floor's: the payload verbatim.
		for _, frame := range [][]byte{appendEnvelope(nil, "broadcast", p), appendTextFrame(nil, appendEnvelope(nil, "broadcast", p))} {
			seq, ts, ok := parseDelivery(frame)
			if !ok || seq != tc.seq || ts != tc.ts {
				t.Errorf("%+v: parsed %d %d %v from %s", tc, seq, ts, ok, frame)
			}
		}
	}
	for _, frame := range []string{
		`{"type":"welcome","conn":"1","user":"u","ping_interval":25}`,
		`{"type":"message","channel":"broadcast","data":"xc/"}`,
		`{"type":"message","channel":"broadcast","data":"xc//1/"}`,
		`{"type":"message","channel":"broadcast","data":"xc/1/2"}`,
		`{"type":"message","channel":"broadcast","data":"xc/1a/2/"}`,
		`{"type":"message","channel":"broadcast","data":"xc/4294967296/2/"}`,
		`{"type":"message","channel":"broadcast","data":"xc/1/9223372036854775808/"}`,
		`{"type":"message","channel":"broadcast","data":"xc/1/12345678901234567890/"}`,
		`{"type":"message","channel":"broadcast","data":{"seq":1,"ts":2}}`,
	} {
		if seq, ts, ok := parseDelivery([]byte(frame)); ok {
			t.Errorf("%s: parsed %d %d", frame, seq, ts)
		}
	}
}

func TestTextFrameHeader(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x81, 0}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{0xffff, []byte{0x81, 126, 0xff, 0xff}},
		{0x10000, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		got := appendTextFrame(nil, make([]byte, tc.n))
		if !bytes.Equal(got[:len(tc.want)], tc.want) || len(got) != len(tc.want)+tc.n {
			t.Errorf("%d bytes: header % x, length %d", tc.n, got[:len(tc.want)], len(got))
		}
	}
}

// TestRealFrames parses what wsgate and the baseline sent for a welcome
// and for broadcast 1: the seeds of FuzzParseDelivery in testdata.
func TestRealFrames(t *testing.T) {
	paths, err := filepath.Glob("testdata/fuzz/FuzzParseDelivery/*-*")
	if err != nil || len(paths) < 4 {
		t.Fatalf("seeds %v, %v", paths, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		lit, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "go test fuzz v1\n[]byte(")
		frame, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if !ok || err != nil {
			t.Fatalf("%s: not a corpus file: %v", p, err)
		}
		seq, ts, ok := parseDelivery([]byte(frame))
		if want := strings.HasSuffix(p, "-broadcast"); ok != want || (ok && (seq != 1 || ts < 1.7e18)) {
			t.Errorf("%s: parsed %d %d %v, want a delivery: %v", p, seq, ts, ok, want)
		}
	}
}

// FuzzParseDelivery: whatever a server sends, parseDelivery does not
// panic, and what it finds is what appendPayload wrote. The seeds in
// testdata are frames wsgate and the baseline sent.
func FuzzParseDelivery(f *testing.F) {
	f.Add(appendEnvelope(nil, "broadcast", appendPayload(nil, 3, 1_700_000_000_000_000_000, 200)))
	f.Add([]byte(`{"type":"welcome","conn":"1","user":"u","ping_interval":25}`))
	f.Add([]byte(`"data":"xc/1/2/`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		seq, ts, ok := parseDelivery(frame)
		if !ok {
			return
		}
		if ts < 0 {
			t.Fatalf("negative time %d", ts)
		}
		again, ts2, ok := parseDelivery(appendEnvelope(nil, "broadcast", appendPayload(nil, seq, ts, 0)))
		if !ok || again != seq || ts2 != ts {
			t.Fatalf("%d %d written, %d %d %v parsed", seq, ts, again, ts2, ok)
		}
	})
}

func TestSummary(t *testing.T) {
	dir := t.TempDir()
	// Rounds r1, r2 and r10 (sorted as numbers); r2 has no floor.
	for _, rd := range []struct {
		name                 string
		gwCPU, blCPU, flCPU  float64 // CPU s per million delivered
		gwP99, blP99         float64
		gwRate, blRate       float64
		gwConnect, blConnect float64 // CPU µs per connect
	}{
		{"r1", 2, 8, 1, 3, 6, 9000, 3000, 40, 80},
		{"r2", 3, 9, 0, 2, 8, 8000, 4000, 30, 90},
		{"r10", 4, 10, 1, 1, 4, 6000, 3000, 60, 60},
	} {
		p := filepath.Join(dir, rd.name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		write := func(label string, r result) {
			r.Label = label
			b, _ := json.Marshal(r)
			if err := os.WriteFile(filepath.Join(p, label+".json"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("wsgate", result{ServerCPUSPerM: rd.gwCPU, LatencyMS: latency{P99: rd.gwP99}, ConnectRatePerS: rd.gwRate, ServerCPUUSPerConnect: rd.gwConnect, RSSBytesPerIdleConn: 1000})
		write("baseline", result{ServerCPUSPerM: rd.blCPU, LatencyMS: latency{P99: rd.blP99}, ConnectRatePerS: rd.blRate, ServerCPUUSPerConnect: rd.blConnect, RSSBytesPerIdleConn: 20000})
		if rd.flCPU > 0 {
			write("floor", result{ServerCPUSPerM: rd.flCPU})
		}
	}
	rounds, err := loadRounds(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rounds) != 3 || rounds[2].name != "r10" || rounds[1].res["floor"] != nil {
		t.Fatalf("rounds %v", rounds)
	}
	want := map[string]float64{
		"wsgate CPU per million delivered ÷ floor":   3,    // 2, -, 4
		"baseline CPU per million delivered ÷ floor": 9,    // 8, -, 10
		"wsgate broadcast p99 ÷ baseline":            0.25, // 0.5, 0.25, 0.25
		"wsgate connect rate ÷ baseline":             2,    // 3, 2, 2
		"wsgate CPU per connect ÷ baseline":          0.5,  // 0.5, 0.33, 1
	}
	for _, ra := range ratios {
		per := make([]float64, len(rounds))
		for i, rd := range rounds {
			per[i] = ra.of(rd)
		}
		if got := median(per); math.Abs(got-want[ra.name]) > 1e-9 {
			t.Errorf("%s: median of %v is %v, want %v", ra.name, per, got, want[ra.name])
		}
	}
	var out bytes.Buffer
	if err := writeSummary(&out, rounds); err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`(?m)^\s+r10\s+conns`, `(?m)^\s+floor\s+-$`, `(?m)^wsgate CPU per million delivered ÷ floor\s+2.00\s+-\s+4.00\s+3.00$`, `(?m)^baseline\s+3000\s+80.0\s+20000\s`} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("summary does not match %s:\n%s", re, out.String())
		}
	}
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"bogus"}, 2},
		{[]string{"run", "-help"}, 0},
		{[]string{"run", "--conns", "0"}, 2},
		{[]string{"run", "--no-such-flag"}, 2},
		{[]string{"floor-server", "-help"}, 0},
		{[]string{"summary"}, 2},
		{[]string{"summary", t.TempDir()}, 1}, // no round in it
	} {
		var out, errOut bytes.Buffer
		if got := runMain(t.Context(), tc.args, &out, &errOut); got != tc.code {
			t.Errorf("%q: exit %d, want %d; stderr %s", tc.args, got, tc.code, errOut.String())
		}
	}
}
