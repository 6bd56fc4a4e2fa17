package bus

import (
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"net"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/wstest"
)

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{name: "wildcard prefix", cfg: Config{Prefix: "notify.*"}, want: ErrInvalidName},
		{name: "empty token prefix", cfg: Config{Prefix: "notify..x"}, want: ErrInvalidName},
		{name: "negative dispatchers", cfg: Config{Dispatchers: -1}, want: ErrInvalidConfig},
		{name: "negative queue", cfg: Config{QueueLen: -1}, want: ErrInvalidConfig},
		{name: "negative timeout", cfg: Config{SubscribeTimeout: -time.Second}, want: ErrInvalidConfig},
		{name: "listen without port", cfg: Config{EmbeddedListen: "127.0.0.1"}, want: ErrInvalidConfig},
		{name: "listen bad port", cfg: Config{EmbeddedListen: "127.0.0.1:http"}, want: ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.cfg)
			if err == nil {
				b.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("New: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEmbeddedPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	start := time.Now()
	b, err := New(Config{EmbeddedListen: ln.Addr().String()})
	if err == nil {
		b.Close()
		t.Fatal("New on a port in use: no error")
	}
	if !errors.Is(err, ErrEmbedded) {
		t.Fatalf("New: %v, want ErrEmbedded", err)
	}
	// Not a timing assertion on performance: it checks that the listen
	// error is noticed instead of the 10 s readiness timeout running out.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("New took %v to report a port in use", d)
	}
}

func TestDeliver(t *testing.T) {
	b, rec := newBus(t, Config{Dispatchers: 1}, nil)
	if !b.Connected() {
		t.Fatal("Connected() = false after New with an embedded server")
	}
	p := newPublisher(t, b.ClientURL())

	if err := b.Interest("user.42"); err != nil {
		t.Fatalf("Interest: %v", err)
	}
	if err := p.User("42", []byte(`{"n":1}`)); err != nil {
		t.Fatalf("User: %v", err)
	}
	rec.expect(t, delivery{channel: "user.42", payload: `{"n":1}`})

	// Nothing arrives for channels without interest. The bus's one
	// connection and its single dispatcher keep the order in which the
	// server routed the messages, so the marker proves the others were not
	// delivered.
	for _, err := range []error{
		p.User("43", []byte("other user")),
		p.Topic("sports", []byte("no one subscribed")),
		p.Broadcast([]byte("no one subscribed")),
		p.User("42", []byte("marker")),
	} {
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	rec.expect(t, delivery{channel: "user.42", payload: "marker"})

	if err := b.Interest("broadcast"); err != nil {
		t.Fatalf("Interest: %v", err)
	}
	if err := b.Interest("topic.news.eu"); err != nil {
		t.Fatalf("Interest: %v", err)
	}
	if err := p.Broadcast([]byte("b")); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, delivery{channel: "broadcast", payload: "b"})
	if err := p.Topic("news.eu", []byte("t")); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, delivery{channel: "topic.news.eu", payload: "t"})
}

func TestCustomPrefix(t *testing.T) {
	b, rec := newBus(t, Config{Prefix: "wsgate.dev"}, nil)
	nc, err := Dial(b.ClientURL(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := b.Interest("user.7"); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("wsgate.dev.user.7", []byte("x")); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, delivery{channel: "user.7", payload: "x"})
	if err := NewPublisher(nc, "wsgate.dev").User("7", []byte("y")); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, delivery{channel: "user.7", payload: "y"})
}

func TestInvalidChannel(t *testing.T) {
	b, _ := newBus(t, Config{}, nil)
	for _, ch := range []string{"", "user.*", "topic.>", "user 42", "user..42", "user.42.", string(make([]byte, 129))} {
		if err := b.Interest(ch); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Interest(%q) = %v, want ErrInvalidName", ch, err)
		}
		b.DropInterest(ch) // a no-op
	}
	if n := b.Subscriptions(); n != 0 {
		t.Errorf("Subscriptions() = %d, want 0", n)
	}
}

func TestPublishAfterInterestIsDelivered(t *testing.T) {
	b, rec := newBus(t, Config{}, nil)
	p := newPublisher(t, b.ClientURL())
	for i := range 200 {
		name := "fresh" + strconv.Itoa(i)
		if err := b.Interest("topic." + name); err != nil {
			t.Fatalf("Interest #%d: %v", i, err)
		}
		if err := p.Topic(name, []byte(name)); err != nil {
			t.Fatalf("Topic: %v", err)
		}
		rec.expect(t, delivery{channel: "topic." + name, payload: name})
		b.DropInterest("topic." + name)
	}
}

