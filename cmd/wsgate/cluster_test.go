//go:build integration && linux

package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/internal/wstest"
)

// deployCluster is the reference deployment the test runs, relative to
// this package's directory.
const deployCluster = "../../deploy/cluster"

// TestClusterFailover runs the reference fleet of deploy/cluster as real
// processes on loopback: three NATS nodes (bench/natsd with the
// deployment's nats-N.conf, on ports of the test's own) routed as one
// cluster with JetStream, the stream at three replicas, and two gateways,
// A listing node A first among its seeds and B node B. A user U holds a
// WebSocket on gateway A and a user V one on gateway B; a service
// publishes through a third node. Then the node gateway A is connected to
// is killed with SIGKILL while the service keeps storing durable
// notifications, in two cases: the node leads the stream (the publishes
// wait for JetStream to elect another leader), or another node does (they
// go on while the gateway moves, and it may miss some). In both:
//
//   - before the kill, U and V get what the service published through the
//     other node: the cluster routes it;
//   - gateway A logs its reconnect to a survivor, and neither WebSocket is
//     closed: each client dials once, answers the gateway's pings (a 1 s
//     ping interval against a 5 s idle timeout) and never reconnects;
//   - gateway A looks the stream up again (its durable frames carry epoch
//     0 until then; when the node killed led the stream, that waits for
//     the new leader) and then sends its connections {"type":"missed"};
//   - every notification JetStream acknowledged reaches U and V exactly
//     once and in order, what the gateway missed while it moved recovered
//     by resume as docs/protocol.md tells a client to;
//   - /readyz on A, sampled every pollEvery, answers nothing but 200 and
//     the 503 "bus disconnected" docs/operations.md ("NATS") promises while
//     the bus is down, and 200 once it has reconnected; its second line
//     says "durable: ok" once the stream is known again.
//
// With HAProxy installed it also runs deploy/cluster/haproxy.cfg in front
// of the gateways: a client through it reaches a gateway and its
// notifications, and a gateway whose /readyz turns 503 on SIGTERM is
// marked DOWN on the stats socket while the other takes the new clients.
func TestClusterFailover(t *testing.T) {
	for _, tc := range []struct {
		name         string
		killedLeader bool
	}{
		{"stream leader killed", true},
		{"stream leader survives", false},
	} {
		t.Run(tc.name, func(t *testing.T) { testClusterFailover(t, tc.killedLeader) })
	}
}

