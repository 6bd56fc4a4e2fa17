package gopool

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		wantErr   bool
		wantSize  int
		wantQueue int
	}{
		{name: "zero", cfg: Config{}, wantSize: 128, wantQueue: 128},
		{name: "size", cfg: Config{Size: 4}, wantSize: 4, wantQueue: 4},
		{name: "queue", cfg: Config{Size: 4, Queue: 7}, wantSize: 4, wantQueue: 7},
		{name: "no queue", cfg: Config{Size: 4, Queue: -1}, wantSize: 4, wantQueue: 0},
		{name: "prespawn all", cfg: Config{Size: 4, Prespawn: 4}, wantSize: 4, wantQueue: 4},
		{name: "negative size", cfg: Config{Size: -1}, wantErr: true},
		{name: "negative prespawn", cfg: Config{Prespawn: -1}, wantErr: true},
		{name: "prespawn over size", cfg: Config{Size: 4, Prespawn: 5}, wantErr: true},
		{name: "prespawn over default", cfg: Config{Prespawn: 129}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.cfg)
			if tt.wantErr {
				if err == nil {
					p.Close()
					t.Fatalf("New(%+v) = nil error, want one", tt.cfg)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%+v): %v", tt.cfg, err)
			}
			defer p.Close()
			st := p.Stats()
			if st.Size != tt.wantSize {
				t.Errorf("Size = %d, want %d", st.Size, tt.wantSize)
			}
			if got := cap(p.work); got != tt.wantQueue {
				t.Errorf("queue capacity = %d, want %d", got, tt.wantQueue)
			}
			if st.Workers != tt.cfg.Prespawn {
				t.Errorf("Workers = %d, want %d", st.Workers, tt.cfg.Prespawn)
			}
		})
	}
}

func TestScheduleNilPanics(t *testing.T) {
	p := newPool(t, Config{Size: 1})
	defer func() {
		if recover() == nil {
			t.Error("Schedule(nil) did not panic")
		}
	}()
	_ = p.Schedule(nil)
}

func TestTasksAllRun(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"default", Config{}},
		{"size 1", Config{Size: 1}},
		{"size 4", Config{Size: 4}},
		{"size 4 no queue", Config{Size: 4, Queue: -1}},
		{"size 4 long queue prespawned", Config{Size: 4, Queue: 100, Prespawn: 4}},
	}
	const producers, perProducer = 4, 500
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, tt.cfg)
			var ran, cur, maxCur atomic.Int64
			task := func() {
				n := cur.Add(1)
				for m := maxCur.Load(); n > m && !maxCur.CompareAndSwap(m, n); m = maxCur.Load() {
				}
				runtime.Gosched()
				cur.Add(-1)
				ran.Add(1)
			}
			var wg sync.WaitGroup
			errc := make(chan error, producers)
			for i := range producers {
				wg.Go(func() {
					for range perProducer {
						var err error
						if i%2 == 0 {
							err = p.Schedule(task)
						} else {
							err = p.ScheduleTimeout(time.Minute, task)
						}
						if err != nil {
							errc <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatalf("schedule: %v", err)
			}
			p.Close()

			if got, want := ran.Load(), int64(producers*perProducer); got != want {
				t.Errorf("ran %d tasks, want %d", got, want)
			}
			size := p.Stats().Size
			if got := maxCur.Load(); got > int64(size) || got < 1 {
				t.Errorf("max concurrent tasks = %d, want 1..%d", got, size)
			}
			st := p.Stats()
			if st.Workers != 0 || st.Busy != 0 || st.Queued != 0 || st.Timeouts != 0 || st.Panics != 0 {
				t.Errorf("Stats after Close = %+v, want no workers, busy, queued, timeouts or panics", st)
			}
		})
	}
}

