package gateway

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/wstest"
)

var (
	loopback1 = net.ParseIP("127.0.0.1")
	loopback2 = net.ParseIP("127.0.0.2")
)

// Beyond MaxConns an upgrade is answered 503 with Retry-After, and counted;
// refusals take no place, nor do upgrades refused after admission (the user
// limit), and a closed connection gives its place back.
func TestMaxConns(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.MaxConns = 3
		c.MaxUserConns = 1
	})
	a := e.connect("a")
	e.connect("b")

	// Upgrades refused after admission give their place back (it is given
	// back before the refusal is counted).
	for i := range 3 {
		c, status, _ := e.upgrade(nil, "a")
		if status != http.StatusSwitchingProtocols {
			t.Fatalf("second socket of a: status %d, want 101 and a close frame", status)
		}
		if got := rejectedWith(t, c); got != StatusTooManyConns {
			t.Fatalf("second socket of a: close code %d, want %d", got, StatusTooManyConns)
		}
		expectCount(t, "upgrades{user_limit}", e.upgradeCount(resultUserLimit), float64(i+1))
	}

	e.eventuallyConnects(nil, "c") // the third place
	const refusals = 4
	for range refusals {
		e.expectRefused(nil, "d", http.StatusServiceUnavailable)
	}
	expectCount(t, "upgrades{conn_limit}", e.upgradeCount(resultConnLimit), refusals)

	// The refusals took no place: one close frees exactly one.
	a.Conn.Close()
	e.eventuallyConnects(nil, "d")
	e.expectRefused(nil, "e", http.StatusServiceUnavailable)
}

// /readyz turns 503 when the open connections reach ReadyConnsRatio ×
// MaxConns, and 200 again when one closes.
func TestReadyAtSoftConnLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.MaxConns = 10
		c.ReadyConnsRatio = 0.5
		c.SoftMemoryLimit = -1
	})
	readyz := func() (int, string) {
		w := httptest.NewRecorder()
		e.srv.AdminHandler().ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		return w.Code, strings.TrimSpace(w.Body.String())
	}
	var cs []*client
	for i := range 4 {
		cs = append(cs, e.connect(fmt.Sprint("u", i)))
	}
	if code, body := readyz(); code != http.StatusOK {
		t.Fatalf("with 4 of 10 connections: /readyz %d %q, want 200", code, body)
	}
	cs = append(cs, e.connect("u4"))
	const want = "connections at soft limit 5"
	if code, body := readyz(); code != http.StatusServiceUnavailable || body != want {
		t.Fatalf("with 5 of 10 connections: /readyz %d %q, want 503 %q", code, body, want)
	}
	cs[0].Conn.Close()
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		if reason := e.srv.notReady(); reason != "" {
			return fmt.Errorf("after a close, with 4 of 10 connections: not ready: %s", reason)
		}
		return nil
	})
}

// Beyond MaxConnsPerIP an upgrade is answered 429, while another address
// still connects; a close frees the address's count.
func TestMaxConnsPerIP(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxConnsPerIP = 2 })
	first := e.connectFrom(loopback1, "a")
	e.connectFrom(loopback1, "b")
	e.expectRefused(loopback1, "c", http.StatusTooManyRequests)
	expectCount(t, "upgrades{ip_limit}", e.upgradeCount(resultIPLimit), 1)

	other := e.connectFrom(loopback2, "c")
	e.connectFrom(loopback2, "d")
	e.expectRefused(loopback2, "e", http.StatusTooManyRequests)
	expectPong(t, other, 1)

	first.Conn.Close()
	e.eventuallyConnects(loopback1, "e")
	e.expectRefused(loopback1, "f", http.StatusTooManyRequests)
}

// Sockets still in their handshake count against MaxConnsPerIP, and count
// no more once they leave.
func TestMaxConnsPerIPCountsHandshakes(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxConnsPerIP = 2 })
	var silent []net.Conn
	for range 2 {
		s, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: loopback1}}).Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		silent = append(silent, s)
	}
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		if n := e.srv.hub.count(); n != 2 {
			return fmt.Errorf("server holds %d sockets, want the 2 silent ones", n)
		}
		return nil
	})
	e.expectRefused(loopback1, "a", http.StatusTooManyRequests)
	e.connectFrom(loopback2, "b")

	for _, s := range silent {
		s.Close()
	}
	a := e.eventuallyConnects(loopback1, "a")
	e.connectFrom(loopback1, "c")
	e.expectRefused(loopback1, "d", http.StatusTooManyRequests)
	expectPong(t, a, 1)
}

