package rawio

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pair(t *testing.T) (syscall.RawConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	rc, err := server.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc, client
}

func TestReadWrite(t *testing.T) {
	rc, client := pair(t)
	buf := make([]byte, 16)
	if n, err := Read(rc, buf); n != 0 || err != nil {
		t.Fatalf("read with nothing there = %d, %v; want 0, nil (EAGAIN)", n, err)
	}
	if n, err := Write(rc, []byte("hello")); n != 5 || err != nil {
		t.Fatalf("write = %d, %v", n, err)
	}
	got := make([]byte, 5)
	if _, err := client.Read(got); err != nil || string(got) != "hello" {
		t.Fatalf("client got %q, %v", got, err)
	}
	client.Write([]byte("x"))
	client.Close()
	var n int
	var err error
	for n == 0 && err == nil { // the byte and the FIN may not have arrived yet
		n, err = Read(rc, buf)
	}
	if n != 1 {
		t.Fatalf("read = %d, %v; want the byte", n, err)
	}
	for err == nil {
		_, err = Read(rc, buf)
	}
	if !errors.Is(err, ErrEOF) {
		t.Fatalf("read after close = %v, want ErrEOF", err)
	}
}

func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector; make test runs this without it")
	}
	rc, _ := pair(t)
	buf := make([]byte, 16)
	if a := testing.AllocsPerRun(100, func() { Read(rc, buf) }); a != 0 {
		t.Fatalf("Read allocates %.1f times", a)
	}
}
