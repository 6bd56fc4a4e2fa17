//go:build !linux

package gateway

import (
	"net"

	"golang.org/x/sys/unix"
)

type rawAccepter struct{}

// newRawAccepter reports false outside Linux: sockets come as net.Conns,
// which the portable poller needs.
func newRawAccepter(net.Listener) (*rawAccepter, bool) { return nil, false }

func (*rawAccepter) accept() (fd int, sa unix.Sockaddr, acceptErr, err error) {
	return -1, nil, nil, net.ErrClosed
}

func (*rawAccepter) Close() error { return nil }
