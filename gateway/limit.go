package gateway

import (
	"hash/maphash"
	"net/netip"
	"sync"
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

// ipTable counts sockets per peer address, from accept to free. A
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

// countPeer counts a new socket against its address when MaxConnsPerIP is
// set. The count is dropped in free.
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
// back in free.
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
// free.
func (s *Server) unadmit(c *Conn) {
	if c.ipKey != 0 {
		s.ips.remove(c.ipKey)
	}
	if c.admitted {
		s.admitted.Add(-1)
	}
}

// allowMessage applies MessageRate to one more client message at server
// clock now and reports whether it is within the limit. Only the read task
// calls it.
func (c *Conn) allowMessage(now uint32) bool {
	return allowCell(&c.msgTAT, now, c.srv.msgInterval, c.srv.msgTolerance)
}

// allowCell is the generic cell rate algorithm: *tat is the theoretical
// arrival time (server clock, ms) of the next message, at most tolerance
// ahead of now; interval is the ms per message, 0 for no limit. It reports
// whether one more message at now is within the limit.
func allowCell(tat *uint32, now, interval, tolerance uint32) bool {
	if interval == 0 {
		return true
	}
	// ahead is how far the TAT is ahead of now. Behind now, or further
	// ahead than it can legitimately be (the clock wrapped over a
	// month-long silence), it restarts from now.
	ahead := int32(*tat - now)
	if ahead < 0 || ahead > int32(tolerance+interval) {
		*tat, ahead = now, 0
	}
	if uint32(ahead) > tolerance {
		return false
	}
	*tat += interval
	return true
}
