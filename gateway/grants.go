package gateway

import (
	"strings"
	"sync"
)

// grants are the patterns a connection's token allows: the topics it may
// join and the channels it may send upstream on. They are read-only once
// made. Most users of a fleet hold one of a few claim sets, so equal grants
// are made once and shared (grantTable): a connection pays one pointer for
// them, not two slices.
type grants struct {
	channels []string
	upstream []string
}

// noGrants allows nothing; devGrants is InsecureAuth's: every topic, every
// upstream channel.
var (
	noGrants  = &grants{}
	devGrants = &grants{channels: allTopics, upstream: allChannels}
)

// maxSharedGrants bounds the grant table: beyond it, new claim sets are not
// shared, so tokens that each carry their own patterns cannot grow it
// without limit.
const maxSharedGrants = 4096

// grantTable shares equal grants between connections.
type grantTable struct {
	mu sync.RWMutex // protects m
	m  map[string]*grants
}

// get returns the shared grants of id's patterns.
func (t *grantTable) get(id *Identity) *grants {
	switch {
	case len(id.Channels) == 0 && len(id.Upstream) == 0:
		return noGrants
	case sameSlice(id.Channels, allTopics) && sameSlice(id.Upstream, allChannels):
		return devGrants
	}
	key := grantKey(id)
	t.mu.RLock()
	g := t.m[key]
	t.mu.RUnlock()
	if g != nil {
		return g
	}
	g = &grants{channels: id.Channels, upstream: id.Upstream}
	t.mu.Lock()
	defer t.mu.Unlock()
	if shared := t.m[key]; shared != nil {
		return shared
	}
	if t.m == nil {
		t.m = make(map[string]*grants)
	}
	if len(t.m) < maxSharedGrants {
		t.m[key] = g
	}
	return g
}

// grantKey is the table key of id's patterns: patterns hold no spaces or
// newlines, so these separators keep distinct sets distinct.
func grantKey(id *Identity) string {
	return strings.Join(id.Channels, " ") + "\n" + strings.Join(id.Upstream, " ")
}

// sameSlice reports whether a and b are the same backing array and length:
// the identity came from InsecureAuth.
func sameSlice(a, b []string) bool {
	return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0]
}
