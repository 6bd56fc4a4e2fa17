package gateway

import (
	"errors"

	"github.com/wsgate/wsgate/internal/rawio"
)

// Writes never block: a frame goes to the socket with one non-blocking
// write(2); what the kernel does not take waits in the connection's write
// queue, which holds references to the shared frames (no copies) and is
// flushed when the poller reports the socket writable. A queue over
// WriteQueueLimit bytes, or one that makes no progress for WriteTimeout,
// closes the connection as a slow consumer; nobody else waits for it.

// writeQueue is the backlog of one connection; it exists only while the
// socket does not take what is written.
type writeQueue struct {
	frames [][]byte // frames[0][off:] is the next byte to write
	off    int
	bytes  int // bytes waiting in frames
}

var errQueueFull = errors.New("gateway: write queue full")

// write sends a notification or reply frame to c and reports whether it
// was written or queued. A failure closes c.
func (c *Conn) write(frame []byte) bool {
	c.wmu.Lock()
	if c.state.Load() != stateOpen {
		c.wmu.Unlock()
		return false
	}
	err := c.writeLocked(frame, false)
	c.wmu.Unlock()
	c.closeOnWriteError(err)
	return err == nil
}

// writeDurable is write for the live frame of durable notification seq on
// channel name: while that channel replays on c (resume.go), the frame is
// held, to follow the replay.
func (c *Conn) writeDurable(frame []byte, name string, seq uint64) bool {
	c.wmu.Lock()
	if c.state.Load() != stateOpen {
		c.wmu.Unlock()
		return false
	}
	held, err := c.holdLive(name, seq, frame)
	if !held {
		err = c.writeLocked(frame, false)
	}
	c.wmu.Unlock()
	c.closeOnWriteError(err)
	return err == nil
}

// closeOnWriteError closes c after a failed write: a full queue is a slow
// consumer, anything else a broken socket. A nil error does nothing.
func (c *Conn) closeOnWriteError(err error) {
	switch {
	case err == errQueueFull:
		c.close(ReasonSlowConsumer)
	case err != nil:
		c.close(ReasonWriteError)
	}
}

// writeCloseLocked sends a close frame, which may go over the queue limit:
// it is the last frame. Pings and pongs may not, or a client that sends
// pings and never reads would grow its queue without bound. c.wmu must be
// held.
func (c *Conn) writeCloseLocked(frame []byte) error {
	return c.writeLocked(frame, true)
}

// writeLocked writes frame or queues it behind what already waits. c.wmu
// must be held.
func (c *Conn) writeLocked(frame []byte, force bool) error {
	if c.wq != nil {
		return c.enqueue(frame, force)
	}
	n, err := c.sysWrite(frame)
	if err != nil {
		return err
	}
	if n == len(frame) {
		return nil
	}
	c.wq = &writeQueue{}
	c.since.Store(c.srv.clock())
	if err := c.enqueue(frame[n:], force); err != nil {
		return err
	}
	if c.desc == nil {
		return nil // the upgrade observes the socket next and flushes then
	}
	return c.srv.poller.WantWrite(c.desc)
}

func (c *Conn) enqueue(p []byte, force bool) error {
	q := c.wq
	if !force && q.bytes+len(p) > c.srv.cfg.WriteQueueLimit {
		return errQueueFull
	}
	q.frames = append(q.frames, p)
	q.bytes += len(p)
	c.srv.queuedBytes.Add(int64(len(p)))
	return nil
}

// flush writes the queue when the socket is writable again. It runs as a
// pool task.
func (c *Conn) flush() {
	c.wmu.Lock()
	err := c.flushLocked()
	answered := c.peerClosed && c.wq == nil
	c.wmu.Unlock()
	if err != nil {
		c.close(ReasonWriteError)
	}
	if err != nil || answered {
		c.finishClose()
	}
}

func (c *Conn) flushLocked() error {
	q := c.wq
	if q == nil || c.state.Load() == stateClosed {
		return nil
	}
	for len(q.frames) > 0 {
		p := q.frames[0][q.off:]
		n, err := c.sysWrite(p)
		if err != nil {
			return err
		}
		q.bytes -= n
		c.srv.queuedBytes.Add(-int64(n))
		if n > 0 && c.state.Load() == stateOpen {
			c.since.Store(c.srv.clock()) // progress; a closing conn keeps its deadline
		}
		if n < len(p) {
			q.off += n
			return c.srv.poller.WantWrite(c.desc)
		}
		q.frames[0] = nil
		q.frames = q.frames[1:]
		q.off = 0
	}
	c.wq = nil
	if c.state.Load() == stateOpen {
		c.since.Store(0)
	}
	return nil
}

// sysWrite makes one non-blocking write(2) on the socket. It returns the
// bytes written, which may be fewer than len(p) (0 when the socket buffer is
// full), or an error other than EAGAIN.
func (c *Conn) sysWrite(p []byte) (int, error) {
	n, err := rawio.Write(c.rc, p)
	c.srv.bytesOut.Add(uint64(n))
	return n, err
}