func TestRefcount(t *testing.T) {
	b, rec := newBus(t, Config{Dispatchers: 1}, nil)
	p := newPublisher(t, b.ClientURL())
	base := b.srv.NumSubscriptions()

	if err := b.Interest("broadcast"); err != nil { // the marker channel
		t.Fatal(err)
	}
	for range 2 {
		if err := b.Interest("user.1"); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := b.Subscriptions(), 2; got != want {
		t.Fatalf("Subscriptions() = %d, want %d", got, want)
	}
	if got, want := serverSubs(t, b.srv, DefaultName), 2; got != want {
		t.Fatalf("server subscriptions = %d, want %d", got, want)
	}

	b.DropInterest("user.1")
	if err := p.User("1", []byte("one left")); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, delivery{channel: "user.1", payload: "one left"})

	b.DropInterest("user.1")
	if got, want := b.Subscriptions(), 1; got != want {
		t.Fatalf("Subscriptions() after the last DropInterest = %d, want %d", got, want)
	}
	if err := b.flush(); err != nil { // the server has the UNSUB
		t.Fatal(err)
	}
	if got, want := serverSubs(t, b.srv, DefaultName), 1; got != want {
		t.Fatalf("server subscriptions after the last DropInterest = %d, want %d", got, want)
	}
	if got, want := b.srv.NumSubscriptions(), base+1; got != want {
		t.Fatalf("srv.NumSubscriptions() = %d, want %d", got, want)
	}
	if err := p.User("1", []byte("gone")); err != nil {
		t.Fatal(err)
	}
	if err := p.Broadcast([]byte("marker")); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, delivery{channel: "broadcast", payload: "marker"})

	b.DropInterest("user.1") // without interest: a no-op
	b.DropInterest("user.never")
	if got, want := b.Subscriptions(), 1; got != want {
		t.Fatalf("Subscriptions() = %d, want %d", got, want)
	}
}

func TestConcurrentInterestSharesFlushes(t *testing.T) {
	b, _ := newBus(t, Config{}, nil)
	const n = 1000
	before := b.flushes.Load()
	errc := make(chan error, n)
	for i := range n {
		go func() { errc <- b.Interest("user.c" + strconv.Itoa(i)) }()
	}
	for range n {
		if err := <-errc; err != nil {
			t.Fatalf("Interest: %v", err)
		}
	}
	flushes := b.flushes.Load() - before
	t.Logf("%d concurrent Interest calls: %d flushes", n, flushes)
	if flushes > n/10 {
		t.Errorf("%d flushes for %d concurrent Interest calls, want at most %d", flushes, n, n/10)
	}
	if got := b.Subscriptions(); got != n {
		t.Errorf("Subscriptions() = %d, want %d", got, n)
	}
	if got := serverSubs(t, b.srv, DefaultName); got != n {
		t.Errorf("server subscriptions = %d, want %d", got, n)
	}
}

