//go:build !linux || netpoll_portable

package netpoll

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"
)

// Poller observes sockets. It is safe for concurrent use.
//
// This portable implementation, used on every system but Linux, is meant
// for development: each armed interest is one goroutine waiting in the Go
// runtime poller through syscall.RawConn, without consuming data.
type Poller struct {
	cfg Config

	mu     sync.Mutex        // protects the fields below
	closed bool              // Close has started
	descs  map[uintptr]*Desc // observed and not stopped, by socket
}

// New creates a Poller. Close must be called to release it.
func New(cfg Config) (*Poller, error) {
	return &Poller{cfg: cfg, descs: make(map[uintptr]*Desc)}, nil
}

// Desc is one observed socket.
type Desc struct {
	mu sync.Mutex // protects the fields below; held while the callback runs

	rc          syscall.RawConn
	fd          uintptr
	cb          func(Event)
	readArmed   bool // read interest is wanted
	writeWanted bool // write interest is wanted
	reading     bool // a read waiter goroutine is running
	writing     bool // a write waiter goroutine is running
	stopped     bool // stopped or Poller closed
}

// Observe registers the socket behind rc with one-shot read interest and
// calls cb on events. See the Linux documentation for the callback
// contract: cb runs with d's mutex held, must return quickly and must not
// call Poller methods for the same Desc. cb may run before Observe returns.
func (p *Poller) Observe(rc syscall.RawConn, cb func(Event)) (*Desc, error) {
	if cb == nil {
		panic("netpoll: Observe with nil callback")
	}
	d := &Desc{rc: rc, cb: cb, readArmed: true}
	if err := rc.Control(func(fd uintptr) { d.fd = fd }); err != nil {
		return nil, fmt.Errorf("netpoll: observe: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if _, ok := p.descs[d.fd]; ok {
		return nil, fmt.Errorf("netpoll: observe fd %d: already observed", d.fd)
	}
	p.descs[d.fd] = d
	d.mu.Lock()
	p.startRead(d)
	d.mu.Unlock()
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
	d.readArmed = true
	p.startRead(d)
	return nil
}

// WantWrite arms one-shot write interest in addition to any armed read
// interest. It returns ErrNotObserved if d was stopped or the Poller closed.
func (p *Poller) WantWrite(d *Desc) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return ErrNotObserved
	}
	d.writeWanted = true
	if !d.writing {
		d.writing = true
		go p.waitWrite(d)
	}
	return nil
}

// startRead starts a read waiter unless one runs. d.mu must be held.
func (p *Poller) startRead(d *Desc) {
	if !d.reading {
		d.reading = true
		go p.waitRead(d)
	}
}

func (p *Poller) waitRead(d *Desc) {
	e := waitReady(d.rc, false)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reading = false
	if d.stopped || !d.readArmed {
		return
	}
	d.readArmed = false
	d.cb(e | EventRead) // a deadline or error surfaces in the caller's Read
}

func (p *Poller) waitWrite(d *Desc) {
	e := waitReady(d.rc, true)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writing = false
	if d.stopped || !d.writeWanted {
		return
	}
	d.writeWanted = false
	d.cb(e&^EventRead | EventWrite) // an error surfaces in the caller's Write
}

// readyErr maps an error of RawConn.Read or Write to the event to deliver:
// a deadline is left to the caller's own I/O to report.
func readyErr(err error, ready Event) Event {
	var t interface{ Timeout() bool }
	if errors.As(err, &t) && t.Timeout() {
		return ready
	}
	return EventErr
}

// Stop stops observing d. After Stop returns no callback for d starts or is
// running. It does not close the socket; a waiter goroutine blocked on it
// ends when the socket becomes ready or is closed. Stop is idempotent: a
// second call, or a call after Close, returns ErrNotObserved.
func (p *Poller) Stop(d *Desc) error {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return ErrNotObserved
	}
	d.stopped = true
	d.mu.Unlock()
	p.mu.Lock()
	if p.descs[d.fd] == d {
		delete(p.descs, d.fd)
	}
	p.mu.Unlock()
	return nil
}

// CloseSocket stops d and then closes c. Without fd-keyed dispatch there are no
// stale events, so c is closed before CloseSocket returns; an error of c.Close
// goes to Config.OnError. c is closed even if d was already stopped.
func (p *Poller) CloseSocket(d *Desc, c io.Closer) error {
	err := p.Stop(d)
	if c != nil {
		if cerr := c.Close(); cerr != nil {
			p.cfg.onError(cerr)
		}
	}
	return err
}

// Heartbeat does nothing: the portable poller has no wait loop to get stuck.
func (p *Poller) Heartbeat() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	return nil
}

// LastBeat returns the current time: see Heartbeat.
func (p *Poller) LastBeat() time.Time { return time.Now() }

// Close delivers EventClosed once to every still-observed Desc. After Close
// returns no callback runs. Waiter goroutines end when their socket becomes
// ready or is closed. Close is idempotent: later calls return nil.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	descs := p.descs
	p.descs = nil
	p.mu.Unlock()
	for _, d := range descs {
		d.mu.Lock()
		if !d.stopped {
			d.stopped = true
			d.cb(EventClosed)
		}
		d.mu.Unlock()
	}
	return nil
}
