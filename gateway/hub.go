package gateway

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/wsgate/wsgate/internal/channel"
)

// shardCount is the number of shards of each hub map. Locks are per shard,
// so joins, leaves and fan-out snapshots of unrelated channels or
// connections rarely meet.
const shardCount = 256

// smallSet is the largest member set kept as a slice; most channels are
// user channels with one or two sockets, and a slice costs a fraction of a
// map.
const smallSet = 16

// hub holds every connection (for broadcast, heartbeats and shutdown) and
// the local members of every channel (for fan-out).
//
// Lock order: Conn.wmu before any shard lock. Nothing blocks and nothing
// writes to a socket while holding a shard lock: fan-out copies members out
// first.
type hub struct {
	seed  maphash.Seed
	conns [shardCount]connShard
	chans [shardCount]chanShard
	users atomic.Int64 // user channels with members: the distinct users
}

type connShard struct {
	mu sync.RWMutex // protects m
	m  map[*Conn]struct{}
}

type chanShard struct {
	mu sync.RWMutex // protects m
	m  map[string]*memberSet
}

// memberSet is the local members of one channel: a slice while small, a
// map beyond smallSet.
type memberSet struct {
	list []*Conn
	set  map[*Conn]struct{}
}

func newHub() *hub {
	h := &hub{seed: maphash.MakeSeed()}
	for i := range h.conns {
		h.conns[i].m = make(map[*Conn]struct{})
		h.chans[i].m = make(map[string]*memberSet)
	}
	return h
}

func (h *hub) connShard(c *Conn) *connShard { return &h.conns[c.id%shardCount] }

func (h *hub) chanShard(name string) *chanShard {
	return &h.chans[maphash.String(h.seed, name)%shardCount]
}

func (h *hub) addConn(c *Conn) {
	s := h.connShard(c)
	s.mu.Lock()
	s.m[c] = struct{}{}
	s.mu.Unlock()
}

func (h *hub) removeConn(c *Conn) {
	s := h.connShard(c)
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
}

// join adds c to the members of name and reports whether it was not a
// member before.
func (h *hub) join(c *Conn, name string) bool {
	s := h.chanShard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set(name).add(c)
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
	ms := s.m[name]
	if ms == nil {
		ms = s.set(name)
		h.users.Add(1)
	}
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

// set returns the member set of name, made empty if there is none. s.mu
// must be held.
func (s *chanShard) set(name string) *memberSet {
	ms := s.m[name]
	if ms == nil {
		ms = &memberSet{list: make([]*Conn, 0, 1)}
		s.m[name] = ms
	}
	return ms
}

// leave removes c from the members of name and reports whether it was a
// member.
func (h *hub) leave(c *Conn, name string) bool {
	s := h.chanShard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.m[name]
	if ms == nil || !ms.remove(c) {
		return false
	}
	if ms.len() == 0 {
		delete(s.m, name)
		if strings.HasPrefix(name, userPrefix) {
			h.users.Add(-1)
		}
	}
	return true
}

// userPrefix starts every user channel.
const userPrefix = channel.UserKind + "."

// appendMembers appends the local members of name to dst.
func (h *hub) appendMembers(name string, dst []*Conn) []*Conn {
	s := h.chanShard(name)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ms := s.m[name]; ms != nil {
		dst = append(dst, ms.list...)
		for c := range ms.set {
			dst = append(dst, c)
		}
	}
	return dst
}

// conn returns the connection with id, or nil.
func (h *hub) conn(id uint64) *Conn {
	s := &h.conns[id%shardCount]
	s.mu.RLock()
	defer s.mu.RUnlock()
	for c := range s.m {
		if c.id == id {
			return c
		}
	}
	return nil
}

// topics returns how many topic channels have local members.
func (h *hub) topics() int {
	n := 0
	for i := range h.chans {
		s := &h.chans[i]
		s.mu.RLock()
		for name := range s.m {
			if channel.IsTopic(name) {
				n++
			}
		}
		s.mu.RUnlock()
	}
	return n
}

// members returns how many local connections are members of name.
func (h *hub) members(name string) int {
	s := h.chanShard(name)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ms := s.m[name]; ms != nil {
		return ms.len()
	}
	return 0
}

// channelChunks appends the members of name to chunks of at most size
// connections, taking new chunks from take, and returns the chunks.
func (h *hub) channelChunks(name string, dst []*chunk, take func() *chunk) []*chunk {
	s := h.chanShard(name)
	s.mu.RLock()
	defer s.mu.RUnlock()
	ms := s.m[name]
	if ms == nil {
		return dst
	}
	if ms.set == nil {
		for _, c := range ms.list {
			dst = addToChunks(dst, c, take)
		}
		return dst
	}
	for c := range ms.set {
		dst = addToChunks(dst, c, take)
	}
	return dst
}

// shardChunks appends the connections of conn shard i to chunks.
func (h *hub) shardChunks(i int, dst []*chunk, take func() *chunk) []*chunk {
	s := &h.conns[i]
	s.mu.RLock()
	defer s.mu.RUnlock()
	for c := range s.m {
		dst = addToChunks(dst, c, take)
	}
	return dst
}

// appendShard appends every connection of conn shard i to dst.
func (h *hub) appendShard(i int, dst []*Conn) []*Conn {
	s := &h.conns[i]
	s.mu.RLock()
	defer s.mu.RUnlock()
	for c := range s.m {
		dst = append(dst, c)
	}
	return dst
}

// count returns the number of connections in the hub.
func (h *hub) count() int {
	n := 0
	for i := range h.conns {
		s := &h.conns[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

func addToChunks(dst []*chunk, c *Conn, take func() *chunk) []*chunk {
	if len(dst) == 0 || dst[len(dst)-1].full() {
		dst = append(dst, take())
	}
	last := dst[len(dst)-1]
	last.conns = append(last.conns, c)
	// c.deflate is written before the welcome opens c: read it only then
	// (the hub holds connections still in their handshake too).
	last.deflate = last.deflate || c.state.Load() == stateOpen && c.deflate
	return dst
}

func (ms *memberSet) len() int {
	if ms.set != nil {
		return len(ms.set)
	}
	return len(ms.list)
}

func (ms *memberSet) add(c *Conn) bool {
	if ms.set != nil {
		if _, ok := ms.set[c]; ok {
			return false
		}
		ms.set[c] = struct{}{}
		return true
	}
	for _, m := range ms.list {
		if m == c {
			return false
		}
	}
	if len(ms.list) < smallSet {
		ms.list = append(ms.list, c)
		return true
	}
	ms.set = make(map[*Conn]struct{}, 2*smallSet)
	for _, m := range ms.list {
		ms.set[m] = struct{}{}
	}
	ms.set[c] = struct{}{}
	ms.list = nil
	return true
}

func (ms *memberSet) remove(c *Conn) bool {
	if ms.set != nil {
		if _, ok := ms.set[c]; !ok {
			return false
		}
		delete(ms.set, c)
		return true
	}
	for i, m := range ms.list {
		if m == c {
			last := len(ms.list) - 1
			ms.list[i] = ms.list[last]
			ms.list[last] = nil
			ms.list = ms.list[:last]
			return true
		}
	}
	return false
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
