// Package gopool is a bounded pool of goroutines that run short tasks.
//
// It is the pool from Mail.Ru's "A Million WebSockets and Go": a work
// channel that idle workers receive from and a semaphore channel whose
// capacity is the maximum number of workers. A task goes to an idle worker
// or to a free queue slot; when no worker is idle and fewer than Size
// workers exist, a new worker is started with the task. Workers never exit
// before Close, so the number of goroutines is bounded by Size and stays
// stable once the pool is warm. When every worker is busy and the queue is
// full the pool is saturated: Schedule blocks and ScheduleTimeout gives up
// after its timeout, which is how the gateway's accept loop slows down under
// load.
//
// Usage:
//
//	p, err := gopool.New(gopool.Config{Size: 256})
//	if err != nil {
//		return err
//	}
//	defer p.Close()
//
//	// Accept loop: give up quickly when the pool is saturated.
//	if err := p.ScheduleTimeout(time.Millisecond, func() { upgrade(conn) }); err != nil {
//		conn.Close() // errors.Is(err, gopool.ErrScheduleTimeout) or ErrClosed
//	}
//
//	// Readable socket: wait for a worker.
//	_ = p.Schedule(func() { readFrames(conn) })
//
// Scheduling a task that finds an idle worker, a free queue slot or room for
// a new worker takes no mutex and makes no allocation beyond the task value
// the caller built; starting a worker costs one goroutine, at most Size
// times in the life of the pool. ScheduleTimeout creates a timer only when
// the pool is saturated.
//
// # Concurrency
//
// Schedule, ScheduleTimeout, Stats and Close may be called from any number
// of goroutines at once. Close stops accepting tasks (calls that start after
// it get ErrClosed; a call already waiting for a worker may be accepted or
// may get ErrClosed), runs every task already accepted, queued ones
// included, and returns when every worker has exited. Close is idempotent,
// and Schedule racing with Close never panics. A nil error from Schedule
// means the task will run exactly once.
//
// A task runs on a worker goroutine and must not block for long: a worker
// that waits holds a slot that other tasks need. A task must not call Close
// (Close would wait for the task itself), and a task that calls Schedule can
// deadlock when the pool is saturated. A panic in a task is recovered, counted
// in Stats.Panics and passed to Config.OnPanic; the worker keeps serving. A
// task that calls runtime.Goexit ends its worker goroutine, and the pool
// starts a replacement at once. The pool never logs.
package gopool