// MaxUserConns under each policy: RejectNew answers the extra socket with
// 4002 right after its 101; CloseOldest welcomes it and replaces the oldest
// with 4003. Either way the user's channel goes on delivering to the
// sockets that stay.
func TestMaxUserConns(t *testing.T) {
	t.Run("reject-new", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.MaxUserConns = 2 })
		subs := e.bus.Subscriptions()
		u1, u2 := e.connect("u"), e.connect("u")
		other := e.connect("v") // other users are not limited by u's sockets

		c, status, _ := e.upgrade(nil, "u")
		if status != http.StatusSwitchingProtocols {
			t.Fatalf("third socket: status %d, want 101 and a close frame", status)
		}
		if code := rejectedWith(t, c); code != StatusTooManyConns {
			t.Fatalf("third socket: close code %d, want %d", code, StatusTooManyConns)
		}
		expectCount(t, "upgrades{user_limit}", e.upgradeCount(resultUserLimit), 1)

		e.expectUserMessage("u", "still here", u1, u2)
		e.expectUserMessage("v", "unaffected", other)
		expectPong(t, u1, 1)

		// The refused socket let go of the interest it took in user.u.
		for _, c := range []*client{u1, u2, other} {
			c.Conn.Close()
		}
		expectSubscriptions(t, e, subs)
	})
	t.Run("close-oldest", func(t *testing.T) {
		e := newEnv(t, func(c *Config) {
			c.MaxUserConns = 2
			c.UserConnsPolicy = CloseOldest
		})
		subs := e.bus.Subscriptions()
		u1 := e.connect("u")
		u2 := e.connect("u")
		u3 := e.connect("u") // welcomed
		if code, reason := u1.closedWith(); code != StatusReplaced {
			t.Fatalf("oldest socket: close code %d %q, want %d", code, reason, StatusReplaced)
		}
		expectCount(t, "closes{replaced}", e.closeCount(ReasonReplaced), 1)
		e.expectUserMessage("u", "to the newer two", u2, u3)
		expectPong(t, u2, 1)
		expectPong(t, u3, 2)
		if got := counterValue(e.srv.metrics.upgrades[resultUserLimit]); got != 0 {
			t.Errorf("upgrades{user_limit} = %v under CloseOldest, want 0", got)
		}
		u2.Conn.Close()
		u3.Conn.Close()
		expectSubscriptions(t, e, subs)
	})
}

// A client over MessageRate and its burst is closed with 1008, whether it
// sends messages or RFC 6455 pings; other clients are not affected, and a
// client within the rate stays open however many messages it sends.
func TestMessageRateLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.MessageRate = 10
		c.MessageBurst = 5
	})
	bystander := e.connect("bystander")
	tests := []struct {
		name  string
		frame func(w io.Writer, n int) error
	}{
		{
			name: "ping ops",
			frame: func(w io.Writer, n int) error {
				return writeFrame(w, true, opText, fmt.Appendf(nil, `{"op":"ping","ref":%d}`, n))
			},
		},
		{
			name:  "rfc pings",
			frame: func(w io.Writer, n int) error { return writeFrame(w, true, opPing, []byte{byte(n)}) },
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.connect("flooder")
			var flood bytes.Buffer
			for n := range 50 {
				if err := tt.frame(&flood, n); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := c.Conn.Write(flood.Bytes()); err != nil {
				t.Fatal(err)
			}
			code, reason := c.closedWith()
			if code != ws.StatusPolicyViolation || reason != "rate limit exceeded" {
				t.Fatalf("close %d %q, want %d %q", code, reason, ws.StatusPolicyViolation, "rate limit exceeded")
			}
			expectCount(t, "closes{rate_limited}", e.closeCount(ReasonRateLimited), float64(i+1))
			expectPong(t, bystander, i)
		})
	}
	t.Run("within the rate", func(t *testing.T) {
		c := e.connect("polite")
		// Twice the burst, each message sent a full interval after the
		// previous one's pong: however slow the machine, the server sees
		// them at least that far apart. The pacing only makes the test
		// stricter for the limiter if it runs late, never laxer.
		for n := range 12 {
			expectPong(t, c, n)
			time.Sleep(100 * time.Millisecond)
		}
		expectPong(t, c, 12)
		if got := counterValue(e.srv.metrics.closes[ReasonRateLimited]); got != float64(len(tests)) {
			t.Fatalf("closes{rate_limited} = %v, want %d (the flooders only)", got, len(tests))
		}
	})
}