func TestScheduleBlocksWhenSaturated(t *testing.T) {
	for _, queue := range []int{1, -1} {
		t.Run(map[int]string{1: "queue", -1: "no queue"}[queue], func(t *testing.T) {
			p := newPool(t, Config{Size: 2, Queue: queue})
			g := newGate(t)
			release := make(chan struct{})
			held := func() {
				select {
				case <-release:
				case <-g.ch:
				}
			}
			for range 2 + max(queue, 0) {
				if err := p.Schedule(held); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "two busy workers", func() bool { return p.Stats().Busy == 2 })

			ran := make(chan struct{})
			errc := make(chan error, 1)
			go func() { errc <- p.Schedule(func() { close(ran) }) }()
			waitFor(t, "Schedule to wait", func() bool { return p.Stats().Waits == 1 })
			select {
			case err := <-errc:
				t.Fatalf("Schedule returned %v while the pool was saturated", err)
			default:
			}

			release <- struct{}{} // free one worker
			select {
			case err := <-errc:
				if err != nil {
					t.Fatalf("Schedule: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Schedule still blocked after a worker became free")
			}
			g.open()
			select {
			case <-ran:
			case <-time.After(5 * time.Second):
				t.Fatal("the blocked task never ran")
			}
			if got := p.Stats().Workers; got != 2 {
				t.Errorf("Workers = %d, want 2", got)
			}
		})
	}
}

func TestScheduleTimeout(t *testing.T) {
	for _, queue := range []int{1, -1} {
		t.Run(map[int]string{1: "queue", -1: "no queue"}[queue], func(t *testing.T) {
			p := newPool(t, Config{Size: 1, Queue: queue})
			nop := func() {}

			if err := p.ScheduleTimeout(time.Second, nop); err != nil {
				t.Fatalf("ScheduleTimeout on an idle pool: %v", err)
			}
			if st := p.Stats(); st.Waits != 0 || st.Timeouts != 0 {
				t.Fatalf("fast path counted Waits=%d Timeouts=%d, want 0, 0", st.Waits, st.Timeouts)
			}
			// Let the worker finish nop, so that saturate sees the gate's tasks.
			waitFor(t, "worker idle", func() bool { return p.idle.Load() == 1 })

			g := newGate(t)
			saturate(t, p, g)
			if err := p.ScheduleTimeout(10*time.Millisecond, nop); !errors.Is(err, ErrScheduleTimeout) {
				t.Fatalf("ScheduleTimeout(10ms) while saturated = %v, want ErrScheduleTimeout", err)
			}
			if err := p.ScheduleTimeout(0, nop); !errors.Is(err, ErrScheduleTimeout) {
				t.Fatalf("ScheduleTimeout(0) while saturated = %v, want ErrScheduleTimeout", err)
			}
			if st := p.Stats(); st.Waits != 2 || st.Timeouts != 2 {
				t.Errorf("Waits=%d Timeouts=%d, want 2, 2", st.Waits, st.Timeouts)
			}

			errc := make(chan error, 1)
			go func() { errc <- p.ScheduleTimeout(time.Minute, nop) }()
			waitFor(t, "ScheduleTimeout to wait", func() bool { return p.Stats().Waits == 3 })
			g.open()
			if err := <-errc; err != nil {
				t.Fatalf("ScheduleTimeout after a worker became free: %v", err)
			}
			if got := p.Stats().Timeouts; got != 2 {
				t.Errorf("Timeouts = %d, want 2", got)
			}
		})
	}
}

func TestNoQueue(t *testing.T) {
	p := newPool(t, Config{Size: 2, Queue: -1})
	g := newGate(t)
	for range 2 {
		if err := p.ScheduleTimeout(0, g.wait); err != nil {
			t.Fatalf("ScheduleTimeout with a worker to spawn: %v", err)
		}
	}
	if got := p.Stats().Workers; got != 2 {
		t.Fatalf("Workers = %d, want 2", got)
	}
	waitFor(t, "two busy workers", func() bool { return p.Stats().Busy == 2 })
	if err := p.ScheduleTimeout(0, func() {}); !errors.Is(err, ErrScheduleTimeout) {
		t.Fatalf("ScheduleTimeout with no queue and busy workers = %v, want ErrScheduleTimeout", err)
	}
	if got := p.Stats().Queued; got != 0 {
		t.Errorf("Queued = %d, want 0", got)
	}
	g.open()
	// A worker counts itself idle a moment before it waits on the
	// unbuffered hand-off, and a send without waiting finds no receiver in
	// that moment: poll until a worker takes a task at once.
	waitFor(t, "an idle worker to take a task without waiting", func() bool {
		return p.ScheduleTimeout(0, func() {}) == nil
	})
}

func TestLazySpawn(t *testing.T) {
	p := newPool(t, Config{Size: 8})
	done := make(chan struct{})
	for i := range 50 {
		if err := p.Schedule(func() { done <- struct{}{} }); err != nil {
			t.Fatal(err)
		}
		<-done
		waitFor(t, "the worker to go idle", func() bool { return p.idle.Load() == 1 })
		if got := p.Stats().Workers; got != 1 {
			t.Fatalf("after %d sequential tasks Workers = %d, want 1", i+1, got)
		}
	}
}

func TestPrespawnAndGoroutineBound(t *testing.T) {
	const size = 8
	base := runtime.NumGoroutine()
	p := newPool(t, Config{Size: size, Prespawn: 3})
	if got := p.Stats().Workers; got != 3 {
		t.Fatalf("Workers after New = %d, want 3", got)
	}
	waitFor(t, "prespawned workers idle", func() bool { return p.idle.Load() == 3 })
	if n := runtime.NumGoroutine(); n > base+3 {
		t.Errorf("goroutines after New = %d, want at most %d", n, base+3)
	}

	// Warm up to Size.
	g := newGate(t)
	saturate(t, p, g)
	if got := p.Stats().Workers; got != size {
		t.Fatalf("Workers when saturated = %d, want %d", got, size)
	}
	g.open()

	var maxG atomic.Int64
	task := func() {
		n := int64(runtime.NumGoroutine())
		for m := maxG.Load(); n > m && !maxG.CompareAndSwap(m, n); m = maxG.Load() {
		}
	}
	for range 1000 {
		if err := p.Schedule(task); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "queue drained", func() bool { return p.Stats().Queued == 0 && p.Stats().Busy == 0 })
	if got := maxG.Load(); got > int64(base+size) {
		t.Errorf("goroutines under load = %d, want at most %d", got, base+size)
	}
	if got := p.Stats().Workers; got != size {
		t.Errorf("Workers after load = %d, want %d (stable once warm)", got, size)
	}
}

func TestClose(t *testing.T) {
	p := newPool(t, Config{Size: 1, Queue: 10})
	g := newGate(t)
	if err := p.Schedule(g.wait); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "worker busy", func() bool { return p.Stats().Busy == 1 })
	var ran atomic.Int64
	for range 10 {
		if err := p.Schedule(func() { ran.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}

	closed := make(chan struct{})
	go func() {
		p.Close()
		close(closed)
	}()
	waitFor(t, "Close to begin", func() bool {
		return errors.Is(p.ScheduleTimeout(0, func() {}), ErrClosed)
	})
	if err := p.Schedule(func() {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Schedule after Close = %v, want ErrClosed", err)
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a task was running")
	default:
	}

	g.open()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the tasks finished")
	}
	if got := ran.Load(); got != 10 {
		t.Errorf("queued tasks run by Close = %d, want 10", got)
	}
	if st := p.Stats(); st.Workers != 0 || st.Queued != 0 || st.Busy != 0 {
		t.Errorf("Stats after Close = %+v, want no workers, queued or busy", st)
	}

	p.Close() // idempotent
	if err := p.Schedule(func() {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Schedule after second Close = %v, want ErrClosed", err)
	}
	if err := p.ScheduleTimeout(time.Second, func() {}); !errors.Is(err, ErrClosed) {
		t.Errorf("ScheduleTimeout after Close = %v, want ErrClosed", err)
	}
}

func TestCloseWakesWaitingSchedule(t *testing.T) {
	for _, timeout := range []bool{false, true} {
		t.Run(map[bool]string{false: "Schedule", true: "ScheduleTimeout"}[timeout], func(t *testing.T) {
			p := newPool(t, Config{Size: 1, Queue: -1})
			g := newGate(t)
			saturate(t, p, g)

			errc := make(chan error, 1)
			go func() {
				if timeout {
					errc <- p.ScheduleTimeout(time.Minute, func() {})
				} else {
					errc <- p.Schedule(func() {})
				}
			}()
			waitFor(t, "the call to wait", func() bool { return p.Stats().Waits == 1 })

			closed := make(chan struct{})
			go func() {
				p.Close()
				close(closed)
			}()
			if err := <-errc; !errors.Is(err, ErrClosed) {
				t.Errorf("waiting call after Close = %v, want ErrClosed", err)
			}
			g.open()
			<-closed
		})
	}
}

func TestConcurrentClose(t *testing.T) {
	p := newPool(t, Config{Size: 2})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(p.Close)
	}
	wg.Wait()
	if err := p.Schedule(func() {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Schedule after Close = %v, want ErrClosed", err)
	}
}

// TestScheduleCloseRace checks that every task accepted while Close runs is
// run, and that nothing panics.
func TestScheduleCloseRace(t *testing.T) {
	for i := range 20 {
		p, err := New(Config{Size: 2, Queue: i % 3})
		if err != nil {
			t.Fatal(err)
		}
		var accepted, ran atomic.Int64
		task := func() { ran.Add(1) }
		busy := make(chan struct{}) // closed at the 50th accepted task
		var wg sync.WaitGroup
		errc := make(chan error, 8)
		for j := range 8 {
			wg.Go(func() {
				for {
					var err error
					switch j % 3 {
					case 0:
						err = p.Schedule(task)
					case 1:
						err = p.ScheduleTimeout(time.Microsecond, task)
					default:
						err = p.ScheduleTimeout(0, task)
					}
					switch {
					case err == nil:
						if accepted.Add(1) == 50 {
							close(busy)
						}
					case errors.Is(err, ErrClosed):
						return
					case errors.Is(err, ErrScheduleTimeout):
					default:
						errc <- err
						return
					}
				}
			})
		}
		<-busy
		p.Close()
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatalf("schedule: %v", err)
		}
		if a, r := accepted.Load(), ran.Load(); a != r {
			t.Fatalf("round %d: accepted %d tasks, ran %d", i, a, r)
		}
	}
}

func TestPanic(t *testing.T) {
	tests := []struct {
		name    string
		onPanic bool
	}{
		{"OnPanic", true},
		{"nil OnPanic", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan any, 1)
			cfg := Config{Size: 1}
			if tt.onPanic {
				cfg.OnPanic = func(v any) { got <- v }
			}
			p := newPool(t, cfg)
			if err := p.Schedule(func() { panic("boom") }); err != nil {
				t.Fatal(err)
			}
			if tt.onPanic {
				if v := <-got; v != "boom" {
					t.Errorf("OnPanic got %v, want boom", v)
				}
			}
			done := make(chan struct{})
			if err := p.Schedule(func() { close(done) }); err != nil {
				t.Fatal(err)
			}
			<-done
			st := p.Stats()
			if st.Panics != 1 {
				t.Errorf("Panics = %d, want 1", st.Panics)
			}
			if st.Workers != 1 {
				t.Errorf("Workers = %d, want 1 (the worker survives)", st.Workers)
			}
			waitFor(t, "Busy back to 0", func() bool { return p.Stats().Busy == 0 })
		})
	}
}