// testClusterFailover is TestClusterFailover, with the node killed leading
// the stream or not.
func testClusterFailover(t *testing.T, killedLeader bool) {
	bin, natsd := buildBinary(t), buildNatsd(t)
	nodes := startNATSCluster(t, natsd)
	seeds := func(first int) string {
		urls := []string{nodes[first].url}
		for i, n := range nodes {
			if i != first {
				urls = append(urls, n.url)
			}
		}
		return strings.Join(urls, ",")
	}

	// The stream at three replicas, as an operator applies it; R3 needs
	// a JetStream meta leader that knows all three peers, which takes a
	// moment after the routes are up.
	var applied runResult
	wstest.CheckFor(t, 30*time.Second, 250*time.Millisecond, func() error {
		applied = runBinary(t, bin, nil, "stream", "apply", "--nats-url", seeds(0), "--durable-replicas", "3", "--timeout", "2s")
		if applied.code != 0 {
			return fmt.Errorf("wsgate stream apply: status %d: %s", applied.code, applied.stderr)
		}
		return nil
	})
	if !strings.Contains(applied.stdout, "file, 3 replica(s)") {
		t.Fatalf("wsgate stream apply --durable-replicas 3 printed:\n%s", applied.stdout)
	}

	gateway := func(id string, first int) *clusterGateway {
		g := &clusterGateway{id: id, gatewayProc: startGateway(t, bin, "--gateway-id", id,
			"--durable", "--durable-replicas", "3", "--nats-url", seeds(first),
			"--ping-interval", "1s", "--idle-timeout", "5s",
			"--drain-delay", drainDelay.String(), "--drain-timeout", "0")}
		g.waitLog(t, "durable stream ready")
		g.ws = g.waitField(t, "gateway listening", "addr")
		g.admin = g.waitField(t, "admin listening", "addr")
		g.node = nodeOf(t, nodes, g.waitField(t, "nats connected", "url"))
		return g
	}
	a, b := gateway("gwa", 0), gateway("gwb", 1)

	// The victim is gateway A's node, wherever nats.go's shuffled seeds
	// took it (the first seed is a hint); the service publishes through a
	// node neither gateway is on, so that every notification crosses a
	// route. Of three nodes one is always left.
	victim := a.node
	service := nodes[slices.IndexFunc(nodes, func(n *natsNode) bool { return n != victim && n != b.node })]
	t.Logf("gateway A on %s, gateway B on %s, the service on %s", a.node.name, b.node.name, service.name)
	nc, err := bus.Dial(service.url, "fleet-service")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pub := bus.NewPublisher(nc, "")
	leader := service
	if killedLeader {
		leader = victim
	}
	makeStreamLeader(t, nc, leader.name)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	u := dialFleetClient(ctx, t, "ws://"+a.ws+"/ws?user=fleet0", "user.fleet0")
	v := dialFleetClient(ctx, t, "ws://"+b.ws+"/ws?user=fleet1", "user.fleet1")
	users := []*fleetClient{u, v}

	// A volatile notification through the service's node reaches each
	// user on the other nodes, once the gateways' interest has crossed the
	// routes; until then it is lost, as volatile notifications are, so
	// the service sends again.
	for i, c := range users {
		user := fmt.Sprint("fleet", i)
		wstest.CheckFor(t, 10*time.Second, 0, func() error {
			if err := pub.User(user, []byte(`"hello"`)); err != nil {
				return err
			}
			if err := c.expectVolatile("hello", 200*time.Millisecond); err != nil {
				return fmt.Errorf("%w, published through %s", err, service.name)
			}
			return nil
		})
	}

	ready := pollReady(ctx, "http://"+a.admin+"/readyz")
	var front *clusterFront
	if haproxy := findTool("haproxy"); haproxy != "" {
		front = startClusterHAProxy(t, haproxy, a, b)
		front.expectReachable(t, ctx, pub)
	} else {
		t.Log("no haproxy on PATH or in /usr/sbin: the fleet runs without its load balancer")
	}

	// Durable notifications, acknowledged by JetStream at three replicas,
	// to U and V in rounds; the node dies after the first rounds, and
	// the service goes on until gateway A has reconnected and a few
	// rounds more, which carry the prev that shows a client what the
	// gateway missed while it moved.
	const before, after = 20, 10
	stored := make([][]uint64, len(users))
	kill := make(chan struct{})
	moved := make(chan struct{})
	published := make(chan error, 1)
	var stall time.Duration // the longest round after the kill: JetStream's failover as the service sees it
	go func() {
		extra := 0
		for r := 0; extra <= after; r++ {
			if r == before {
				close(kill)
			}
			if r > before {
				select {
				case <-moved:
					extra++
				default:
				}
			}
			start := time.Now()
			if err := publishRound(ctx, pub, "fleet", r, stored); err != nil {
				published <- err
				return
			}
			if r >= before {
				stall = max(stall, time.Since(start))
			}
			sleepCtx(ctx, 5*time.Millisecond) // a steady flow, not a burst
		}
		published <- nil
	}()

	<-kill
	killed := time.Now()
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	line := a.waitLog(t, "nats reconnected")
	close(moved)
	survivor, _ := line["url"].(string)
	if n := nodeOf(t, nodes, survivor); n == victim {
		t.Fatalf("gateway A reconnected to %s, the node killed", n.name)
	} else {
		t.Logf("killed %s (gateway A's node; %s leads the stream) with SIGKILL; gateway A logged its disconnect %v and its reconnect to %s %v after the kill",
			victim.name, leader.name, logTime(t, a.waitLog(t, "nats disconnected")).Sub(killed).Round(time.Millisecond),
			n.name, logTime(t, line).Sub(killed).Round(time.Millisecond))
	}
	if b.node == victim {
		b.waitLog(t, "nats reconnected")
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	t.Logf("the service's longest round of two acknowledged durable publishes after the kill took %v", stall.Round(time.Millisecond))

	// After its reconnect gateway A looks the stream up again (durable
	// frames carry epoch 0 until it has), and then tells each of its
	// connections that it may have missed notifications meanwhile
	// ({"type":"missed"}, docs/protocol.md); U resumes.
	epoch := a.waitLogN(t, "stream epoch", 2, 30*time.Second)
	wstest.CheckFor(t, 10*time.Second, pollEvery, func() error {
		if u.stats().missed == 0 {
			return errors.New(`U has not been told "missed" after gateway A found the stream again`)
		}
		return nil
	})
	t.Logf("gateway A knew the stream's epoch again %v after the kill, and told its connections they may have missed notifications",
		logTime(t, epoch).Sub(killed).Round(time.Millisecond))

	// Every acknowledged notification, once, in order, on the WebSocket
	// each client opened at the start.
	wstest.CheckFor(t, 30*time.Second, pollEvery, func() error {
		for _, c := range users {
			select {
			case err := <-c.ended:
				t.Fatalf("%s: %v", c.channel, err)
			default:
			}
		}
		for i, c := range users {
			if got := c.pos.Applied(c.channel); !slices.Equal(got, stored[i]) {
				return fmt.Errorf("%s applied %d of %d notifications; last %v, want %v", c.channel, len(got), len(stored[i]), tail(got), tail(stored[i]))
			}
		}
		return nil
	})
	for i, c := range users {
		if n := c.pos.Unrecovered(); n != 0 {
			t.Errorf("%s: %d resumes answered recovered:false", c.channel, n)
		}
		st := c.stats()
		t.Logf("%s (gateway %s): %d acknowledged notifications applied on its one WebSocket; %d came with epoch 0; %d missed frames, %d resumes (for them or a gap) that replayed %d",
			c.channel, []string{"A", "B"}[i], len(stored[i]), st.epochless, st.missed, st.resumes, st.replayed)
	}

	// /readyz followed the bus: 503 only for its disconnect, 200 again.
	wstest.CheckFor(t, 10*time.Second, pollEvery, func() error {
		if s := ready.last(); s.code != http.StatusOK {
			return fmt.Errorf("/readyz on A answers %d %q after the reconnect", s.code, s.reason)
		}
		return nil
	})
	for _, s := range ready.samples() {
		if s.code != http.StatusOK && s.reason != "bus disconnected" {
			t.Errorf("/readyz on A answered %d %q at %v, want 200 or 503 bus disconnected", s.code, s.reason, s.at.Sub(killed))
		}
	}
	wstest.CheckFor(t, 5*time.Second, pollEvery, func() error {
		if s := ready.last(); s.durable != "durable: ok" {
			return fmt.Errorf("/readyz on A says %q once the stream is known again, want durable: ok", s.durable)
		}
		return nil
	})
	t.Logf("/readyz on A, sampled every %v from the kill: status %s; second line %s", pollEvery,
		ready.summary(killed, func(s readySample) string { return fmt.Sprintf("%d %s", s.code, s.reason) }),
		ready.summary(killed, func(s readySample) string { return s.durable }))

	// The WebSockets are still up: a last volatile notification arrives
	// on each.
	for i, c := range users {
		if err := pub.User(fmt.Sprint("fleet", i), []byte(`"after"`)); err != nil {
			t.Fatal(err)
		}
		if err := c.expectVolatile("after", 5*time.Second); err != nil {
			t.Fatalf("%v after the failover", err)
		}
	}
	cancel()
	for _, c := range users {
		<-c.done
	}

	if front != nil {
		front.expectDrainedOut(t, b, a)
	}
}

// logTime returns when a gateway wrote a JSON log line: its ts, seconds
// since the epoch.
func logTime(t *testing.T, line map[string]any) time.Time {
	t.Helper()
	ts, ok := line["ts"].(float64)
	if !ok {
		t.Fatalf("log line %v has no ts", line)
	}
	return time.Unix(0, int64(ts*1e9))
}

// waitLogN returns the nth JSON log line whose message is msg, waiting up
// to total for it. The message must match whole: "stream epoch" is not
// "stream epoch unknown: …".
func (g *gatewayProc) waitLogN(t *testing.T, msg string, n int, total time.Duration) map[string]any {
	t.Helper()
	var found map[string]any
	wstest.CheckFor(t, total, pollEvery, func() error {
		seen := 0
		for line := range strings.Lines(g.log.String()) {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil {
				continue
			}
			if m["msg"] == msg {
				if seen++; seen == n {
					found = m
					return nil
				}
			}
		}
		return fmt.Errorf("%d of %d log lines %q", seen, n, msg)
	})
	return found
}

// natsNode is one NATS process of the test's cluster.
type natsNode struct {
	*gatewayProc
	name string // server_name, from deploy/cluster/nats-N.conf
	url  string // client URL, from its output
}

// buildNatsd builds bench/natsd into the test's temporary directory.
func buildNatsd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "natsd")
	out, err := exec.Command("go", "build", "-o", bin, "../../bench/natsd").CombinedOutput()
	if err != nil {
		t.Fatalf("go build natsd: %v\n%s", err, out)
	}
	return bin
}

