//go:build !linux

package engine

import "syscall"

// bindAddressNoPort does nothing where IP_BIND_ADDRESS_NO_PORT does not
// exist: bind picks the port.
func bindAddressNoPort(_, _ string, _ syscall.RawConn) error { return nil }
