package gateway

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/internal/rawio"
)

// The first stage of a socket's life. Serve's loop takes each socket from
// the listener (a bare fd on Linux, see fdSock), waiting first for a token
// of the AcceptRate bucket and backing off after accept errors; the pool
// then registers it with the poller (open), and its first readable event
// starts the handshake (handshake.go). When the pool stays busy the socket
// is refused with 503 and accepting pauses, so the kernel's backlog and
// the load balancer take the pressure.

// acceptLoop is the accept loop of Serve on ln: raw takes its sockets as bare
// fds, or is nil for a listener that gives net.Conns.
func (s *Server) acceptLoop(ln net.Listener, raw *rawAccepter) error {
	var backoff time.Duration
	for {
		if !s.acceptToken() {
			return ErrServerClosed
		}
		var (
			a   accepted
			err error
		)
		if raw != nil {
			var lerr error
			a.fd, a.sa, err, lerr = raw.accept()
			if lerr != nil {
				return ErrServerClosed // the listener is closed
			}
		} else {
			a.fd = -1
			a.nc, err = ln.Accept()
		}
		if err != nil {
			if s.stopping.Load() || errors.Is(err, net.ErrClosed) {
				return ErrServerClosed
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.metrics.acceptErrors.Inc()
			if ok, held := s.acceptErrs.Allow(); ok {
				s.log.Warn("accept failed; backing off", zap.Error(err), zap.Duration("backoff", backoff), zap.Int("suppressed", held))
			}
			if !s.pause(backoff) {
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		err = s.pool.ScheduleTimeout(s.cfg.UpgradeScheduleTimeout, func() { s.open(a) })
		if err != nil {
			s.metrics.upgrades[resultBusy].Inc()
			a.refuseBusy()
			if !s.pause(5 * time.Millisecond) {
				return ErrServerClosed
			}
		}
	}
}

// accepted is a socket from the accept loop: a bare fd and its peer
// address, or a net.Conn when the listener gives only those.
type accepted struct {
	fd int
	sa unix.Sockaddr
	nc net.Conn
}

// rawConn returns the socket's syscall.RawConn and its closer; for a bare
// fd both are c.sock.
func (a accepted) rawConn(c *Conn) (syscall.RawConn, io.Closer, error) {
	if a.nc == nil {
		c.sock.fd = int32(a.fd)
		return &c.sock, &c.sock, nil
	}
	sc, ok := a.nc.(syscall.Conn)
	if !ok {
		return nil, nil, errors.New("gateway: the listener's connections expose no file descriptor")
	}
	rc, err := sc.SyscallConn()
	return rc, a.nc, err
}

func (a accepted) close() {
	if a.nc != nil {
		a.nc.Close()
		return
	}
	unix.Close(a.fd)
}

// peerAddr returns the address of an accepted socket: from accept4's
// sockaddr for a bare fd, or the net.Conn's remote address.
func (a accepted) peerAddr() netip.Addr {
	switch sa := a.sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(sa.Addr)
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(sa.Addr)
	}
	if a.nc != nil {
		if ta, ok := a.nc.RemoteAddr().(*net.TCPAddr); ok {
			addr, _ := netip.AddrFromSlice(ta.IP)
			return addr
		}
	}
	return netip.Addr{}
}

var busyResponse = []byte("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n")

// refuseBusy answers 503 with one non-blocking write, so the accept loop
// never waits on a client, and closes the socket.
func (a accepted) refuseBusy() {
	if a.nc == nil {
		unix.Write(a.fd, busyResponse)
	} else if sc, ok := a.nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rawio.Write(rc, busyResponse)
		}
	}
	a.close()
}

// acceptToken waits for a token of the AcceptRate bucket, if there is one.
// It reports false on Close.
func (s *Server) acceptToken() bool {
	if s.acceptLimit == nil {
		return true
	}
	d := s.acceptLimit.Reserve().Delay() // never infinite: the burst is at least 1
	if d == 0 {
		return true
	}
	s.metrics.acceptThrottled.Inc()
	return s.pause(d)
}

// pause waits for d or until Close; it reports false on Close.
func (s *Server) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

// open runs on the pool for every accepted socket: it registers the socket
// with the poller, whose first readable event starts the handshake. A
// socket that sends nothing costs no worker; the sweeper drops it after
// HandshakeTimeout.
func (s *Server) open(a accepted) {
	if s.closed.Load() {
		a.close()
		return
	}
	c := &Conn{srv: s, id: s.nextID.Add(1)}
	rc, closer, err := a.rawConn(c)
	if err != nil {
		s.metrics.upgrades[resultError].Inc()
		a.close()
		return
	}
	c.rc, c.closer = rc, closer
	c.since.Store(s.clock())
	s.countPeer(c, a)
	// The poller may call back (and the upgrade task start) before
	// Observe returns; c.desc is set under c.wmu, which the read side
	// takes before it uses c.desc.
	c.wmu.Lock()
	desc, err := s.poller.Observe(rc, c.onEvent)
	if err != nil {
		c.wmu.Unlock()
		s.unadmit(c)
		s.metrics.upgrades[resultError].Inc()
		s.log.Error("observe connection", zap.Error(err))
		closer.Close()
		return
	}
	c.desc = desc
	s.hub.addConn(c)
	c.wmu.Unlock()
}
