//go:build linux && !netpoll_portable

package netpoll

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	easy "github.com/mailru/easygo/netpoll"
	"golang.org/x/sys/unix"
)

// easyClosed is the event easygo passes to every registered callback after
// its wait loop has ended (easygo's unexported _EPOLLCLOSED). epoll itself
// never reports this bit.
const easyClosed easy.EpollEvent = 0x20

// Poller observes sockets. It is safe for concurrent use.
//
// On Linux it is one epoll instance driven by easygo's wait loop: a single
// poller goroutine waits for events and runs callbacks.
type Poller struct {
	cfg Config
	ep  *easy.Epoll

	// efd is an eventfd registered level-triggered in ep. Writing to it
	// makes the poller goroutine run barrier, which runs deferred closes.
	efd int

	mu       sync.Mutex  // protects the fields below and writes to efd
	closed   bool        // Close has started
	signaled bool        // efd was written and barrier has not consumed it
	pending  []io.Closer // closers queued by CloseSocket, run by barrier

	beat atomic.Int64 // unix nanoseconds of barrier's last run on the poller goroutine
}

// New creates a Poller and starts its goroutine. Close must be called to
// stop it.
func New(cfg Config) (*Poller, error) {
	p := &Poller{cfg: cfg}
	p.beat.Store(time.Now().UnixNano())
	ep, err := easy.EpollCreate(&easy.EpollConfig{OnWaitError: cfg.onError})
	if err != nil {
		return nil, fmt.Errorf("netpoll: epoll create: %w", err)
	}
	p.ep = ep
	p.efd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		ep.Close()
		return nil, fmt.Errorf("netpoll: eventfd: %w", err)
	}
	if err := ep.Add(p.efd, easy.EPOLLIN, p.barrier); err != nil {
		ep.Close()
		unix.Close(p.efd)
		return nil, fmt.Errorf("netpoll: register eventfd: %w", err)
	}
	return p, nil
}

// CloseSocket stops d and then closes c, but only once the poller goroutine can
// no longer hold an already-fetched (stale) event for d's fd. It returns
// without waiting for the close; an error of c.Close goes to Config.OnError.
// c is typically the net.Conn behind d. c is closed even if d was already
// stopped; a nil c only stops d. The returned error is Stop's.
//
// CloseSocket is how an observed socket should be closed. Closing it right after
// Stop is not safe: easygo fetches the callbacks for a whole batch of events
// (by fd number) after epoll_wait returns, so an event for fd N collected
// before Stop can be matched to whatever is registered on N by the time the
// lookup runs. If N was closed and reused by a new socket in between, the
// new socket would get the old socket's event.
//
// The barrier: CloseSocket queues c and writes to an eventfd that is in the
// same epoll set. The eventfd's callback (barrier) runs on the poller
// goroutine, in the callback phase of some batch, and only then closes c.
// At that moment:
//   - Stop has returned, so EPOLL_CTL_DEL for N is done and no epoll_wait
//     started from now on can report N (the kernel removes the item from
//     the ready list under the same lock epoll_wait collects it with);
//   - the poller goroutine is not inside epoll_wait, and the batch it is
//     running has already looked up the callbacks of all its events, so a
//     stale event for N in it is bound to d's own callback, which ignores
//     it because d is stopped.
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
// wait loop through the eventfd, whose callback stamps LastBeat. A caller
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

// LastBeat returns when the poller goroutine last ran the eventfd callback
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

// barrier is efd's callback. It runs on the poller goroutine (see CloseSocket),
// or once with easyClosed on the goroutine calling Close after the wait
// loop has ended.
func (p *Poller) barrier(ev easy.EpollEvent) {
	p.mu.Lock()
	if ev != easyClosed {
		p.beat.Store(time.Now().UnixNano())
		var buf [8]byte
		// Reading resets the counter; EAGAIN only means nothing to consume.
		if _, err := unix.Read(p.efd, buf[:]); err != nil && err != unix.EAGAIN {
			p.cfg.onError(fmt.Errorf("netpoll: eventfd read: %w", err))
		}
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

	// easygo's Close waits for its wait loop, then calls every registered
	// callback with easyClosed, including barrier.
	err := p.ep.Close()
	if err != nil {
		err = fmt.Errorf("netpoll: close epoll: %w", err)
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