// allowMessage is the generic cell rate algorithm on the server's ms clock:
// a burst at once, then one message per interval, and a theoretical arrival
// time too far ahead to be real (the clock wrapped during a long silence)
// restarts rather than refuses.
func TestAllowMessage(t *testing.T) {
	const (
		interval  = 100 // ms: MessageRate 10
		burst     = 5
		tolerance = burst * interval
	)
	type step struct {
		now  uint32
		n    int // messages at now
		want bool
	}
	tests := []struct {
		name  string
		tat   uint32 // msgTAT before the first step
		steps []step
	}{
		{
			// With a tolerance of burst intervals, burst+1 messages pass
			// at once: the first is within the rate, burst above it.
			name: "burst then refused",
			tat:  1000,
			steps: []step{
				{now: 1000, n: burst + 1, want: true},
				{now: 1000, n: 1, want: false},
				{now: 1050, n: 1, want: false},
			},
		},
		{
			name: "one more per interval",
			tat:  1000,
			steps: []step{
				{now: 1000, n: burst + 1, want: true},
				{now: 1000 + interval, n: 1, want: true},
				{now: 1000 + interval, n: 1, want: false},
				{now: 1000 + 3*interval, n: 2, want: true},
				{now: 1000 + 3*interval, n: 1, want: false},
			},
		},
		{
			name: "refusals cost nothing",
			tat:  1000,
			steps: []step{
				{now: 1000, n: burst + 1, want: true},
				{now: 1000, n: 100, want: false},
				{now: 1000 + interval, n: 1, want: true},
			},
		},
		{
			name: "silence refills the burst",
			tat:  1000,
			steps: []step{
				{now: 1000, n: burst + 1, want: true},
				{now: 60_000, n: burst + 1, want: true},
				{now: 60_000, n: 1, want: false},
			},
		},
		{
			name: "at a steady rate forever",
			tat:  1000,
			steps: func() []step {
				var s []step
				for i := range uint32(100) {
					s = append(s, step{now: 1000 + i*interval, n: 1, want: true})
				}
				return s
			}(),
		},
		{
			name: "burst across the clock's wrap",
			tat:  math.MaxUint32 - 20,
			steps: []step{
				{now: math.MaxUint32 - 20, n: burst + 1, want: true},
				{now: 10, n: 1, want: false}, // 31 ms later
				{now: 80, n: 1, want: true},  // 101 ms later
			},
		},
		{
			// The largest lead a run of allowed messages leaves.
			name:  "just at the tolerance ahead is refused",
			tat:   1000 + tolerance + interval,
			steps: []step{{now: 1000, n: 1, want: false}},
		},
		{
			name:  "far ahead restarts",
			tat:   1000 + tolerance + interval + 1,
			steps: []step{{now: 1000, n: burst + 1, want: true}, {now: 1000, n: 1, want: false}},
		},
		{
			// A burst at clock 1000, then a silence of 2^32-200 ms: the
			// clock reads 800 and msgTAT is ahead of it by more than any
			// real lead.
			name: "wrapped after a long silence",
			tat:  1000,
			steps: []step{
				{now: 1000, n: burst + 1, want: true},
				{now: 800, n: burst + 1, want: true},
				{now: 800, n: 1, want: false},
			},
		},
		{
			name:  "half the clock ahead restarts",
			tat:   1000 + math.MaxInt32 + 1,
			steps: []step{{now: 1000, n: burst + 1, want: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Conn{srv: &Server{msgInterval: interval, msgTolerance: tolerance}, msgTAT: tt.tat}
			for i, s := range tt.steps {
				for j := range s.n {
					if got := c.allowMessage(s.now); got != s.want {
						t.Fatalf("step %d, message %d at %d (msgTAT %d): allowed %v, want %v", i, j, s.now, c.msgTAT, got, s.want)
					}
				}
			}
		})
	}
	t.Run("disabled", func(t *testing.T) {
		c := &Conn{srv: &Server{}, msgTAT: 1000}
		for range 10000 {
			if !c.allowMessage(1000) {
				t.Fatal("refused with no rate")
			}
		}
	})
}

// AcceptRate makes the accept loop wait, never refuse: clients arriving
// together beyond the burst are all welcomed, and the waits are counted.
func TestAcceptRateWaits(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.AcceptRate = 5
		c.AcceptBurst = 1
	})
	const clients = 6
	errs := make(chan error, clients)
	for i := range clients {
		go func() {
			user := fmt.Sprint("u", i)
			c, err := e.dialURL(e.url+"?token="+token(t, user, time.Hour), nil)
			if err != nil {
				errs <- fmt.Errorf("dial as %s: %w", user, err)
				return
			}
			m, err := c.read(5 * time.Second)
			if err == nil && m["type"] != "welcome" {
				err = fmt.Errorf("first frame %v", m)
			}
			if err != nil {
				err = fmt.Errorf("%s: %w", user, err)
			}
			errs <- err
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := counterValue(e.srv.metrics.acceptThrottled); got == 0 {
		t.Error("accept_throttled_total = 0, want the accepts beyond the burst counted")
	}
	for _, r := range []upgradeResult{resultBusy, resultConnLimit, resultIPLimit} {
		if got := counterValue(e.srv.metrics.upgrades[r]); got != 0 {
			t.Errorf("upgrades{%s} = %v, want 0", r, got)
		}
	}
}
func TestLimitConfig(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string // substring; "" means valid
		check   func(t *testing.T, c Config)
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c Config) {
				want := Config{MaxConns: 0, ReadyConnsRatio: 0.9, MaxConnsPerIP: 0, AcceptRate: 0, AcceptBurst: 1,
					MessageRate: 20, MessageBurst: 2*100 + 10, MaxUserConns: 0, UserConnsPolicy: RejectNew}
				if got := limitFields(c); got != limitFields(want) {
					t.Errorf("got %+v, want %+v", got, limitFields(want))
				}
			},
		},
		{
			name: "burst follows MaxSubscriptions",
			mod:  func(c *Config) { c.MaxSubscriptions = 7 },
			check: func(t *testing.T, c Config) {
				if c.MessageBurst != 24 {
					t.Errorf("MessageBurst = %d, want 2×7+10", c.MessageBurst)
				}
			},
		},
		{
			name: "accept burst follows AcceptRate",
			mod:  func(c *Config) { c.AcceptRate = 500 },
			check: func(t *testing.T, c Config) {
				if c.AcceptBurst != 50 {
					t.Errorf("AcceptBurst = %d, want AcceptRate/10", c.AcceptBurst)
				}
			},
		},
		{
			name: "set values are kept",
			mod: func(c *Config) {
				c.MaxConns, c.ReadyConnsRatio, c.MaxConnsPerIP = 1000, 1, 10
				c.AcceptRate, c.AcceptBurst = 100, 3
				c.MessageRate, c.MessageBurst = 1000, 1
				c.MaxUserConns, c.UserConnsPolicy = 5, CloseOldest
			},
			check: func(t *testing.T, c Config) {
				want := Config{MaxConns: 1000, ReadyConnsRatio: 1, MaxConnsPerIP: 10, AcceptRate: 100, AcceptBurst: 3,
					MessageRate: 1000, MessageBurst: 1, MaxUserConns: 5, UserConnsPolicy: CloseOldest}
				if got := limitFields(c); got != limitFields(want) {
					t.Errorf("got %+v, want %+v", got, limitFields(want))
				}
			},
		},
		{
			name:  "negative MessageRate disables",
			mod:   func(c *Config) { c.MessageRate = -1 },
			check: func(t *testing.T, c Config) {},
		},
		{name: "negative MaxConns", mod: func(c *Config) { c.MaxConns = -1 }, wantErr: "negative limit"},
		{name: "negative MaxConnsPerIP", mod: func(c *Config) { c.MaxConnsPerIP = -1 }, wantErr: "negative limit"},
		{name: "negative MaxUserConns", mod: func(c *Config) { c.MaxUserConns = -1 }, wantErr: "negative limit"},
		{name: "negative AcceptRate", mod: func(c *Config) { c.AcceptRate = -1 }, wantErr: "negative limit"},
		{name: "negative AcceptBurst", mod: func(c *Config) { c.AcceptRate, c.AcceptBurst = 10, -1 }, wantErr: "negative limit"},
		{name: "negative MessageBurst", mod: func(c *Config) { c.MessageBurst = -1 }, wantErr: "negative limit"},
		{name: "negative MaxSubscriptions", mod: func(c *Config) { c.MaxSubscriptions = -1 }, wantErr: "negative limit"},
		{name: "negative UpgradeScheduleTimeout", mod: func(c *Config) { c.UpgradeScheduleTimeout = -1 }, wantErr: "negative timeout"},
		{name: "negative SaturationTimeout", mod: func(c *Config) { c.SaturationTimeout = -1 }, wantErr: "negative timeout"},
		{name: "negative StallTimeout", mod: func(c *Config) { c.StallTimeout = -1 }, wantErr: "negative timeout"},
		{name: "negative ReadyConnsRatio", mod: func(c *Config) { c.ReadyConnsRatio = -0.5 }, wantErr: "ReadyConnsRatio"},
		{name: "ReadyConnsRatio above 1", mod: func(c *Config) { c.ReadyConnsRatio = 1.01 }, wantErr: "ReadyConnsRatio"},
		{name: "MessageRate above 1000", mod: func(c *Config) { c.MessageRate = 1001 }, wantErr: "MessageRate"},
		{name: "unknown policy", mod: func(c *Config) { c.UserConnsPolicy = CloseOldest + 1 }, wantErr: "UserConnsPolicy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Bus: nopBus{}, Auth: InsecureAuth{}}
			if tt.mod != nil {
				tt.mod(&cfg)
			}
			got, err := cfg.withDefaults()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one about %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, got)
		})
	}
}