func TestInterestOnConfirmedChannelNeedsNoFlush(t *testing.T) {
	b, _ := newBus(t, Config{}, nil)
	if err := b.Interest("user.1"); err != nil {
		t.Fatal(err)
	}
	before := b.flushes.Load()
	for range 100 {
		if err := b.Interest("user.1"); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.flushes.Load() - before; got != 0 {
		t.Errorf("%d flushes for interests in a confirmed channel, want 0", got)
	}
}

func TestNoGoroutinePerSubscription(t *testing.T) {
	b, _ := newBus(t, Config{}, nil)
	if err := b.Interest("user.warmup"); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for i := range 2000 {
		if err := b.Interest("user.g" + strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	after := runtime.NumGoroutine()
	t.Logf("goroutines: %d before, %d after 2000 subscriptions", before, after)
	if d := after - before; d > 2 || d < -2 {
		t.Errorf("goroutines grew by %d with 2000 subscriptions", d)
	}
}

func TestDropped(t *testing.T) {
	release := make(chan struct{})
	got := make(chan string, 100)
	b, _ := newBus(t, Config{
		Dispatchers: 1,
		QueueLen:    4,
	}, func(ch string, payload []byte, _ Position) {
		got <- string(payload)
		<-release
	})
	t.Cleanup(func() { close(release) }) // before b.Close, which waits for the dispatcher
	p := newPublisher(t, b.ClientURL())
	if err := b.Interest("user.slow"); err != nil {
		t.Fatal(err)
	}
	if err := p.User("slow", []byte("first")); err != nil {
		t.Fatal(err)
	}
	if first := <-got; first != "first" { // the dispatcher is now stuck
		t.Fatalf("first delivery %q", first)
	}
	const n = 100
	for i := range n {
		if err := p.User("slow", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(0); err != nil {
		t.Fatal(err)
	}
	// The queue holds 4; the other n-4 are dropped once the bus's
	// connection has read them all.
	wstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if d := b.Dropped(); d != n-4 {
			return fmt.Errorf("Dropped() = %d, want %d", d, n-4)
		}
		return nil
	})
	b.DropInterest("user.slow")
	if d := b.Dropped(); d != n-4 {
		t.Errorf("Dropped() after DropInterest = %d, want %d", d, n-4)
	}
}

func TestClose(t *testing.T) {
	b, _ := newBus(t, Config{}, nil)
	if err := b.Interest("user.1"); err != nil {
		t.Fatal(err)
	}
	srv := b.srv
	for range 2 {
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if err := b.Interest("user.1"); !errors.Is(err, ErrClosed) {
		t.Errorf("Interest after Close = %v, want ErrClosed", err)
	}
	if err := b.Interest("user.2"); !errors.Is(err, ErrClosed) {
		t.Errorf("Interest after Close = %v, want ErrClosed", err)
	}
	b.DropInterest("user.1")
	if b.Connected() {
		t.Error("Connected() = true after Close")
	}
	if n := b.Subscriptions(); n != 0 {
		t.Errorf("Subscriptions() = %d after Close, want 0", n)
	}
	if srv.Running() {
		t.Error("embedded server still running after Close")
	}
}

func TestCloseWakesWaiters(t *testing.T) {
	// A bus whose server never answers: Interest waits for a confirmation
	// until Close.
	b, _ := newBus(t, Config{URL: deadURL(t), SubscribeTimeout: time.Minute}, nil)
	errc := make(chan error, 10)
	for i := range 10 {
		go func() { errc <- b.Interest("user." + strconv.Itoa(i)) }()
	}
	wstest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if n := b.Subscriptions(); n != 10 {
			return fmt.Errorf("Subscriptions() = %d, want 10", n)
		}
		return nil
	})
	b.Close()
	for range 10 {
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Errorf("Interest = %v, want ErrClosed", err)
		}
	}
}

func TestReconnect(t *testing.T) {
	srv := runServer(t, -1)
	port := srv.Addr().(*net.TCPAddr).Port
	srvURL := srv.ClientURL()

	b, rec := newBus(t, Config{URL: srvURL, Name: "long", Dispatchers: 1, SubscribeTimeout: 20 * time.Second}, nil)
	if b.ClientURL() != srvURL {
		t.Errorf("ClientURL() = %q, want %q", b.ClientURL(), srvURL)
	}
	short, _ := newBus(t, Config{URL: srvURL, Name: "short", SubscribeTimeout: 100 * time.Millisecond}, nil)
	if err := b.Interest("user.1"); err != nil {
		t.Fatal(err)
	}

	shutdown(srv)
	wstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if b.Connected() || short.Connected() {
			return errors.New("Connected() = true with the server down")
		}
		return nil
	})

	// While the server is down, a new subscription cannot be confirmed;
	// the failed interest is not held.
	if err := short.Interest("user.2"); !errors.Is(err, ErrSubscribeTimeout) {
		t.Errorf("Interest while disconnected = %v, want ErrSubscribeTimeout", err)
	}
	if n := short.Subscriptions(); n != 0 {
		t.Errorf("Subscriptions() = %d after a failed Interest, want 0", n)
	}
	// One that is still waiting when the server comes back succeeds.
	errc := make(chan error, 1)
	go func() { errc <- b.Interest("user.3") }()
	wstest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if n := b.Subscriptions(); n != 2 {
			return fmt.Errorf("Subscriptions() = %d, want 2", n)
		}
		return nil
	})

	srv2 := runServer(t, port)
	wstest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if !b.Connected() {
			return errors.New("Connected() = false after the server is back")
		}
		return nil
	})
	if err := <-errc; err != nil {
		t.Fatalf("Interest across the reconnect: %v", err)
	}
	wstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := b.Reconnects(); n != 2 { // both connections
			return fmt.Errorf("Reconnects() = %d, want 2", n)
		}
		return nil
	})
	if err := b.flush(); err != nil { // the server has the resent SUBs
		t.Fatal(err)
	}
	if got := serverSubs(t, srv2, "long"); got != 2 {
		t.Errorf("server subscriptions after reconnect = %d, want 2", got)
	}

	p := newPublisher(t, srv2.ClientURL())
	if err := p.User("1", []byte("after reconnect")); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, delivery{channel: "user.1", payload: "after reconnect"})
	if err := p.User("3", []byte("subscribed while down")); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, delivery{channel: "user.3", payload: "subscribed while down"})
}

