package gopool

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// spin is a task with about a few hundred nanoseconds of CPU work, the order
// of parsing one small frame.
func spin() {
	x := uint64(1)
	for i := range 256 {
		x = x*6364136223846793005 + uint64(i)
	}
	if x == 0 {
		panic("unreachable")
	}
}

// benchTasks are shared by every benchmark in this file, so that the pool
// and the goroutine-per-task baseline run side by side on the same tasks.
var benchTasks = []struct {
	name string
	task func()
}{
	{"empty", func() {}},
	{"spin", spin},
}

// benchSizes are the pool sizes: as many workers as cores here, and the
// default.
var benchSizes = []int{2, DefaultSize}

// benchEachPool runs f for every task and pool size.
func benchEachPool(b *testing.B, f func(b *testing.B, size int, task func())) {
	for _, bt := range benchTasks {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/size%d", bt.name, size), func(b *testing.B) { f(b, size, bt.task) })
		}
	}
}

// benchPool runs b.N tasks through a warm pool, from one goroutine or, when
// parallel, from GOMAXPROCS goroutines, and times until the last task has
// run. waits/op is the share of calls that found the pool saturated.
func benchPool(b *testing.B, size int, task func(), schedule func(p *Pool, task func()) error, parallel bool) {
	p, err := New(Config{Size: size, Prespawn: size})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := schedule(p, task); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for range b.N {
			if err := schedule(p, task); err != nil {
				b.Fatal(err)
			}
		}
	}
	p.Close()
	b.StopTimer()
	b.ReportMetric(float64(p.Stats().Waits)/float64(b.N), "waits/op")
}

func schedule(p *Pool, task func()) error { return p.Schedule(task) }

func scheduleTimeout(p *Pool, task func()) error { return p.ScheduleTimeout(time.Second, task) }

func BenchmarkSchedule(b *testing.B) {
	benchEachPool(b, func(b *testing.B, size int, task func()) { benchPool(b, size, task, schedule, false) })
}

func BenchmarkScheduleParallel(b *testing.B) {
	benchEachPool(b, func(b *testing.B, size int, task func()) { benchPool(b, size, task, schedule, true) })
}

// BenchmarkScheduleTimeout measures ScheduleTimeout with a timeout long
// enough that it never fires; waits/op shows how often it needed a timer.
func BenchmarkScheduleTimeout(b *testing.B) {
	benchEachPool(b, func(b *testing.B, size int, task func()) { benchPool(b, size, task, scheduleTimeout, false) })
}

// BenchmarkScheduleFastPath measures Schedule when a queue slot is always
// free: the only worker is held, so the numbers are the caller's cost alone.
func BenchmarkScheduleFastPath(b *testing.B) { benchFastPath(b, schedule) }

// BenchmarkScheduleTimeoutFastPath is BenchmarkScheduleFastPath for
// ScheduleTimeout, which must not create a timer here.
func BenchmarkScheduleTimeoutFastPath(b *testing.B) { benchFastPath(b, scheduleTimeout) }

func benchFastPath(b *testing.B, schedule func(p *Pool, task func()) error) {
	const batch = 1 << 16 // amortizes StopTimer, which reads MemStats
	p, err := New(Config{Size: 1, Prespawn: 1, Queue: batch})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	task := func() {}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		b.StopTimer()
		hold := make(chan struct{})
		if err := p.Schedule(func() { <-hold }); err != nil {
			b.Fatal(err)
		}
		for p.Stats().Busy != 1 {
			runtime.Gosched()
		}
		b.StartTimer()
		for range min(batch, b.N-i) {
			if err := schedule(p, task); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		close(hold)
		for p.Stats().Queued != 0 || p.Stats().Busy != 0 {
			runtime.Gosched()
		}
	}
}

// BenchmarkGoPerTask is the baseline: one new goroutine per task.
func BenchmarkGoPerTask(b *testing.B) {
	for _, bt := range benchTasks {
		b.Run(bt.name, func(b *testing.B) {
			var wg sync.WaitGroup
			b.ReportAllocs()
			for range b.N {
				wg.Go(bt.task)
			}
			wg.Wait()
		})
	}
}

// BenchmarkGoPerTaskParallel is the baseline for BenchmarkScheduleParallel.
func BenchmarkGoPerTaskParallel(b *testing.B) {
	for _, bt := range benchTasks {
		b.Run(bt.name, func(b *testing.B) {
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					wg.Go(bt.task)
				}
			})
			wg.Wait()
		})
	}
}
