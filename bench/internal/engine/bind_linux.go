package engine

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// bindAddressNoPort sets IP_BIND_ADDRESS_NO_PORT on a socket about to be
// bound to a source address. Without it, bind(addr, 0) picks the port at
// once and searches every port already bound on addr, which grows with
// the connections from that address (inet_bind2_bucket_match_addr_any was
// 3 % of the host at 500,000 connections); with it, connect picks the port
// and checks only that the 4-tuple is free.
func bindAddressNoPort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