// natsdListening is natsd's line with its client URL.
var natsdListening = regexp.MustCompile(`(?m)^natsd listening on (nats://\S+)$`)

// startNATSCluster runs deploy/cluster/nats-{1,2,3}.conf as three natsd
// processes with routes to each other: the files' cluster name,
// JetStream and limits, and the test's loopback addresses and store
// directories instead of theirs.
func startNATSCluster(t *testing.T, natsd string) []*natsNode {
	t.Helper()
	routes := make([]string, 3)
	for i := range routes {
		routes[i] = "nats-route://" + freeAddr(t)
	}
	nodes := make([]*natsNode, len(routes))
	for i := range nodes {
		others := slices.Delete(slices.Clone(routes), i, i+1)
		p := startProc(t, natsd, "-config", filepath.Join(deployCluster, fmt.Sprintf("nats-%d.conf", i+1)),
			"-listen", "127.0.0.1:0", "-monitor", "127.0.0.1:0", "-store-dir", t.TempDir(),
			"-cluster", strings.TrimPrefix(routes[i], "nats-route://"), "-routes", strings.Join(others, ","))
		nodes[i] = &natsNode{gatewayProc: p, name: fmt.Sprintf("nats-%d", i+1)}
	}
	for _, n := range nodes {
		wstest.CheckFor(t, 20*time.Second, pollEvery, func() error {
			select {
			case <-n.exited:
				t.Fatalf("%s exited: %v", n.name, n.err)
			default:
			}
			m := natsdListening.FindStringSubmatch(n.log.String())
			if m == nil {
				return fmt.Errorf("%s has not said where it listens", n.name)
			}
			n.url = m[1]
			return nil
		})
	}
	return nodes
}

