package gateway

import (
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// rawAccepter accepts sockets as bare fds (accept4, non-blocking,
// close-on-exec) from a TCP listener, without making a net.Conn for them.
// A listener's own RawConn cannot wait (its Read is EINVAL), so it works on
// a duplicate of the listening fd as an *os.File, whose RawConn waits for
// readability through the Go runtime's poller, as Accept would. Closing the
// duplicate (Close) ends a waiting accept.
type rawAccepter struct {
	f  *os.File
	rc syscall.RawConn
}

func newRawAccepter(ln net.Listener) (*rawAccepter, bool) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, false
	}
	f, err := tl.File()
	if err != nil {
		return nil, false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, false
	}
	return &rawAccepter{f: f, rc: rc}, true
}

// Close closes the duplicate listening fd.
func (a *rawAccepter) Close() error { return a.f.Close() }

// accept returns the next socket and its peer address. An error from the
// listener itself (closed) is returned as err with fd -1; an accept error
// such as EMFILE as acceptErr.
func (a *rawAccepter) accept() (fd int, sa unix.Sockaddr, acceptErr, err error) {
	fd = -1
	err = a.rc.Read(func(lfd uintptr) bool {
		for {
			fd, sa, acceptErr = unix.Accept4(int(lfd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			switch acceptErr {
			case unix.EINTR, unix.ECONNABORTED:
				continue
			case unix.EAGAIN:
				return false // wait until the listener is readable
			}
			return true
		}
	})
	if err != nil {
		return -1, nil, nil, err
	}
	if acceptErr != nil {
		return -1, nil, acceptErr, nil
	}
	// Go's net package sets TCP_NODELAY on accepted sockets; so do we, or
	// small frames would wait for Nagle and delayed ACKs.
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	return fd, sa, nil, nil
}
