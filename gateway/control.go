package gateway

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/control"
	"github.com/wsgate/wsgate/internal/channel"
)

// The control plane's view of one gateway: control.Serve calls these
// methods when a service asks the fleet (package control). Each acts on
// this gateway's sockets only; the caller gathers the fleet's answers.

var _ control.Gateway = (*Server)(nil)

// ID returns the gateway's id: Config.ID, or the random one it chose. Every
// connection id it gives starts with it.
func (s *Server) ID() string { return s.idPrefix }

// userConns returns the open connections of user on this gateway.
func (s *Server) userConns(user string) []*Conn {
	if !channel.ValidUser(user) {
		return nil
	}
	conns := s.hub.appendMembers(channel.User(user), nil)
	return slices.DeleteFunc(conns, func(c *Conn) bool { return c.state.Load() != stateOpen })
}

// connByID returns the open connection with id, a connection id this
// gateway gave, or nil.
func (s *Server) connByID(id string) *Conn {
	// The gateway id may hold dashes itself: the counter is after the last.
	i := strings.LastIndexByte(id, '-')
	if i < 0 || id[:i] != s.idPrefix {
		return nil
	}
	seq, err := strconv.ParseUint(id[i+1:], 36, 64)
	if err != nil {
		return nil
	}
	if c := s.hub.conn(seq); c != nil && c.state.Load() == stateOpen {
		return c
	}
	return nil
}

// Presence answers a presence query: this gateway's totals, the sockets of
// q.User, and the subscribers of q.Topic.
func (s *Server) Presence(q control.PresenceQuery) control.GatewayPresence {
	p := control.GatewayPresence{Gateway: s.idPrefix, Connections: s.hub.count(), Users: int(s.hub.users.Load())}
	for _, c := range s.userConns(q.User) {
		c.wmu.Lock()
		topics := slices.Clone(c.topics)
		c.wmu.Unlock()
		if topics == nil {
			topics = []string{}
		}
		p.Sockets = append(p.Sockets, control.Socket{Conn: s.connID(c.id), Topics: topics})
	}
	if channel.IsTopic(q.Topic) {
		p.Subscribers = s.hub.members(q.Topic)
	}
	return p
}

// disconnectReasons maps a Disconnect's reason to the close reason, and so
// to the close code the client gets.
var disconnectReasons = map[string]CloseReason{
	control.ReasonLogout:    ReasonLogout,
	control.ReasonRevoked:   ReasonRevoked,
	control.ReasonReconnect: ReasonDisconnected,
}

// Disconnect closes the sockets d names with the close code of its reason:
// every socket of d.User, or the one with id d.Conn (of d.User, when both
// are given).
func (s *Server) Disconnect(d control.Disconnect) control.GatewayCount {
	n := control.GatewayCount{Gateway: s.idPrefix}
	reason, ok := disconnectReasons[d.Reason]
	if !ok {
		n.Error = "unknown reason " + strconv.Quote(d.Reason)
		return n
	}
	var conns []*Conn
	switch {
	case d.Conn != "":
		if c := s.connByID(d.Conn); c != nil && (d.User == "" || c.user == d.User) {
			conns = append(conns, c)
		}
	case d.User != "":
		conns = s.userConns(d.User)
	}
	for _, c := range conns {
		c.close(reason)
		n.Sockets++
	}
	return n
}

// Subscribe joins sub.Topic on every socket of sub.User, whatever its token
// allows, and tells each client with {"type":"subscribed","channel":…,
// "server":true}. Sockets counts those in the topic afterwards (those
// already in it included); Refused those at their subscription limit or
// that the bus could not subscribe. It waits for the bus to confirm the
// topic, as a client's subscribe does.
func (s *Server) Subscribe(sub control.Subscription) control.GatewayCount {
	return s.changeTopic(sub, "subscribed", func(c *Conn, frame []byte) (done, refused bool) {
		code, _ := c.join(sub.Topic, frame)
		return code == "", code != ""
	})
}

// Unsubscribe leaves sub.Topic on every socket of sub.User and tells each
// client that was in it with {"type":"unsubscribed","channel":…,
// "server":true}. Sockets counts those that left it.
func (s *Server) Unsubscribe(sub control.Subscription) control.GatewayCount {
	return s.changeTopic(sub, "unsubscribed", func(c *Conn, frame []byte) (done, refused bool) {
		return c.leave(sub.Topic, frame), false
	})
}

// changeTopic applies change to every socket of sub.User with the frame
// {"type":typ,"channel":sub.Topic,"server":true}, and counts the sockets it
// reports done in Sockets and those it reports refused in Refused.
func (s *Server) changeTopic(sub control.Subscription, typ string, change func(c *Conn, frame []byte) (done, refused bool)) control.GatewayCount {
	n := control.GatewayCount{Gateway: s.idPrefix}
	if !channel.IsTopic(sub.Topic) {
		n.Error = "not a topic channel: " + strconv.Quote(sub.Topic)
		return n
	}
	frame := serverReplyFrame(typ, sub.Topic)
	for _, c := range s.userConns(sub.User) {
		switch done, refused := change(c, frame); {
		case done:
			n.Sockets++
		case refused:
			n.Refused++
		}
	}
	return n
}

// hostname is reported by Stats.
var hostname, _ = os.Hostname()

// Stats returns this gateway's totals.
func (s *Server) Stats() control.GatewayStats {
	return control.GatewayStats{
		Gateway:     s.idPrefix,
		Host:        hostname,
		Version:     s.cfg.Version,
		Connections: s.hub.count(),
		Users:       int(s.hub.users.Load()),
		Topics:      s.hub.topics(),
		Uptime:      time.Since(s.start).Seconds(),
		Draining:    s.draining.Load(),
	}
}
