package gateway

import (
	"hash/maphash"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"
)

// The admission limits, checked where each can be answered best:
//   - AcceptRate in the accept loop, which waits for a token: the kernel's
//     backlog holds the clients meanwhile, and nothing is refused;
//   - MaxConns (503) and MaxConnsPerIP (429) once the upgrade request is
//     read, so the client gets an HTTP answer and no unread request makes
//     the kernel reset the socket over it;
//   - MaxUserConns at the welcome, under the hub lock of the user channel,
//     where the user's sockets are counted exactly; it answers with a close
//     code a browser can see;
//   - MessageRate on each client message, in the read task.

// ipTable counts sockets per peer address, from accept to release. A
// client is keyed by a 64-bit hash of its address, so the table holds a
// small entry per address and a connection only its key.
type ipTable struct {
	seed   maphash.Seed
	shards [64]ipShard
}

type ipShard struct {
	mu sync.Mutex // protects m
	m  map[uint64]int32
}

func newIPTable() *ipTable {
	t := &ipTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[uint64]int32)
	}
	return t
}

// key returns the nonzero key of addr.
func (t *ipTable) key(addr netip.Addr) uint64 {
	b := addr.Unmap().As16()
	return maphash.Bytes(t.seed, b[:]) | 1
}

// add counts one more socket for key and returns the count.
func (t *ipTable) add(key uint64) int {
	s := &t.shards[key%uint64(len(t.shards))]
	s.mu.Lock()
	n := s.m[key] + 1
	s.m[key] = n
	s.mu.Unlock()
	return int(n)
}

// count returns the sockets counted for key.
func (t *ipTable) count(key uint64) int {
	s := &t.shards[key%uint64(len(t.shards))]
	s.mu.Lock()
	n := s.m[key]
	s.mu.Unlock()
	return int(n)
}

// remove counts one socket less for key.
func (t *ipTable) remove(key uint64) {
	s := &t.shards[key%uint64(len(t.shards))]
	s.mu.Lock()
	if n := s.m[key] - 1; n > 0 {
		s.m[key] = n
	} else {
		delete(s.m, key)
	}
	s.mu.Unlock()
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

// countPeer counts a new socket against its address when MaxConnsPerIP is
// set. The count is dropped in release.
func (s *Server) countPeer(c *Conn, a accepted) {
	if s.cfg.MaxConnsPerIP <= 0 {
		return
	}
	if addr := a.peerAddr(); addr.IsValid() {
		c.ipKey = s.ips.key(addr)
		s.ips.add(c.ipKey)
	}
}

// admit takes a place for c under MaxConns and MaxConnsPerIP at upgrade,
// and returns the upgrade result that refuses it, or 0. The place is given
// back in release.
func (s *Server) admit(c *Conn) upgradeResult {
	if c.ipKey != 0 && s.ips.count(c.ipKey) > s.cfg.MaxConnsPerIP {
		return resultIPLimit
	}
	if s.cfg.MaxConns > 0 {
		if s.admitted.Add(1) > int64(s.cfg.MaxConns) {
			s.admitted.Add(-1)
			return resultConnLimit
		}
		c.admitted = true
	}
	return 0
}

// unadmit gives back what countPeer and admit took. It runs once, from
// release.
func (s *Server) unadmit(c *Conn) {
	if c.ipKey != 0 {
		s.ips.remove(c.ipKey)
	}
	if c.admitted {
		s.admitted.Add(-1)
	}
}

// allowMessage applies MessageRate to one more client message at server
// clock now and reports whether it is within the limit. It is the generic
// cell rate algorithm: msgTAT is the theoretical arrival time of the next
// message, at most MessageBurst intervals ahead of now. Only the read task
// calls it.
func (c *Conn) allowMessage(now uint32) bool {
	interval, tolerance := c.srv.msgInterval, c.srv.msgTolerance
	if interval == 0 {
		return true
	}
	// ahead is how far msgTAT is ahead of now. Behind now, or further ahead
	// than it can legitimately be (the clock wrapped over a month-long
	// silence), it restarts from now.
	ahead := int32(c.msgTAT - now)
	if ahead < 0 || ahead > int32(tolerance+interval) {
		c.msgTAT, ahead = now, 0
	}
	if uint32(ahead) > tolerance {
		return false
	}
	c.msgTAT += interval
	return true
}

// joinUser adds c to the members of its user channel name under the
// MaxUserConns limit. It reports false when c must be refused (RejectNew);
// under CloseOldest it returns the user's oldest connection, for the caller
// to close once it holds no lock. A connection named for replacement is
// marked, so that it no longer counts and a concurrent join of the same
// user picks another: two tabs reconnecting at once leave the user at the
// limit, not above it.
func (h *hub) joinUser(c *Conn, name string, limit int, policy UserConnsPolicy) (oldest *Conn, ok bool) {
	s := h.chanShard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.set(name)
	if limit > 0 {
		live, o := ms.live()
		if live >= limit {
			if policy == RejectNew {
				return nil, false
			}
			o.replaced = true
			oldest = o
		}
	}
	ms.add(c)
	return oldest, true
}

// live returns how many members are not being replaced, and the oldest of
// them (ids grow with accepts). The shard lock must be held.
func (ms *memberSet) live() (n int, oldest *Conn) {
	visit := func(c *Conn) {
		if c.replaced {
			return
		}
		n++
		if oldest == nil || c.id < oldest.id {
			oldest = c
		}
	}
	for _, c := range ms.list {
		visit(c)
	}
	for c := range ms.set {
		visit(c)
	}
	return n, oldest
}
