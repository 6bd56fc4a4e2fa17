package gateway

import (
	"errors"
	"net"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// fdSock is a socket the gateway owns as a bare file descriptor: no
// net.Conn, no netFD, no addresses, no registration with the Go runtime's
// poller (the gateway has its own epoll). That is about 0.9 KiB less per
// connection than an accepted net.Conn (see docs/capacity.md).
//
// It implements syscall.RawConn for the gateway's non-blocking reads and
// writes, whose callbacks always return true, and io.Closer. A use count
// does what the runtime's fdMutex does for a net.Conn: the fd number is
// closed (and so may be reused by a new socket) only once no Control, Read
// or Write is on it, so a late read task can never touch another socket.
type fdSock struct {
	fd    int32
	state atomic.Int32 // sockClosing | the number of calls using fd
}

const sockClosing = 1 << 30

var errWouldWait = errors.New("gateway: an fd socket never waits for readiness")

// ref takes a use reference on the fd, unless the socket is closing.
func (s *fdSock) ref() bool {
	for {
		v := s.state.Load()
		if v&sockClosing != 0 {
			return false
		}
		if s.state.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// unref drops a use reference; the last one of a closing socket closes
// the fd.
func (s *fdSock) unref() {
	if s.state.Add(-1) == sockClosing {
		unix.Close(int(s.fd)) // the last user of a closing socket closes it
	}
}

// Close closes the fd now, or when the call using it ends. It is called
// once, by the poller, after the epoll barrier.
func (s *fdSock) Close() error {
	if s.state.Or(sockClosing) == 0 {
		return unix.Close(int(s.fd))
	}
	return nil
}

// Control runs f with the fd, unless the socket is closing.
func (s *fdSock) Control(f func(fd uintptr)) error {
	if !s.ref() {
		return net.ErrClosed
	}
	f(uintptr(s.fd))
	s.unref()
	return nil
}

// Read runs f with the fd. f must return true: the gateway never waits on
// a socket.
func (s *fdSock) Read(f func(fd uintptr) bool) error { return s.use(f) }

// Write runs f with the fd. f must return true, as for Read.
func (s *fdSock) Write(f func(fd uintptr) bool) error { return s.use(f) }

func (s *fdSock) use(f func(fd uintptr) bool) error {
	if !s.ref() {
		return net.ErrClosed
	}
	done := f(uintptr(s.fd))
	s.unref()
	if !done {
		return errWouldWait
	}
	return nil
}

// remoteAddr returns the peer address of the socket behind c, for logs.
func (c *Conn) remoteAddr() string {
	var addr string
	c.rc.Control(func(fd uintptr) {
		sa, err := unix.Getpeername(int(fd))
		if err != nil {
			return
		}
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			addr = (&net.TCPAddr{IP: a.Addr[:], Port: a.Port}).String()
		case *unix.SockaddrInet6:
			addr = (&net.TCPAddr{IP: a.Addr[:], Port: a.Port}).String()
		}
	})
	return addr
}