// nodeOf returns the node whose client URL is url.
func nodeOf(t *testing.T, nodes []*natsNode, url string) *natsNode {
	t.Helper()
	for _, n := range nodes {
		if n.url == url {
			return n
		}
	}
	t.Fatalf("%s is none of the cluster's nodes", url)
	return nil
}

// makeStreamLeader asks the stream's leader to step down in favour of
// node name until name leads it, so that the node killed is also the one
// that was storing the notifications.
func makeStreamLeader(t *testing.T, nc *nats.Conn, name string) {
	t.Helper()
	stepdown, _ := json.Marshal(server.JSApiLeaderStepdownRequest{Placement: &server.Placement{Preferred: name}})
	wstest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		msg, err := nc.Request(fmt.Sprintf(server.JSApiStreamInfoT, bus.DefaultStreamName), nil, time.Second)
		if err != nil {
			return err
		}
		var info server.JSApiStreamInfoResponse
		if err := json.Unmarshal(msg.Data, &info); err != nil {
			return err
		}
		if info.Cluster != nil && info.Cluster.Leader == name {
			return nil
		}
		nc.Request(fmt.Sprintf(server.JSApiStreamLeaderStepDownT, bus.DefaultStreamName), stepdown, time.Second)
		return fmt.Errorf("the stream's leader is %v, want %s", info.Cluster, name)
	})
}

// clusterGateway is a gateway of TestClusterFailover.
type clusterGateway struct {
	*gatewayProc
	id        string    // --gateway-id: its connection ids start with it
	ws, admin string    // listen addresses, from its log
	node      *natsNode // the NATS node it connected to first
}

