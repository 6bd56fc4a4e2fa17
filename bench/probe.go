package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/bench/internal/report"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports.
const clockTicks = 100

// serverSample is the summed state of the measured server processes. A
// field is -1 when no source provides it.
type serverSample struct {
	RSS        int64
	CPU        float64
	Goroutines int64
	Written    int64 // wsgate_written_bytes_total; -1 unless every --server-metrics URL exports it
	Conns      int64 // wsgate_connections; -1 unless every --server-metrics URL exports it
}

// serverProbe reads the servers' memory and CPU: from /proc for pids on
// this host, from Prometheus metrics for the rest. With both, /proc gives
// RSS and CPU and the metrics give goroutines. Bytes written come from the
// metrics only (wsgate_written_bytes_total, which the gorilla baseline does
// not have).
type serverProbe struct {
	pids    []int
	metrics []string
	client  *http.Client
}

func newServerProbe(pids []int, metrics []string) *serverProbe {
	return &serverProbe{pids: pids, metrics: metrics, client: &http.Client{Timeout: 2 * time.Second}}
}

func (p *serverProbe) enabled() bool { return len(p.pids)+len(p.metrics) > 0 }

// rss is the servers' summed RSS for the monitor's timeline, -1 when no
// source gives it. With pids it reads /proc only: the monitor runs every
// second, and scraping a gateway's /metrics costs the gateway about 4 ms
// of CPU, which over dozens of gateways on the host under test is load of
// the harness's own making.
func (p *serverProbe) rss(ctx context.Context) int64 {
	if len(p.pids) == 0 {
		s, _ := p.sample(ctx)
		return s.RSS
	}
	var total int64
	for _, pid := range p.pids {
		rss, _, err := procUsage(pid)
		if err != nil {
			return -1
		}
		total += rss
	}
	return total
}

func (p *serverProbe) sample(ctx context.Context) (serverSample, error) {
	s := serverSample{RSS: -1, CPU: -1, Goroutines: -1, Written: -1, Conns: -1}
	if !p.enabled() {
		return s, nil
	}
	var errs []error
	if len(p.pids) > 0 {
		s.RSS, s.CPU = 0, 0
		for _, pid := range p.pids {
			rss, cpu, err := procUsage(pid)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			s.RSS += rss
			s.CPU += cpu
		}
	}
	if len(p.metrics) > 0 {
		var rss, cpu, gor float64
		var written, conns int64
		for _, u := range p.metrics {
			m, err := p.scrape(ctx, u)
			if err != nil {
				errs = append(errs, err)
				written, conns = -1, -1
				continue
			}
			rss += m["process_resident_memory_bytes"]
			cpu += m["process_cpu_seconds_total"]
			gor += m["go_goroutines"]
			if w, ok := m[writtenMetric]; ok && written >= 0 {
				written += int64(w)
			} else {
				written = -1
			}
			if c, ok := m[connsMetric]; ok && conns >= 0 {
				conns += int64(c)
			} else {
				conns = -1
			}
		}
		if len(p.pids) == 0 {
			s.RSS, s.CPU = int64(rss), cpu
		}
		s.Goroutines, s.Written, s.Conns = int64(gor), written, conns
	}
	return s, errors.Join(errs...)
}

// wantMetrics must be in every scrape; writtenMetric is read when present.
var wantMetrics = []string{"process_resident_memory_bytes", "process_cpu_seconds_total", "go_goroutines"}

// writtenMetric and connsMetric are read when present (the gorilla
// baseline has neither).
const (
	writtenMetric = "wsgate_written_bytes_total"
	connsMetric   = "wsgate_connections"
)

var scrapedMetrics = append(wantMetrics[:len(wantMetrics):len(wantMetrics)], writtenMetric, connsMetric)

func (p *serverProbe) scrape(ctx context.Context, u string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range scrapedMetrics {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, err := strconv.ParseFloat(strings.Fields(v)[0], 64)
				if err == nil {
					m[name] = f
				}
			}
		}
	}
	for _, name := range wantMetrics {
		if _, ok := m[name]; !ok {
			return nil, fmt.Errorf("%s: no %s", u, name)
		}
	}
	return m, sc.Err()
}

// procUsage returns the RSS (VmRSS of /proc/<pid>/status) and user+system
// CPU seconds (/proc/<pid>/stat) of pid.
func procUsage(pid int) (rss int64, cpu float64, err error) {
	dir := "/proc/" + strconv.Itoa(pid)
	st, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'. utime and stime are fields 14 and 15 (1-based).
	i := bytes.LastIndexByte(st, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("%s/stat: malformed", dir)
	}
	f := strings.Fields(string(st[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("%s/stat: malformed", dir)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%s/stat: malformed", dir)
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, 0, err
			}
			rss = kb << 10
		}
	}
	return rss, float64(ut+stime) / clockTicks, nil
}

// selfUsage returns this process's user+system CPU seconds and peak RSS.
func selfUsage() (cpu float64, maxRSS int64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return tvSeconds(ru.Utime) + tvSeconds(ru.Stime), ru.Maxrss << 10
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// selfRSS returns this process's current RSS.
func selfRSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// machine describes this host for Result.Machine.
func machine() report.Machine {
	m := report.Machine{Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, CPUs: runtime.NumCPU()}
	m.Hostname, _ = os.Hostname()
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	return m
}

// series returns, summed over every --server-metrics URL, the samples of
// the metrics named (labeled or not), keyed as exposed: `name{labels}` or
// `name`. It is nil, with no error, without --server-metrics.
func (p *serverProbe) series(ctx context.Context, names ...string) (map[string]float64, error) {
	if len(p.metrics) == 0 {
		return nil, nil
	}
	out := map[string]float64{}
	for _, u := range p.metrics {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := p.client.Do(req)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			for _, name := range names {
				rest, ok := strings.CutPrefix(line, name)
				if !ok || rest == "" || rest[0] != ' ' && rest[0] != '{' {
					continue
				}
				i := strings.LastIndexByte(line, ' ')
				if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
					out[line[:i]] += v
				}
			}
		}
		err = sc.Err()
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// byLabel returns the growth from before to after of the samples of name,
// keyed by the value of its one label: wsgate_history_requests_total
// {kind="read"} is "read".
func byLabel(before, after map[string]float64, name string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		rest, ok := strings.CutPrefix(k, name+"{")
		if !ok {
			continue
		}
		_, val, _ := strings.Cut(rest, `="`)
		val, _, _ = strings.Cut(val, `"`)
		out[val] += v - before[k]
	}
	return out
}