// limits are the admission fields of a Config, comparable.
type limits struct {
	MaxConns        int
	ReadyConnsRatio float64
	MaxConnsPerIP   int
	AcceptRate      float64
	AcceptBurst     int
	MessageRate     float64
	MessageBurst    int
	MaxUserConns    int
	UserConnsPolicy UserConnsPolicy
}

func limitFields(c Config) limits {
	return limits{c.MaxConns, c.ReadyConnsRatio, c.MaxConnsPerIP, c.AcceptRate, c.AcceptBurst,
		c.MessageRate, c.MessageBurst, c.MaxUserConns, c.UserConnsPolicy}
}

// New turns MessageRate into whole milliseconds per message and the burst
// into a tolerance of that many intervals; a negative rate disables it.
func TestMessageRateInterval(t *testing.T) {
	tests := []struct {
		rate          float64
		burst         int
		wantInterval  uint32
		wantTolerance uint32
	}{
		{rate: 10, burst: 5, wantInterval: 100, wantTolerance: 500},
		{rate: 20, burst: 0, wantInterval: 50, wantTolerance: 50 * 210}, // the defaults
		{rate: 3, burst: 1, wantInterval: 333, wantTolerance: 333},
		{rate: 0.5, burst: 2, wantInterval: 2000, wantTolerance: 4000},
		{rate: 1000, burst: 10, wantInterval: 1, wantTolerance: 10},
		{rate: -1, burst: 10, wantInterval: 0, wantTolerance: 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.rate, "/s"), func(t *testing.T) {
			s, err := New(Config{Bus: nopBus{}, Auth: InsecureAuth{}, PoolSize: 1, MessageRate: tt.rate, MessageBurst: tt.burst})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.msgInterval != tt.wantInterval || s.msgTolerance != tt.wantTolerance {
				t.Fatalf("interval %d ms, tolerance %d ms; want %d, %d", s.msgInterval, s.msgTolerance, tt.wantInterval, tt.wantTolerance)
			}
		})
	}
}
func TestParseUserConnsPolicy(t *testing.T) {
	for _, p := range []UserConnsPolicy{RejectNew, CloseOldest} {
		got, err := ParseUserConnsPolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParseUserConnsPolicy(%q) = %v, %v; want %v", p.String(), got, err, p)
		}
	}
	for _, s := range []string{"", "reject", "Close-Oldest", "close_oldest", "newest"} {
		if _, err := ParseUserConnsPolicy(s); err == nil {
			t.Errorf("ParseUserConnsPolicy(%q) succeeded, want an error", s)
		} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
			t.Errorf("ParseUserConnsPolicy(%q) error %q does not name the value", s, err)
		}
	}
}

