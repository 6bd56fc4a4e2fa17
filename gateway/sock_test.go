package gateway

import (
	"errors"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

func fdOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

// A socket closed while a read is on its fd is closed by that read when it
// ends, never under it, so the fd number cannot be reused meanwhile.
func TestFdSockCloseWaitsForUse(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	s := &fdSock{fd: int32(fds[0])}
	err = s.Read(func(fd uintptr) bool {
		s.Close()
		if !fdOpen(int(fd)) {
			t.Error("the fd was closed under a read")
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if fdOpen(fds[0]) {
		t.Fatal("the fd is still open after the read that outlived Close")
	}
	if err := s.Write(func(uintptr) bool { t.Error("a write ran on a closed socket"); return true }); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %v, want net.ErrClosed", err)
	}
}

func TestFdSockCloseIdle(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	s := &fdSock{fd: int32(fds[0])}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fdOpen(fds[0]) {
		t.Fatal("Close of an idle socket did not close its fd")
	}
	if err := s.Control(func(uintptr) { t.Error("Control ran on a closed socket") }); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Control after Close = %v", err)
	}
}
