// Command interest measures what per-user interest costs a NATS cluster,
// the figures behind the capacity model of docs/capacity.md. It subscribes
// -subs distinct subjects <prefix>.user.i<k> on the first node, as gateways
// do for their users (one subscription each, confirmed by a flush every
// -batch), and reports:
//
//   - how fast the node confirmed them (subscriptions per second);
//
//   - how long until a publish through the last node reaches the last
//     subscription: the route's interest propagation after a batch;
//
//   - for every node (-pid, in the order of -url), the growth of its RSS
//     and of the bytes it read and wrote (/proc/<pid>/io rchar and wchar),
//     per subscription: on a node with no clients that is the route
//     traffic of interest propagation (RS+ lines);
//
//   - the same traffic for unsubscribing them all (RS-).
//
//     bash bench/interest.sh            # three natsd processes with routes, then this
//     interest -url nats://127.0.0.1:14222,nats://127.0.0.1:14223,nats://127.0.0.1:14224 \
//     -pid 101,102,103 -subs 200000
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

type node struct {
	URL          string  `json:"url"`
	PID          int     `json:"pid"`
	RSSSubBytes  float64 `json:"rss_per_sub_bytes"`   // RSS growth / subscriptions
	ReadPerSub   float64 `json:"read_per_sub_bytes"`  // rchar growth / subscriptions, subscribing
	WritePerSub  float64 `json:"write_per_sub_bytes"` // wchar growth / subscriptions, subscribing
	ReadPerUnsub float64 `json:"read_per_unsub_bytes"`
}

type result struct {
	Subs          int     `json:"subs"`
	Batch         int     `json:"batch"`
	SubscribeS    float64 `json:"subscribe_s"`
	SubsPerS      float64 `json:"subs_per_s"`
	PropagationMS float64 `json:"propagation_ms"` // last flush on node 1 → a publish through the last node delivered
	UnsubscribeS  float64 `json:"unsubscribe_s"`
	Nodes         []node  `json:"nodes"`
}

type sample struct{ rss, rchar, wchar int64 }

func main() {
	urls := flag.String("url", "nats://127.0.0.1:14222", "comma-separated client URLs of the nodes; subscriptions go to the first, the probe publishes through the last")
	pids := flag.String("pid", "", "comma-separated process ids of the nodes, in the order of -url")
	subs := flag.Int("subs", 200000, "subscriptions")
	batch := flag.Int("batch", 10000, "subscriptions per flush")
	prefix := flag.String("prefix", "notify", "subject prefix")
	out := flag.String("json", "", "write the result as JSON to `FILE`")
	flag.Parse()
	if err := run(strings.Split(*urls, ","), *pids, *subs, *batch, *prefix, *out); err != nil {
		fmt.Fprintln(os.Stderr, "interest:", err)
		os.Exit(1)
	}
}

func run(urls []string, pidList string, n, batch int, prefix, out string) error {
	var pids []int
	for _, s := range strings.Split(pidList, ",") {
		if s == "" {
			continue
		}
		p, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("-pid: %w", err)
		}
		pids = append(pids, p)
	}
	if len(pids) != 0 && len(pids) != len(urls) {
		return fmt.Errorf("-pid has %d ids for %d urls", len(pids), len(urls))
	}
	sub, err := nats.Connect(urls[0], nats.Name("interest-sub"))
	if err != nil {
		return err
	}
	defer sub.Close()
	pub, err := nats.Connect(urls[len(urls)-1], nats.Name("interest-pub"))
	if err != nil {
		return err
	}
	defer pub.Close()

	settle := func() { time.Sleep(2 * time.Second) }
	settle()
	before, err := sampleAll(pids)
	if err != nil {
		return err
	}
	res := result{Subs: n, Batch: batch}
	ch := make(chan *nats.Msg, 64)
	list := make([]*nats.Subscription, 0, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		s, err := sub.ChanSubscribe(prefix+".user.i"+strconv.Itoa(i), ch)
		if err != nil {
			return err
		}
		list = append(list, s)
		if (i+1)%batch == 0 || i == n-1 {
			if err := sub.FlushTimeout(time.Minute); err != nil {
				return err
			}
		}
	}
	res.SubscribeS = time.Since(start).Seconds()
	res.SubsPerS = float64(n) / res.SubscribeS

	// Propagation: publish to the last subject through the last node until
	// it arrives.
	flushed := time.Now()
	last := prefix + ".user.i" + strconv.Itoa(n-1)
	for got := false; !got; {
		if err := pub.Publish(last, []byte("probe")); err != nil {
			return err
		}
		select {
		case <-ch:
			got = true
		case <-time.After(time.Millisecond):
		}
		if time.Since(flushed) > time.Minute {
			return fmt.Errorf("no delivery through %s within a minute", urls[len(urls)-1])
		}
	}
	res.PropagationMS = float64(time.Since(flushed).Microseconds()) / 1000
	for len(ch) > 0 {
		<-ch
	}

	settle()
	mid, err := sampleAll(pids)
	if err != nil {
		return err
	}
	start = time.Now()
	for i, s := range list {
		if err := s.Unsubscribe(); err != nil {
			return err
		}
		if (i+1)%batch == 0 {
			if err := sub.FlushTimeout(time.Minute); err != nil {
				return err
			}
		}
	}
	if err := sub.FlushTimeout(time.Minute); err != nil {
		return err
	}
	res.UnsubscribeS = time.Since(start).Seconds()
	settle()
	after, err := sampleAll(pids)
	if err != nil {
		return err
	}
	for i, pid := range pids {
		b, m, a := before[i], mid[i], after[i]
		res.Nodes = append(res.Nodes, node{
			URL: urls[i], PID: pid,
			RSSSubBytes:  float64(m.rss-b.rss) / float64(n),
			ReadPerSub:   float64(m.rchar-b.rchar) / float64(n),
			WritePerSub:  float64(m.wchar-b.wchar) / float64(n),
			ReadPerUnsub: float64(a.rchar-m.rchar) / float64(n),
		})
	}
	fmt.Printf("%d subscriptions on %s in %.2f s (%.0f/s, a flush every %d); a publish through %s reached the last one %.1f ms after the last flush; unsubscribed in %.2f s\n",
		n, urls[0], res.SubscribeS, res.SubsPerS, batch, urls[len(urls)-1], res.PropagationMS, res.UnsubscribeS)
	for _, nd := range res.Nodes {
		fmt.Printf("  node %s (pid %d): RSS %+.0f B, read %.1f B, wrote %.1f B per subscription; read %.1f B per unsubscription\n",
			nd.URL, nd.PID, nd.RSSSubBytes, nd.ReadPerSub, nd.WritePerSub, nd.ReadPerUnsub)
	}
	if out != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(out, append(b, '\n'), 0o644)
	}
	return nil
}

func sampleAll(pids []int) ([]sample, error) {
	out := make([]sample, len(pids))
	for i, pid := range pids {
		s, err := sampleOf(pid)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// sampleOf reads a process's RSS (VmRSS) and its bytes read and written by
// system calls (rchar, wchar).
func sampleOf(pid int) (sample, error) {
	var s sample
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(st), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			s.rss = kb << 10
		}
	}
	io, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(io), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "rchar:":
			s.rchar = v
		case "wchar:":
			s.wchar = v
		}
	}
	return s, nil
}