// joinUser counts a user's sockets exactly under the channel's lock: under
// RejectNew the extra one is refused; under CloseOldest it joins and the
// oldest is named for closing.
func TestJoinUser(t *testing.T) {
	conns := func(n int) []*Conn {
		cs := make([]*Conn, n)
		for i := range cs {
			cs[i] = &Conn{id: uint64(i + 1)}
		}
		return cs
	}
	t.Run("reject-new", func(t *testing.T) {
		h, cs := newHub(), conns(3)
		for _, c := range cs[:2] {
			if oldest, ok := h.joinUser(c, "user.u", 2, RejectNew); !ok || oldest != nil {
				t.Fatalf("join %d: %v, %v; want ok and no oldest", c.id, oldest, ok)
			}
		}
		if oldest, ok := h.joinUser(cs[2], "user.u", 2, RejectNew); ok || oldest != nil {
			t.Fatalf("join beyond the limit: %v, %v; want refused", oldest, ok)
		}
		if n := h.members("user.u"); n != 2 {
			t.Fatalf("members = %d, want 2", n)
		}
		if _, ok := h.joinUser(cs[2], "user.v", 2, RejectNew); !ok {
			t.Fatal("another user's channel is limited by u's sockets")
		}
	})
	t.Run("no limit", func(t *testing.T) {
		h := newHub()
		for _, c := range conns(40) { // past the small set, into the map
			if oldest, ok := h.joinUser(c, "user.u", 0, RejectNew); !ok || oldest != nil {
				t.Fatalf("join %d: %v, %v; want ok", c.id, oldest, ok)
			}
		}
	})
	t.Run("close-oldest", func(t *testing.T) {
		h, cs := newHub(), conns(20)
		// Joined out of id order: the oldest is the lowest id, in the map
		// form of the set too.
		for _, i := range []int{3, 0, 5, 1, 2, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17} {
			h.joinUser(cs[i], "user.u", 0, CloseOldest)
		}
		if oldest, ok := h.joinUser(cs[18], "user.u", 18, CloseOldest); !ok || oldest != cs[0] {
			t.Fatalf("join beyond the limit: oldest %v, ok %v; want conn 1", oldest, ok)
		}
	})
	t.Run("close-oldest concurrently", func(t *testing.T) {
		// Two new sockets of the user join before the first replaced one
		// has closed (welcome closes it after releasing the lock): each
		// must name a different socket, or the user keeps 3 of 2.
		h, cs := newHub(), conns(4)
		h.joinUser(cs[0], "user.u", 2, CloseOldest)
		h.joinUser(cs[1], "user.u", 2, CloseOldest)
		first, _ := h.joinUser(cs[2], "user.u", 2, CloseOldest)
		second, _ := h.joinUser(cs[3], "user.u", 2, CloseOldest)
		if first != cs[0] || second != cs[1] {
			t.Fatalf("replaced conn %d then conn %d; want conn 1 then conn 2", first.id, second.id)
		}
	})
}