// fleetClient is a durable client that keeps one WebSocket: unlike
// durableClient it never reconnects, so that the end of its connection
// shows. It resumes its channel on connecting and again on every gap and
// every "missed" frame, from its positions (wstest.Positions).
type fleetClient struct {
	channel  string
	pos      *wstest.Positions
	volatile chan any      // the data of each volatile notification
	ended    chan error    // why the connection ended before ctx did
	done     chan struct{} // closed once the reading goroutine has returned

	mu        sync.Mutex // protects the counts below
	epochless int        // durable frames with epoch 0 (the gateway did not know it)
	missed    int        // "missed" frames: the gateway lost notifications meanwhile, perhaps
	resumes   int        // resumes sent after the first, for a gap or a "missed"
	replayed  int        // frames the answers to those resumes announced
}

// fleetStats is a fleetClient's counts.
type fleetStats struct{ epochless, missed, resumes, replayed int }

func (c *fleetClient) stats() fleetStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fleetStats{c.epochless, c.missed, c.resumes, c.replayed}
}

// dialFleetClient connects a fleetClient to url and reads its channel
// until ctx ends.
func dialFleetClient(ctx context.Context, t *testing.T, url, channel string) *fleetClient {
	t.Helper()
	conn, err := dialWelcome(ctx, ws.DefaultDialer, url, time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c := &fleetClient{channel: channel, pos: wstest.NewPositions(),
		volatile: make(chan any, 16), ended: make(chan error, 1), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		// Reads wait without a deadline (one that expired mid-frame would
		// leave the rest of the frame unread): ctx's end closes the socket.
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		defer conn.Close()
		if err := c.run(conn); err != nil && ctx.Err() == nil {
			c.ended <- err
		}
	}()
	return c
}

func (c *fleetClient) run(conn *wstest.Client) error {
	ref := 1
	var epoch float64 // the last known (non-zero) epoch
	if err := sendJSON(conn, c.pos.Resume(c.channel, ref)); err != nil {
		return err
	}
	for {
		m, err := conn.Read(time.Time{})
		if err != nil {
			if code, reason, ok := wstest.CloseStatus(err); ok {
				return fmt.Errorf("the gateway closed the WebSocket: %d %s", code, reason)
			}
			return fmt.Errorf("the WebSocket ended: %w", err)
		}
		if _, durable := m["seq"]; m["type"] == "message" && !durable {
			select {
			case c.volatile <- m["data"]:
			default:
			}
			continue
		}
		// A gateway that is looking the stream up again after a
		// reconnect sends epoch 0: unknown, not another epoch. Keep the
		// known one, as clients/js does (positions.ts, apply), so that
		// the resume its "missed" frame asks for goes on from the
		// position; wstest.Positions alone would take the 0 and resume
		// without one, from the acked watermark, and get everything
		// again.
		if e, _ := m["epoch"].(float64); e != 0 {
			epoch = e
		} else if m["type"] == "message" && epoch != 0 {
			m["epoch"] = epoch
			c.mu.Lock()
			c.epochless++
			c.mu.Unlock()
		}
		c.mu.Lock()
		if count, _ := m["count"].(float64); m["type"] == "resumed" && ref > 1 {
			c.replayed += int(count)
		}
		if m["type"] == "missed" {
			c.missed++
		}
		c.mu.Unlock()
		again, err := c.pos.Handle(m)
		if err != nil {
			return err
		}
		for _, ch := range again {
			ref++
			c.mu.Lock()
			c.resumes++
			c.mu.Unlock()
			if err := sendJSON(conn, c.pos.Resume(ch, ref)); err != nil {
				return err
			}
		}
	}
}

// expectVolatile waits up to d for a volatile notification whose data is
// want, skipping others (the repeats of one sent again).
func (c *fleetClient) expectVolatile(want string, d time.Duration) error {
	timeout := time.After(d)
	for {
		select {
		case data := <-c.volatile:
			if data == want {
				return nil
			}
		case err := <-c.ended:
			c.ended <- err // for the next look
			return fmt.Errorf("%s: %w", c.channel, err)
		case <-timeout:
			return fmt.Errorf("%s got no %q", c.channel, want)
		}
	}
}

// readySample is one answer of /readyz.
type readySample struct {
	at      time.Time
	code    int    // 0 when the request failed
	reason  string // the first line of the body
	durable string // the second: JetStream as the gateway sees it
}

// readyPoller keeps asking a gateway's /readyz.
type readyPoller struct {
	mu   sync.Mutex // protects list
	list []readySample
}

// pollReady asks url every pollEvery until ctx ends.
func pollReady(ctx context.Context, url string) *readyPoller {
	p := &readyPoller{}
	hc := &http.Client{Timeout: time.Second}
	go func() {
		for ctx.Err() == nil {
			s := readySample{at: time.Now()}
			if resp, err := hc.Get(url); err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				s.code = resp.StatusCode
				s.reason, s.durable, _ = strings.Cut(strings.TrimSpace(string(body)), "\n")
			} else {
				s.reason = err.Error()
			}
			p.mu.Lock()
			p.list = append(p.list, s)
			p.mu.Unlock()
			sleepCtx(ctx, pollEvery)
		}
	}()
	return p
}

