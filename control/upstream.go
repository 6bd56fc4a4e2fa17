package control

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/internal/channel"
)

// Upstream publishes what clients send up on "<prefix>.up.<channel>", with
// the user, connection and gateway in headers, and carries requests to
// their replies without a goroutine per request.
//
// Requests share one wildcard reply subscription, "<inbox>.*": each waits
// under its own last token in a map, with a timer for its timeout, and
// whichever of reply, timer or Close comes first removes it from the map
// and calls its done.
type Upstream struct {
	nc      *nats.Conn
	prefix  string // "<prefix>.up."
	gateway string
	inbox   string // "<inbox>.", the replies' subject prefix
	sub     *nats.Subscription

	mu      sync.Mutex
	pending map[string]*pending // guarded by mu: reply token → request waiting for it
	next    uint64              // guarded by mu: the last reply token given
	closed  bool                // guarded by mu
}

// pending is a request waiting for its reply.
type pending struct {
	done  func(reply []byte, err error)
	timer *time.Timer
	err   error // guarded by Upstream.mu: what the timer ends it with, when not ErrTimeout
}

// NewUpstream returns an Upstream on nc for gateway id gateway. It
// subscribes to its replies' subject at once.
func NewUpstream(nc *nats.Conn, prefix, gateway string) (*Upstream, error) {
	prefix = cmp.Or(prefix, defaultPrefix)
	if !channel.Valid(prefix) {
		return nil, fmt.Errorf("%w: subject prefix %q", ErrInvalid, prefix)
	}
	if strings.ContainsAny(gateway, "\r\n") {
		return nil, fmt.Errorf("%w: gateway id %q", ErrInvalid, gateway)
	}
	u := &Upstream{
		nc:      nc,
		prefix:  prefix + "." + SubjectUpstream + ".",
		gateway: gateway,
		inbox:   nc.NewInbox() + ".",
		pending: make(map[string]*pending),
	}
	sub, err := nc.Subscribe(u.inbox+"*", u.onReply)
	if err != nil {
		return nil, fmt.Errorf("control: subscribe to upstream replies: %w", err)
	}
	u.sub = sub
	return u, nil
}

// msg builds the upstream message of data from connection conn of user on
// channel.
func (u *Upstream) msg(channelName, user, conn string, data []byte) (*nats.Msg, error) {
	if !channel.Valid(channelName) {
		return nil, fmt.Errorf("%w: channel %q", ErrInvalid, channelName)
	}
	h := make(nats.Header, 3)
	h[HeaderUser] = []string{user}
	h[HeaderConn] = []string{conn}
	h[HeaderGateway] = []string{u.gateway}
	return &nats.Msg{Subject: u.prefix + channelName, Header: h, Data: data}, nil
}

// Publish sends data from connection conn of user on channel.
func (u *Upstream) Publish(channel, user, conn string, data []byte) error {
	m, err := u.msg(channel, user, conn, data)
	if err != nil {
		return err
	}
	return u.nc.PublishMsg(m)
}

// Request sends data like Publish and calls done once, from another
// goroutine, with the service's reply, or with ErrTimeout after timeout,
// ErrNoResponders, a *ReplyError, or another error. reply is valid only
// until done returns.
//
// A timeout of zero or less means DefaultTimeout. After Close, done gets
// ErrClosed.
func (u *Upstream) Request(channel, user, conn string, data []byte, timeout time.Duration, done func(reply []byte, err error)) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	m, err := u.msg(channel, user, conn, data)
	u.mu.Lock()
	if u.closed {
		err = ErrClosed
	}
	if err != nil {
		u.mu.Unlock()
		time.AfterFunc(0, func() { done(nil, err) })
		return
	}
	u.next++
	token := strconv.FormatUint(u.next, 36)
	p := &pending{done: done}
	p.timer = time.AfterFunc(timeout, func() { u.expire(token) })
	u.pending[token] = p
	u.mu.Unlock()

	m.Reply = u.inbox + token
	if err := u.nc.PublishMsg(m); err != nil {
		u.mu.Lock()
		if u.pending[token] == p {
			// The timer ends it now, with err, from its own goroutine.
			p.err = err
			p.timer.Reset(0)
		}
		u.mu.Unlock()
	}
}

// take removes the request waiting on token and returns it, or nil when
// it has ended already.
func (u *Upstream) take(token string) *pending {
	u.mu.Lock()
	defer u.mu.Unlock()
	p := u.pending[token]
	if p != nil {
		delete(u.pending, token)
	}
	return p
}

// expire ends the request on token when its timer fires.
func (u *Upstream) expire(token string) {
	u.mu.Lock()
	p := u.pending[token]
	if p != nil {
		delete(u.pending, token)
	}
	u.mu.Unlock()
	if p != nil {
		p.done(nil, cmp.Or(p.err, ErrTimeout))
	}
}

// onReply ends the request a reply is for.
func (u *Upstream) onReply(m *nats.Msg) {
	p := u.take(strings.TrimPrefix(m.Subject, u.inbox))
	if p == nil {
		return // late: it timed out
	}
	p.timer.Stop()
	switch {
	case noResponders(m):
		p.done(nil, ErrNoResponders)
	case m.Header.Get(HeaderError) != "":
		p.done(nil, &ReplyError{Message: m.Header.Get(HeaderError)})
	case len(m.Data) == 0 && m.Header.Get("Status") != "":
		p.done(nil, fmt.Errorf("control: status %s %s", m.Header.Get("Status"), m.Header.Get("Description")))
	default:
		p.done(m.Data, nil)
	}
}

// Pending returns how many requests wait for their reply.
func (u *Upstream) Pending() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.pending)
}

// Close unsubscribes and ends every pending request with ErrClosed,
// calling their done before it returns. Close is idempotent.
func (u *Upstream) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	u.mu.Unlock()
	err := u.sub.Unsubscribe()
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
		err = nil
	}
	u.mu.Lock()
	ended := u.pending
	u.pending = make(map[string]*pending)
	u.mu.Unlock()
	for _, p := range ended {
		p.timer.Stop()
		p.done(nil, ErrClosed)
	}
	return err
}
