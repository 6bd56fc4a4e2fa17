//go:build linux && !netpoll_portable

package netpoll

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Poller observes sockets. It is safe for concurrent use.
//
// On Linux it is one epoll instance whose fd is itself registered in the Go
// runtime's network poller: the poller goroutine collects events with
// epoll_wait(0), which never blocks, and parks in the runtime while the set
// has nothing ready. A goroutine blocked in epoll_wait(-1), as a plain wait
// loop has, is a thread in a long system call: the runtime's monitor
// thread (sysmon) takes its P away at every wait and, having found work,
// goes back to polling every 20 µs; on a host running many gateway
// processes those wake-ups cost more CPU than the sockets themselves.
type Poller struct {
	cfg  Config
	epfd int
	file *os.File        // epfd, non-blocking, in the runtime's poller
	rc   syscall.RawConn // of file: the wait loop's Read
	done chan struct{}   // closed when the wait loop has ended

	// table maps an fd number to its Desc. fds are small and dense, so a
	// slice costs one word per fd instead of a map entry per socket.
	tmu   sync.RWMutex
	table []*Desc
	gone  bool // Close has taken the table; guarded by tmu

	stopping atomic.Bool // Close has started: the wait loop ends

	// efd is an eventfd registered level-triggered in the set. Writing to
	// it makes the poller goroutine run barrier, which runs deferred
	// closes.
	efd int

	mu       sync.Mutex  // protects the fields below and writes to efd
	closed   bool        // Close has started
	signaled bool        // efd was written and barrier has not consumed it
	pending  []io.Closer // closers queued by CloseSocket, run by barrier

	beat atomic.Int64 // unix nanoseconds of barrier's last run on the poller goroutine
}

// Batch sizes of the wait loop: it starts with waitBatch events per
// epoll_wait and doubles the buffer, up to maxWaitBatch, while batches
// fill it.
const (
	waitBatch    = 256
	maxWaitBatch = 16384
)

// New creates a Poller and starts its goroutine. Close must be called to
// stop it.
func New(cfg Config) (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netpoll: epoll create: %w", err)
	}
	p := &Poller{cfg: cfg, epfd: epfd, efd: -1, done: make(chan struct{})}
	p.beat.Store(time.Now().UnixNano())
	fail := func(what string, err error) (*Poller, error) {
		if p.efd >= 0 {
			unix.Close(p.efd)
		}
		if p.file != nil {
			p.file.Close() // closes epfd
		} else {
			unix.Close(epfd)
		}
		return nil, fmt.Errorf("netpoll: %s: %w", what, err)
	}
	if p.efd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		p.efd = -1
		return fail("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(p.efd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, p.efd, &ev); err != nil {
		return fail("register eventfd", err)
	}
	// A non-blocking fd given to os.NewFile goes into the runtime's
	// poller: an epoll fd is readable while its set has events ready.
	if err := unix.SetNonblock(epfd, true); err != nil {
		return fail("epoll nonblock", err)
	}
	p.file = os.NewFile(uintptr(epfd), "epoll")
	if p.rc, err = p.file.SyscallConn(); err != nil {
		return fail("epoll raw conn", err)
	}
	go p.wait()
	return p, nil
}

// wait is the poller goroutine: it dispatches batches of events until
// Close. Read calls collect until it returns false (nothing ready), then
// parks in the runtime's poller until the epoll fd is readable, and calls
// it again; true ends the loop.
func (p *Poller) wait() {
	defer close(p.done)
	events := make([]unix.EpollEvent, waitBatch)
	descs := make([]*Desc, waitBatch)
	collect := func(uintptr) bool {
		for {
			n, err := unix.EpollWait(p.epfd, events, 0)
			switch {
			case err == unix.EINTR:
				continue
			case err != nil:
				p.cfg.onError(fmt.Errorf("netpoll: epoll wait: %w", err))
				return true
			case n == 0:
				return p.stopping.Load()
			}
			p.batch(events[:n], descs[:n])
			if p.stopping.Load() {
				return true
			}
			if n == len(events) && n < maxWaitBatch {
				events = make([]unix.EpollEvent, 2*n)
				descs = make([]*Desc, 2*n)
			}
		}
	}
	// The error is ErrFileClosing once Close has closed the file; any
	// other means the runtime could not wait on the epoll fd.
	if err := p.rc.Read(collect); err != nil && !p.stopping.Load() {
		p.cfg.onError(fmt.Errorf("netpoll: wait loop ended: %w", err))
	}
}