func TestStartBeforeServer(t *testing.T) {
	srvURL := deadURL(t)
	b, rec := newBus(t, Config{URL: srvURL}, nil)
	if b.Connected() {
		t.Fatal("Connected() = true with no server")
	}
	port, _ := strconv.Atoi(srvURL[len("nats://127.0.0.1:"):])
	runServer(t, port)
	wstest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if !b.Connected() {
			return errors.New("Connected() = false after the server started")
		}
		return nil
	})
	if err := b.Interest("user.1"); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, srvURL)
	if err := p.User("1", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, delivery{channel: "user.1", payload: "hi"})
	if n := b.Reconnects(); n != 0 {
		t.Errorf("Reconnects() = %d after the first connect, want 0", n)
	}
}

func TestEmbeddedListen(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", ":0", "localhost:0"} {
		t.Run(listen, func(t *testing.T) {
			b, rec := newBus(t, Config{EmbeddedListen: listen}, nil)
			u, err := url.Parse(b.ClientURL())
			if err != nil {
				t.Fatalf("ClientURL() = %q: %v", b.ClientURL(), err)
			}
			if u.Scheme != "nats" || u.Port() == "" || u.Port() == "0" {
				t.Fatalf("ClientURL() = %q, want nats://host:port with a real port", b.ClientURL())
			}
			if err := b.Interest("broadcast"); err != nil {
				t.Fatal(err)
			}
			if err := newPublisher(t, b.ClientURL()).Broadcast([]byte("hi")); err != nil {
				t.Fatal(err)
			}
			rec.expect(t, delivery{channel: "broadcast", payload: "hi"})
		})
	}
}

// TestImports keeps bus free of the other project packages: only the
// shared helpers under internal/.
func TestImports(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/wsgate/wsgate/") && !strings.HasPrefix(path, "github.com/wsgate/wsgate/internal/") {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}

// The messages of one channel reach the Handler in the order they were
// published, even with several dispatchers; different channels interleave.
func TestOrderPerChannel(t *testing.T) {
	const n = 2000
	var mu sync.Mutex
	got := map[string][]int{}
	done := make(chan struct{})
	total := 0
	b, _ := newBus(t, Config{Dispatchers: 4}, func(ch string, p []byte, _ Position) {
		i, _ := strconv.Atoi(string(p))
		mu.Lock()
		got[ch] = append(got[ch], i)
		total++
		if total == 4*n {
			close(done)
		}
		mu.Unlock()
	})
	channels := []string{"user.a", "user.b", "topic.c", "broadcast"}
	for _, ch := range channels {
		if err := b.Interest(ch); err != nil {
			t.Fatal(err)
		}
	}
	nc, err := Dial(b.ClientURL(), "order")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for i := range n {
		for _, ch := range channels {
			nc.Publish("notify."+ch, []byte(strconv.Itoa(i)))
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("got %d of %d messages", total, 4*n)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ch := range channels {
		for i, v := range got[ch] {
			if v != i {
				t.Fatalf("%s: message %d is %d: out of order", ch, i, v)
			}
		}
	}
}

// TestStart: messages that arrive between New and Start wait for the
// Handler; Start refuses a nil Handler, a second call and a closed bus.
func TestStart(t *testing.T) {
	b, err := New(Config{EmbeddedListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Interest("user.early"); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, b.ClientURL())
	if err := p.User("early", []byte("before start")); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(nil); !errors.Is(err, ErrNoHandler) {
		t.Fatalf("Start(nil) = %v, want ErrNoHandler", err)
	}
	rec := make(recorder, 4)
	if err := b.Start(rec.handle); err != nil {
		t.Fatalf("Start: %v", err)
	}
	rec.expect(t, delivery{channel: "user.early", payload: "before start"})
	if err := b.Start(rec.handle); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start = %v, want ErrStarted", err)
	}

	closed, err := New(Config{EmbeddedListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	closed.Close() // a bus closed before Start stops cleanly
	if err := closed.Start(rec.handle); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
}