func TestGoexitReplacesWorker(t *testing.T) {
	p := newPool(t, Config{Size: 1, Queue: 4})
	g := newGate(t)
	if err := p.Schedule(func() { g.wait(); runtime.Goexit() }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "worker busy", func() bool { return p.Stats().Busy == 1 })
	var ran atomic.Int64
	for range 3 {
		if err := p.Schedule(func() { ran.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	g.open()
	// No further Schedule call: the replacement must find the queued tasks.
	waitFor(t, "queued tasks to run", func() bool { return ran.Load() == 3 })
	if got := p.Stats().Workers; got != 1 {
		t.Errorf("Workers = %d, want 1", got)
	}
}

func TestScheduleAllocs(t *testing.T) {
	t.Run("queue", func(t *testing.T) {
		p := newPool(t, Config{Size: 1, Prespawn: 1, Queue: 512})
		g := newGate(t)
		if err := p.Schedule(g.wait); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "worker busy", func() bool { return p.Stats().Busy == 1 })
		task := func() {}
		if n := testing.AllocsPerRun(100, func() {
			if err := p.Schedule(task); err != nil {
				panic(err)
			}
		}); n != 0 {
			t.Errorf("Schedule allocs = %v, want 0", n)
		}
		if n := testing.AllocsPerRun(100, func() {
			if err := p.ScheduleTimeout(time.Second, task); err != nil {
				panic(err)
			}
		}); n != 0 {
			t.Errorf("ScheduleTimeout allocs = %v, want 0", n)
		}
	})
	t.Run("idle workers", func(t *testing.T) {
		p := newPool(t, Config{Size: 2, Prespawn: 2, Queue: 512})
		task := func() {}
		if n := testing.AllocsPerRun(1000, func() {
			if err := p.Schedule(task); err != nil {
				panic(err)
			}
		}); n != 0 {
			t.Errorf("Schedule allocs = %v, want 0", n)
		}
	})
}

func TestTrySchedule(t *testing.T) {
	p := newPool(t, Config{Size: 1, Queue: 1})
	ran := make(chan struct{}, 4)
	if !p.TrySchedule(func() { ran <- struct{}{} }) {
		t.Fatal("TrySchedule on an idle pool refused")
	}
	<-ran
	waitFor(t, "worker idle", func() bool { return p.idle.Load() == 1 })
	g := newGate(t)
	saturate(t, p, g)
	waits := p.Stats().Waits
	if p.TrySchedule(func() { ran <- struct{}{} }) {
		t.Fatal("TrySchedule on a saturated pool accepted")
	}
	if got := p.Stats().Waits; got != waits+1 {
		t.Errorf("Waits = %d, want %d", got, waits+1)
	}
	g.open()
	waitFor(t, "a free worker", func() bool { return p.TrySchedule(func() { ran <- struct{}{} }) })
	<-ran
	p.Close()
	if p.TrySchedule(func() {}) {
		t.Fatal("TrySchedule after Close accepted")
	}
}