// However slow the configured rate and big the burst, a burst beyond
// MessageBurst is refused, or New refuses the configuration.
func TestMessageRateSlowest(t *testing.T) {
	tests := []struct {
		rate  float64
		burst int
	}{
		{rate: 0.01, burst: 0},
		{rate: 0.0001, burst: 0},
		{rate: 0.001, burst: 3000},  // tolerance+interval 3.001e9 ms: above 2^31
		{rate: 0.00001, burst: 100}, // tolerance 1e10 ms: above 2^32
		{rate: 1e-12, burst: 1},     // interval 1e15 ms: no uint32
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.rate, "/s burst ", tt.burst), func(t *testing.T) {
			s, err := New(Config{Bus: nopBus{}, Auth: InsecureAuth{}, PoolSize: 1, MessageRate: tt.rate, MessageBurst: tt.burst})
			if err != nil {
				return // refused: fine
			}
			s.Close()
			c := &Conn{srv: s, msgTAT: 1}
			allowed := 0
			for range 5000 {
				if c.allowMessage(1) {
					allowed++
				}
			}
			if want := s.cfg.MessageBurst + 1; allowed != want {
				t.Errorf("%d of 5000 messages at once allowed, want %d (interval %d ms, tolerance %d ms)", allowed, want, s.msgInterval, s.msgTolerance)
			}
		})
	}
}