func (p *readyPoller) samples() []readySample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.list)
}

func (p *readyPoller) last() readySample {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.list) == 0 {
		return readySample{}
	}
	return p.list[len(p.list)-1]
}

// summary describes the answers since t0 by what key makes of them: the
// first, and each change, as an offset from t0.
func (p *readyPoller) summary(t0 time.Time, key func(readySample) string) string {
	var out []string
	prev := ""
	for _, s := range p.samples() {
		if k := key(s); !s.at.Before(t0) && (len(out) == 0 || k != prev) {
			prev = k
			out = append(out, fmt.Sprintf("%q at %v", k, s.at.Sub(t0).Round(time.Millisecond)))
		}
	}
	if len(out) == 1 {
		return out[0] + " throughout"
	}
	return strings.Join(out, ", then ")
}

// clusterFront is HAProxy running deploy/cluster/haproxy.cfg.
type clusterFront struct {
	addr string     // the frontend, host:port
	sock string     // the stats socket
	log  *logBuffer // its output: server state changes, each connection
}

// startClusterHAProxy runs haproxy in the foreground with
// deploy/cluster/haproxy.cfg, its addresses replaced by the test's: the
// frontend socket bound here and inherited (bind fd@3), the stats socket
// and page in the test's directory and on a free port, the two gateways
// with their admin ports as check ports, checked every 200ms instead of
// 2s (fall and rise as the file says). Every line replaced must be in the
// file, so that the test fails when the file changes under it; maxconn
// is cut to what a test machine's descriptor limit allows.
func startClusterHAProxy(t *testing.T, haproxy string, a, b *clusterGateway) *clusterFront {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(deployCluster, "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := &clusterFront{sock: filepath.Join(dir, "haproxy.sock")}
	server := func(g *clusterGateway) string {
		_, port, _ := net.SplitHostPort(g.admin)
		return fmt.Sprintf("server %s %s check port %s", map[string]string{"gwa": "gw-a", "gwb": "gw-b"}[g.id], g.ws, port)
	}
	replace := []struct{ old, new string }{
		// The file's million needs as many descriptors; the test machine
		// may allow fewer, and haproxy refuses to start then.
		{"maxconn 1000000", "maxconn 1000"},
		{"bind :80", "bind fd@3"},
		{"stats socket /run/haproxy/wsgate.sock mode 660 level admin", "stats socket " + f.sock + " mode 600 level admin"},
		{"bind :8404", "bind " + freeAddr(t)},
		{"default-server check port 9090 inter 2s fall 2 rise 2", "default-server check inter 200ms fall 2 rise 2"},
		{"server gw-a gw-a:8080", server(a)},
		{"server gw-b gw-b:8080", server(b)},
	}
	lines := strings.Split(string(src), "\n")
	for _, r := range replace {
		found := false
		for i, l := range lines {
			if strings.TrimSpace(l) == r.old {
				lines[i], found = "    "+r.new, true
			}
		}
		if !found {
			t.Fatalf("deploy/cluster/haproxy.cfg has no line %q for the test to replace", r.old)
		}
	}
	cfg := strings.Join(lines, "\n")
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	file, err := ln.(*net.TCPListener).File()
	ln.Close() // file holds the socket open
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close() // haproxy has its own copy once started
	cmd := exec.Command(haproxy, "-db", "-f", path)
	cmd.ExtraFiles = []*os.File{file}
	f.log = startCmd(t, cmd).log
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("haproxy config:\n%s", cfg)
		}
	})
	wstest.CheckFor(t, 10*time.Second, pollEvery, func() error {
		for _, s := range []string{"gw-a", "gw-b"} {
			if st, err := f.status(s); err != nil || st != "UP" {
				return fmt.Errorf("haproxy: %s is %q (%v)", s, st, err)
			}
		}
		return nil
	})
	return f
}