// batch runs the callbacks of one batch of events. It looks up every
// event's Desc before running any callback: CloseSocket's barrier relies
// on it.
func (p *Poller) batch(events []unix.EpollEvent, descs []*Desc) {
	barrier := false
	p.tmu.RLock()
	for i, ev := range events {
		fd := int(ev.Fd)
		switch {
		case fd == p.efd:
			barrier = true
		case fd < len(p.table):
			descs[i] = p.table[fd]
		}
	}
	p.tmu.RUnlock()
	for i, ev := range events {
		if d := descs[i]; d != nil {
			p.dispatch(d, ev.Events)
			descs[i] = nil
		}
	}
	if barrier {
		p.barrier()
	}
}

// register adds fd with events to the set, for d. It fails with ErrClosed
// after Close.
func (p *Poller) register(fd int, events uint32, d *Desc) error {
	p.tmu.Lock()
	defer p.tmu.Unlock()
	if p.gone {
		return ErrClosed
	}
	if fd < len(p.table) && p.table[fd] != nil {
		return fmt.Errorf("fd %d is observed already", fd)
	}
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return err
	}
	if fd >= len(p.table) {
		p.table = append(p.table, make([]*Desc, fd+1-len(p.table)+len(p.table)/2)...)
	}
	p.table[fd] = d
	return nil
}

// modify sets fd's registration to events.
func (p *Poller) modify(fd int, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	p.tmu.RLock()
	defer p.tmu.RUnlock()
	if p.gone {
		return ErrClosed
	}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
}

// unregister removes fd from the set and the table. It returns ErrClosed
// after Close has delivered EventClosed.
func (p *Poller) unregister(fd int) error {
	p.tmu.Lock()
	defer p.tmu.Unlock()
	if p.gone {
		return ErrClosed
	}
	if fd < len(p.table) {
		p.table[fd] = nil
	}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// CloseSocket stops d and then closes c, but only once the poller goroutine can
// no longer hold an already-fetched (stale) event for d's fd. It returns
// without waiting for the close; an error of c.Close goes to Config.OnError.
// c is typically the net.Conn behind d. c is closed even if d was already
// stopped; a nil c only stops d. The returned error is Stop's.
//
// CloseSocket is how an observed socket should be closed. Closing it right after
// Stop is not safe: the wait loop looks up the Descs for a whole batch of
// events (by fd number) after epoll_wait returns, so an event for fd N
// collected before Stop could be matched to whatever is registered on N by
// the time the lookup runs. If N was closed and reused by a new socket in
// between, the new socket would get the old socket's event.
//
// The barrier: CloseSocket queues c and writes to an eventfd that is in the
// same epoll set. The eventfd's handler (barrier) runs on the poller
// goroutine, after the other events of some batch, and only then closes c.
// At that moment:
//   - Stop has returned, so EPOLL_CTL_DEL for N is done and no epoll_wait
//     started from now on can report N (the kernel removes the item from
//     the ready list under the same lock epoll_wait collects it with);
//   - the poller goroutine is not inside epoll_wait, and the batch it is
//     running has already looked up the Descs of all its events, so a
//     stale event for N in it is bound to d itself, which ignores it
//     because d is stopped.
//
// Hence when N is closed and can be reused, no stale event for N is in
// flight. If the Poller is closed there is no wait loop left: c is closed
// before CloseSocket returns.
func (p *Poller) CloseSocket(d *Desc, c io.Closer) error {
	err := p.Stop(d)
	if c == nil {
		return err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.closeAll([]io.Closer{c})
		return err
	}
	p.pending = append(p.pending, c)
	if !p.signaled {
		if werr := p.wake(); werr != nil {
			// Leave signaled false so that the next CloseSocket retries;
			// Close runs whatever is still pending.
			p.mu.Unlock()
			return errors.Join(err, werr)
		}
		p.signaled = true
	}
	p.mu.Unlock()
	return err
}

// Heartbeat asks the poller goroutine to show that it runs: it wakes the
// wait loop through the eventfd, whose handler stamps LastBeat. A caller
// that heartbeats periodically and finds LastBeat older than a few periods
// knows the poller goroutine is stuck (a callback that blocks, say).
func (p *Poller) Heartbeat() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.signaled {
		return nil // a wake-up is already on its way
	}
	if err := p.wake(); err != nil {
		return err
	}
	p.signaled = true
	return nil
}

