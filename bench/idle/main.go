// Command idle measures what idle WebSocket connections cost a running
// gateway: it reads the gateway's RSS (/proc/<pid>/status) and goroutine
// count (/metrics), opens N connections as N distinct users (each gets its
// own NATS subscription), waits for every welcome, and reads both again.
//
//	go run ./bench/idle -url ws://127.0.0.1:8080/ws -admin http://127.0.0.1:9090 -pid 1234 -n 5000
//
// It is the small precursor of wsbench's connect scenario; `make idle-rss`
// runs it against a gateway whose NATS server is in another process.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080/ws", "gateway WebSocket URL (development auth: ?user= is added)")
	admin := flag.String("admin", "http://127.0.0.1:9090", "gateway admin URL")
	pid := flag.Int("pid", 0, "gateway process id (for /proc/<pid>/status)")
	n := flag.Int("n", 5000, "connections to open")
	hold := flag.Duration("hold", 0, "keep the connections open this long after measuring (to profile the gateway)")
	deflate := flag.Bool("deflate", false, "offer permessage-deflate as Chromium does, so the connections are a browser's")
	flag.Parse()
	if *deflate {
		dialer.Extensions = []httphead.Option{httphead.NewOption("permessage-deflate", map[string]string{"client_max_window_bits": ""})}
	}
	if err := run(*url, *admin, *pid, *n, *hold); err != nil {
		fmt.Fprintln(os.Stderr, "idle:", err)
		os.Exit(1)
	}
}

func run(url, admin string, pid, n int, hold time.Duration) error {
	settle := func() (rss, goroutines int, err error) {
		time.Sleep(2 * time.Second) // let the gateway's GC and scavenger settle
		if rss, err = rssKiB(pid); err != nil {
			return 0, 0, err
		}
		goroutines, err = metric(admin, "go_goroutines")
		return rss, goroutines, err
	}
	rss0, g0, err := settle()
	if err != nil {
		return err
	}
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 64)
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := dial(url + "?user=idle" + strconv.Itoa(i))
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	elapsed := time.Since(start)
	debug.FreeOSMemory()
	rss1, g1, err := settle()
	if err != nil {
		return err
	}
	fmt.Printf("connections: %d opened in %v (%.0f/s)\n", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	fmt.Printf("gateway RSS: %d KiB before, %d KiB after: %.2f KiB per connection\n", rss0, rss1, float64(rss1-rss0)/float64(n))
	fmt.Printf("gateway goroutines: %d before, %d after: %.4f per connection\n", g0, g1, float64(g1-g0)/float64(n))
	time.Sleep(hold)
	for _, c := range conns {
		c.Close()
	}
	return nil
}

// dialer opens the connections; -deflate adds Chromium's offer.
var dialer ws.Dialer

// dial connects and waits for the welcome frame.
func dial(url string) (net.Conn, error) {
	conn, br, _, err := dialer.Dial(context.Background(), url)
	if err != nil {
		return nil, err
	}
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	msg, err := wsutil.ReadServerText(struct {
		io.Reader
		io.Writer
	}{r, conn})
	if err != nil || !strings.Contains(string(msg), `"welcome"`) {
		conn.Close()
		return nil, fmt.Errorf("no welcome: %q, %v", msg, err)
	}
	conn.SetReadDeadline(time.Time{})
	return conn, nil
}

func rssKiB(pid int) (int, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

func metric(admin, name string) (int, error) {
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int(f), err
		}
	}
	return 0, fmt.Errorf("no metric %s", name)
}