// status returns what the stats socket says of server name in the
// gateways backend: UP, DOWN, NOLB, MAINT, or a transition such as
// "UP 1/2".
func (f *clusterFront) status(name string) (string, error) {
	conn, err := net.DialTimeout("unix", f.sock, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "show stat\n"); err != nil {
		return "", err
	}
	r := csv.NewReader(conn)
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return "", err
	}
	if len(rows) == 0 {
		return "", errors.New("show stat: no header")
	}
	col := slices.Index(rows[0], "status")
	for _, row := range rows[1:] {
		if len(row) > col && col >= 0 && row[0] == "gateways" && row[1] == name {
			return row[col], nil
		}
	}
	return "", fmt.Errorf("show stat lists no gateways/%s", name)
}

// expectReachable dials through HAProxy until both gateways have taken a
// client, and checks that one of them gets a notification the service
// publishes.
func (f *clusterFront) expectReachable(t *testing.T, ctx context.Context, pub *bus.Publisher) {
	t.Helper()
	seen := map[string]bool{}
	for i := 0; !seen["gwa"] || !seen["gwb"]; i++ {
		if i == 20 {
			t.Fatalf("20 clients through haproxy reached only %v", seen)
		}
		user := "front" + strconv.Itoa(i)
		c, err := dialWelcome(ctx, ws.DefaultDialer, "ws://"+f.addr+"/ws?user="+user, time.Now().Add(5*time.Second))
		if err != nil {
			t.Fatalf("dial through haproxy: %v", err)
		}
		seen[gatewayOf(c)] = true
		if i == 0 {
			wstest.CheckFor(t, 10*time.Second, 0, func() error {
				if err := pub.User(user, []byte(`"through haproxy"`)); err != nil {
					return err
				}
				m, err := c.Read(time.Now().Add(200 * time.Millisecond))
				if err != nil {
					return fmt.Errorf("a client through haproxy got no notification: %w", err)
				}
				if m["data"] != "through haproxy" {
					return fmt.Errorf("a client through haproxy got %v", m)
				}
				return nil
			})
		}
		// Held open until the end: leastconn then spreads the next
		// clients over both gateways.
		t.Cleanup(func() { c.Close() })
	}
}

// expectDrainedOut sends SIGTERM to g: its /readyz turns 503 for the drain
// delay, and HAProxy must mark it DOWN on the stats socket while the new
// clients go to other; g must then exit 0.
func (f *clusterFront) expectDrainedOut(t *testing.T, g, other *clusterGateway) {
	t.Helper()
	name := map[string]string{"gwa": "gw-a", "gwb": "gw-b"}
	sigterm := time.Now()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wstest.CheckFor(t, 10*time.Second, pollEvery, func() error {
		if st, err := f.status(name[g.id]); err != nil || st != "DOWN" {
			return fmt.Errorf("haproxy: the draining gateway is %q (%v)", st, err)
		}
		return nil
	})
	t.Logf("haproxy marked the draining gateway DOWN %v after SIGTERM (drain delay %v)",
		time.Since(sigterm).Round(time.Millisecond), drainDelay)
	for i := range 5 {
		c, err := dialWelcome(t.Context(), ws.DefaultDialer, "ws://"+f.addr+"/ws?user=late"+strconv.Itoa(i), time.Now().Add(5*time.Second))
		if err != nil {
			t.Fatalf("dial through haproxy after the drain began: %v", err)
		}
		c.Close()
		if gw := gatewayOf(c); gw != other.id {
			t.Fatalf("haproxy sent a new client to %s, the draining gateway", gw)
		}
	}
	if st, err := f.status(name[other.id]); err != nil || st != "UP" {
		t.Fatalf("haproxy: the other gateway is %q (%v), want UP", st, err)
	}
	if err := g.wait(time.Now().Add(drainGrace)); err != nil {
		t.Fatalf("draining gateway: %v", err)
	}
}

// drainGrace bounds how long a gateway with --drain-delay drainDelay and
// --drain-timeout 0 takes to exit after SIGTERM, with room for a loaded
// machine.
const drainGrace = drainDelay + 3*slack
