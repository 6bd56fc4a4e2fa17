package gateway

import (
	"math"
	"time"

	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/channel"
	"github.com/wsgate/wsgate/internal/rawio"
)

// welcome turns an upgraded connection into an open one: it makes the
// user's channel live on the bus, joins it, and sends the 101 answer resp
// and the welcome frame in one write. The join and the welcome happen
// under c.wmu, so no notification can overtake the welcome, and anything
// published after the client has it is delivered. It reports whether the
// read side should go on.
// resume, from the request's ?resume=, is resumed from the welcome on
// (resume.go).
func (s *Server) welcome(c *Conn, id Identity, resp []byte, resume urlResume) bool {
	userCh := channel.User(id.User)
	if s.cfg.MaxUserConns > 0 && s.cfg.UserConnsPolicy == RejectNew && s.hub.members(userCh) >= s.cfg.MaxUserConns {
		// Refused before the NATS round trip; joinUser checks again under
		// the lock for sockets of the user that arrive together.
		s.refuseUserLimit(c, resp)
		return false
	}
	if err := s.bus.Interest(userCh); err != nil {
		if ok, held := s.busErrs.Allow(); ok {
			s.log.Warn("subscribe user channel", zap.String("user", id.User), zap.Error(err), zap.Int("suppressed", held))
		}
		rawio.Write(c.rc, append(resp, ReasonBusError.frame()...))
		s.refuse(c, resultUnavailable, err, nil)
		return false
	}
	now := s.clock()
	c.wmu.Lock()
	if c.state.Load() != stateHandshake { // dropped meanwhile: handshake timeout or Close
		c.wmu.Unlock()
		s.bus.DropInterest(userCh)
		return false
	}
	oldest, ok := s.hub.joinUser(c, userCh, s.cfg.MaxUserConns, s.cfg.UserConnsPolicy)
	if !ok {
		c.wmu.Unlock()
		s.bus.DropInterest(userCh)
		s.refuseUserLimit(c, resp)
		return false
	}
	c.user, c.grants = id.User, s.grantTable.get(&id)
	if exp := id.Expires.Unix(); !id.Expires.IsZero() && exp > 0 && exp <= math.MaxUint32 {
		c.expires = uint32(exp) // beyond 2106 it is never, not a wrapped past
	}
	c.lastRead.Store(now)
	c.lastPing.Store(now)
	c.msgTAT = now
	c.since.Store(0)
	c.state.Store(stateOpen)
	s.metrics.connections.Inc()
	s.metrics.opened.Inc()
	if !s.cfg.ConformanceEcho { // a test client expects only its echoes
		resp = append(resp, welcomeFrame(c.srv.connID(c.id), c.user, int64(max(s.cfg.PingInterval, 0)/time.Second))...)
	}
	replays, refusal := c.resumeAtWelcome(resume)
	resp = append(resp, refusal...)
	err := c.writeLocked(resp, false)
	c.wmu.Unlock()
	for _, r := range replays {
		s.resumer.lookup(r)
	}
	s.metrics.upgrades[resultOK].Inc()
	c.closeOnWriteError(err)
	if oldest != nil {
		oldest.close(ReasonReplaced)
	}
	// Shutdown may have walked the hub between this upgrade's availability
	// check and the join above; such a connection closes itself.
	if s.stopping.Load() {
		c.close(ReasonShutdown)
	}
	return c.state.Load() != stateClosed
}

// refuseUserLimit answers an upgrade beyond MaxUserConns under RejectNew
// with the 101 and a 4002 close frame: a browser sees the code, where an
// HTTP status would reach its script as a bare 1006.
// tooManyConnsFrame follows the 101 of a connection over MaxUserConns.
var tooManyConnsFrame = closeFrame(StatusTooManyConns, "too many connections")

func (s *Server) refuseUserLimit(c *Conn, resp []byte) {
	rawio.Write(c.rc, append(resp, tooManyConnsFrame...))
	s.refuse(c, resultUserLimit, errUserLimit, nil)
}