// LastBeat returns when the poller goroutine last ran the eventfd handler
// (Heartbeat's or CloseSocket's), or New's time before that.
func (p *Poller) LastBeat() time.Time { return time.Unix(0, p.beat.Load()) }

// wakeBytes is added to the eventfd counter: any non-zero 8-byte value does.
var wakeBytes = [8]byte{1}

// wake makes efd readable. p.mu must be held: it keeps efd open.
func (p *Poller) wake() error {
	if _, err := unix.Write(p.efd, wakeBytes[:]); err != nil {
		return fmt.Errorf("netpoll: eventfd write: %w", err)
	}
	return nil
}

// barrier is efd's handler. It runs on the poller goroutine (see
// CloseSocket).
func (p *Poller) barrier() {
	p.mu.Lock()
	p.beat.Store(time.Now().UnixNano())
	var buf [8]byte
	// Reading resets the counter; EAGAIN only means nothing to consume.
	if _, err := unix.Read(p.efd, buf[:]); err != nil && err != unix.EAGAIN {
		p.cfg.onError(fmt.Errorf("netpoll: eventfd read: %w", err))
	}
	pending := p.pending
	p.pending = nil
	p.signaled = false
	p.mu.Unlock()
	p.closeAll(pending)
}

func (p *Poller) closeAll(cs []io.Closer) {
	for _, c := range cs {
		if err := c.Close(); err != nil {
			p.cfg.onError(fmt.Errorf("netpoll: deferred close: %w", err))
		}
	}
}

// Close stops the wait loop and waits for the poller goroutine to end, then
// delivers EventClosed once to the callback of every still-observed Desc
// (on the calling goroutine) and runs the closes still pending from
// CloseSocket. After Close returns no callback runs. Close is idempotent:
// later calls return nil. It must not be called from a callback.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()

	// Take the table first: from here on no epoll_ctl runs (the epoll fd
	// is closed below and its number may be reused) and a batch finds no
	// Desc; a batch already dispatching may still run callbacks, until the
	// loop has ended.
	p.tmu.Lock()
	table := p.table
	p.table, p.gone = nil, true
	p.tmu.Unlock()

	// Closing the file wakes the parked wait loop with ErrFileClosing; a
	// loop that is collecting sees stopping after its batch. The fd itself
	// is closed once the loop has left its Read.
	p.stopping.Store(true)
	err := p.file.Close()
	if err != nil {
		err = fmt.Errorf("netpoll: close epoll: %w", err)
	}
	<-p.done

	for _, d := range table {
		if d != nil {
			p.dispatchClosed(d)
		}
	}

	p.mu.Lock()
	pending := p.pending
	p.pending = nil
	if cerr := unix.Close(p.efd); cerr != nil {
		err = errors.Join(err, fmt.Errorf("netpoll: close eventfd: %w", cerr))
	}
	p.mu.Unlock()
	p.closeAll(pending)
	return err
}
