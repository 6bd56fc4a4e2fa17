package gopool

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultSize is the number of workers used when Config.Size is zero.
const DefaultSize = 128

// Config configures a Pool. The zero value is a valid configuration: 128
// workers started lazily and a queue of 128 tasks.
type Config struct {
	// Size is the maximum number of workers. Zero means DefaultSize (128).
	// Negative is an error.
	Size int

	// Queue is how many tasks may wait for a worker. Zero means Size.
	// Negative means no queue: a task is accepted only when an idle worker
	// takes it or a new worker can be started for it.
	Queue int

	// Prespawn workers are started by New; the rest start lazily, one per
	// task that finds no idle worker, up to Size. Zero means none. Negative
	// or more than Size is an error. Workers never exit before Close, so the
	// goroutine count is bounded by Size and stable once warm.
	Prespawn int

	// OnPanic is called from the worker with the recovered value when a task
	// panics; the worker then takes the next task. It must not panic itself.
	// Nil means the panic is recovered and only counted in Stats.Panics.
	OnPanic func(v any)
}

// Stats is a snapshot of a pool's saturation figures. The fields are read
// one by one without a lock, so under load they need not add up exactly.
type Stats struct {
	Size     int    // configured maximum workers
	Workers  int    // workers started and not yet exited (all exit by Close)
	Busy     int    // workers running a task now
	Queued   int    // tasks waiting for a worker
	Waits    uint64 // Schedule/ScheduleTimeout calls that found the pool saturated (and waited, unless d <= 0)
	Timeouts uint64 // ScheduleTimeout calls that gave up
	Panics   uint64 // tasks that panicked
}

// closedBit is the low bit of Pool.state; the rest counts calls to Schedule
// and ScheduleTimeout in flight, in steps of inFlight.
const (
	closedBit = 1
	inFlight  = 2
)

// Pool is a bounded pool of worker goroutines. Create one with New; the zero
// Pool is not usable. All methods are safe for concurrent use.
type Pool struct {
	// state is closedBit | inFlight*(calls of Schedule and ScheduleTimeout
	// between enter and exit). Close sets closedBit, then waits until the
	// count drops to zero before telling the workers to drain and exit, so
	// that no task can be sent to the queue after the last worker has
	// looked at it.
	state atomic.Int64

	idle     atomic.Int64 // workers waiting on work
	busy     atomic.Int64 // workers running a task
	waits    atomic.Uint64
	timeouts atomic.Uint64
	panics   atomic.Uint64

	size    int
	onPanic func(v any)

	work chan func()   // tasks for the workers; capacity is the queue length
	sem  chan struct{} // one token per live worker; capacity is Size

	done      chan struct{} // closed when Close begins; wakes waiting schedulers
	quiesced  chan struct{} // capacity 1; signalled when closed and no call is in flight
	stop      chan struct{} // closed once quiesced; workers drain work and exit
	closeOnce sync.Once
	wg        sync.WaitGroup // live workers
}

