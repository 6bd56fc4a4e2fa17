//go:build linux && !netpoll_portable

package netpoll

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Desc is one observed socket. It is held per connection, so it is kept to
// three words: a mutex, the fd with the interest state, and the callback.
type Desc struct {
	mu sync.Mutex // protects the fields below; held while the callback runs

	fd          int32 // the socket's own fd, never a dup
	readArmed   bool  // read-side events are wanted
	writeWanted bool  // EPOLLOUT is wanted
	stopped     bool  // removed from the epoll set or Poller closed

	cb func(Event)
}

// events returns the kernel registration for d's interest. d.mu must be
// held.
// EPOLLRDHUP goes with read interest only: a half-closed socket waiting
// for write interest alone would otherwise report it again at every re-arm.
func (d *Desc) events() uint32 {
	ev := uint32(unix.EPOLLONESHOT)
	if d.readArmed {
		ev |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if d.writeWanted {
		ev |= unix.EPOLLOUT
	}
	return ev
}

// Observe registers the socket behind rc with one-shot read interest (plus
// RDHUP) and calls cb on events. rc is typically from
// (*net.TCPConn).SyscallConn; the socket's own fd is registered, so it
// stays non-blocking and its deadlines keep working.
//
// cb runs on the poller goroutine with d's mutex held, once per armed
// interest that became ready: read interest is re-armed with Resume, write
// interest with WantWrite. cb must return quickly (schedule work elsewhere),
// must not call Poller methods for the same Desc (that deadlocks), and may
// call them for other Descs. cb must not be nil. cb may run before Observe
// has returned d to the caller.
//
// A socket can be observed by one Desc at a time; close it only through
// CloseSocket.
func (p *Poller) Observe(rc syscall.RawConn, cb func(Event)) (*Desc, error) {
	if cb == nil {
		panic("netpoll: Observe with nil callback")
	}
	d := &Desc{fd: -1, readArmed: true, cb: cb}
	d.mu.Lock()
	defer d.mu.Unlock()
	var addErr error
	// Adding inside Control keeps the fd from being closed meanwhile.
	err := rc.Control(func(fd uintptr) {
		d.fd = int32(fd)
		addErr = p.register(int(fd), d.events(), d)
	})
	if err == nil {
		err = addErr
	}
	if err != nil {
		d.stopped = true
		if errors.Is(err, ErrClosed) {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("netpoll: observe fd %d: %w", d.fd, err)
	}
	return d, nil
}

// Resume re-arms one-shot read interest after the caller has finished a
// read task for d. Resuming an armed Desc does nothing. It returns
// ErrNotObserved if d was stopped or the Poller closed.
func (p *Poller) Resume(d *Desc) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return ErrNotObserved
	}
	if d.readArmed {
		return nil
	}
	d.readArmed = true
	return p.arm(d)
}

// WantWrite arms one-shot write interest in addition to any armed read
// interest; cb gets EventWrite (or EventErr/EventHup) once the socket is
// writable. It is used when the kernel send buffer is full. It returns
// ErrNotObserved if d was stopped or the Poller closed.
func (p *Poller) WantWrite(d *Desc) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return ErrNotObserved
	}
	if d.writeWanted {
		return nil
	}
	d.writeWanted = true
	return p.arm(d)
}

// arm sets d's kernel registration to its interest. d.mu must be held.
func (p *Poller) arm(d *Desc) error {
	err := p.modify(int(d.fd), d.events())
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrClosed) {
		// Close is about to deliver EventClosed, or has done so.
		return ErrNotObserved
	}
	return fmt.Errorf("netpoll: arm fd %d: %w", d.fd, err)
}

// Stop removes d from the epoll set. After Stop returns no callback for d
// starts or is running. It does not close the socket: use CloseSocket for that.
// Stop is idempotent: a second call, or a call after Close, returns
// ErrNotObserved.
func (p *Poller) Stop(d *Desc) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return ErrNotObserved
	}
	d.stopped = true
	d.readArmed, d.writeWanted = false, false
	err := p.unregister(int(d.fd))
	if err == nil || errors.Is(err, ErrClosed) {
		// Closed: the wait loop is gone and d will get no EventClosed.
		return nil
	}
	return fmt.Errorf("netpoll: stop fd %d: %w", d.fd, err)
}

// dispatchClosed delivers EventClosed to d unless it was stopped. It runs
// on the goroutine calling Close, after the wait loop has ended.
func (p *Poller) dispatchClosed(d *Desc) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.stopped = true
	d.readArmed, d.writeWanted = false, false
	d.cb(EventClosed)
}

// dispatch delivers the epoll events ev to d. It runs on the poller
// goroutine.
//
// EPOLLONESHOT has disarmed the whole registration, so dispatch delivers
// what was armed and re-arms whatever interest remains. Read-side
// conditions reach only an armed reader; EPOLLERR and EPOLLHUP also reach a
// write waiter, so that it learns of a dead socket.
func (p *Poller) dispatch(d *Desc, ev uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return // stale event fetched before Stop, or after Close took the table
	}

	var out Event
	if ev&unix.EPOLLERR != 0 {
		out |= EventErr
	}
	if ev&unix.EPOLLHUP != 0 {
		out |= EventHup
	}
	// EventRead and EventWrite say which interest fired, so that a caller
	// runs at most one reader and one writer per Desc: a read or write
	// attempt will not block (it returns data, EOF or the error).
	var e Event
	if d.readArmed && ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		d.readArmed = false
		e |= EventRead | out
		if ev&unix.EPOLLRDHUP != 0 {
			e |= EventHup
		}
	}
	if d.writeWanted && ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		d.writeWanted = false
		e |= EventWrite | out
	}
	if d.readArmed || d.writeWanted {
		if err := p.arm(d); err != nil && err != ErrNotObserved {
			p.cfg.onError(err)
		}
	}
	if e != 0 {
		d.cb(e)
	}
}