// New validates cfg, applies its defaults and returns a pool with
// cfg.Prespawn workers already started.
func New(cfg Config) (*Pool, error) {
	size := cfg.Size
	switch {
	case size < 0:
		return nil, fmt.Errorf("gopool: negative Size %d", size)
	case size == 0:
		size = DefaultSize
	}
	queue := cfg.Queue
	switch {
	case queue < 0:
		queue = 0
	case queue == 0:
		queue = size
	}
	if cfg.Prespawn < 0 || cfg.Prespawn > size {
		return nil, fmt.Errorf("gopool: Prespawn %d outside [0, Size %d]", cfg.Prespawn, size)
	}
	p := &Pool{
		size:     size,
		onPanic:  cfg.OnPanic,
		work:     make(chan func(), queue),
		sem:      make(chan struct{}, size),
		done:     make(chan struct{}),
		quiesced: make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	for range cfg.Prespawn {
		p.sem <- struct{}{}
		p.spawn(nil)
	}
	return p, nil
}

// Schedule runs task on a worker, blocking while the pool is saturated (all
// workers busy and the queue full). It returns ErrClosed once Close has
// begun; a nil error means task will run. Schedule panics if task is nil.
func (p *Pool) Schedule(task func()) error {
	if !p.enter(task) {
		return ErrClosed
	}
	defer p.exit()
	if p.try(task) {
		return nil
	}
	p.waits.Add(1)
	select {
	case p.work <- task:
		return nil
	case p.sem <- struct{}{}:
		p.spawn(task)
		return nil
	case <-p.done:
		return ErrClosed
	}
}

// ScheduleTimeout is Schedule that gives up after d with ErrScheduleTimeout.
// A d of zero or less gives up at once when the pool is saturated. The timer
// is created only when the pool is saturated. The gateway's accept loop uses
// it to slow accepting when the pool is busy.
func (p *Pool) ScheduleTimeout(d time.Duration, task func()) error {
	if !p.enter(task) {
		return ErrClosed
	}
	defer p.exit()
	if p.try(task) {
		return nil
	}
	p.waits.Add(1)
	if d <= 0 {
		p.timeouts.Add(1)
		return ErrScheduleTimeout
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case p.work <- task:
		return nil
	case p.sem <- struct{}{}:
		p.spawn(task)
		return nil
	case <-p.done:
		return ErrClosed
	case <-t.C:
		p.timeouts.Add(1)
		return ErrScheduleTimeout
	}
}

// TrySchedule runs task on a worker if it can do so without waiting, and
// reports whether it did: false when the pool is saturated or closed. It is
// for callers that must never block, such as a poller callback; they keep
// the task and schedule it later.
func (p *Pool) TrySchedule(task func()) bool {
	if !p.enter(task) {
		return false
	}
	defer p.exit()
	if p.try(task) {
		return true
	}
	p.waits.Add(1)
	return false
}

// enter registers a scheduling call in flight and reports whether the pool
// is still open. Every call to enter must be followed by one to exit.
func (p *Pool) enter(task func()) bool {
	if task == nil {
		panic("gopool: nil task")
	}
	if p.state.Add(inFlight)&closedBit != 0 {
		p.exit()
		return false
	}
	return true
}

// exit ends a scheduling call. The call that leaves a closed pool with
// nothing in flight wakes Close; later calls may signal again, harmlessly,
// since once closed and quiet the pool stays quiet.
func (p *Pool) exit() {
	if p.state.Add(-inFlight) == closedBit {
		select {
		case p.quiesced <- struct{}{}:
		default:
		}
	}
}

// try hands task to an idle worker, a new worker or a queue slot, in that
// order of preference, without blocking. It reports false when the pool is
// saturated.
func (p *Pool) try(task func()) bool {
	// More idle workers than queued tasks: one of them will take this one.
	// Stale counts cost latency at worst, never a stranded task, because a
	// queued task always has a live worker (idle > 0 or all Size started).
	if p.idle.Load() > int64(len(p.work)) {
		select {
		case p.work <- task:
			return true
		default:
		}
	}
	select {
	case p.sem <- struct{}{}:
		p.spawn(task)
		return true
	default:
	}
	select {
	case p.work <- task:
		return true
	default:
		return false
	}
}

// spawn starts a worker whose first task is task (none if nil). The caller
// holds a sem token for it and is New, a call in flight or a live worker, so
// the wg.Add happens before Close waits or while the count is positive.
func (p *Pool) spawn(task func()) {
	p.wg.Add(1)
	go p.worker(task)
}

// worker runs task, then tasks from work until stop is closed, then drains
// work and exits.
func (p *Pool) worker(task func()) {
	stopped := false
	defer func() {
		if !stopped {
			// A task called runtime.Goexit. Hand the sem token to a
			// replacement so that queued tasks still have a worker.
			p.spawn(nil)
		} else {
			<-p.sem
		}
		p.wg.Done()
	}()
	if task != nil {
		p.run(task)
	}
	for {
		p.idle.Add(1)
		select {
		case task := <-p.work:
			p.idle.Add(-1)
			p.run(task)
		case <-p.stop:
			p.idle.Add(-1)
			for {
				select {
				case task := <-p.work:
					p.run(task)
				default:
					stopped = true
					return
				}
			}
		}
	}
}

// run runs task, recovering and reporting a panic.
func (p *Pool) run(task func()) {
	p.busy.Add(1)
	defer func() {
		p.busy.Add(-1)
		if v := recover(); v != nil {
			p.panics.Add(1)
			if p.onPanic != nil {
				p.onPanic(v)
			}
		}
	}()
	task()
}

// Close stops accepting tasks, lets the workers finish the running and
// queued tasks, and waits for every worker to exit. It is idempotent; every
// call returns after the workers have exited. It must not be called from a
// task.
func (p *Pool) Close() {
	p.closeOnce.Do(func() {
		old := p.state.Or(closedBit)
		close(p.done)
		if old/inFlight != 0 {
			<-p.quiesced
		}
		close(p.stop)
	})
	p.wg.Wait()
}

// Stats returns a snapshot of the pool's saturation figures.
func (p *Pool) Stats() Stats {
	return Stats{
		Size:     p.size,
		Workers:  len(p.sem),
		Busy:     int(p.busy.Load()),
		Queued:   len(p.work),
		Waits:    p.waits.Load(),
		Timeouts: p.timeouts.Load(),
		Panics:   p.panics.Load(),
	}
}
