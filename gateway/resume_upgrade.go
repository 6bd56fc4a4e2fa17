package gateway

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/internal/channel"
)

// A client may also give its positions in the upgrade request, for its
// implicit channels, so that a reconnect that missed nothing costs no
// message in either direction:
//
//	GET /ws?token=…&resume=user.42:17:1764650000000,broadcast:3:1764650000000
//
// Each is resumed as if by a resume op at the welcome, under the same
// lock, so that no live frame of the channel comes before the replay and
// the client has nothing to drop. The "resumed" answer (ref 0) is sent
// only when something is missing (a reason, and count when cut); a
// replay with nothing missing sends its frames, chained from the
// client's position, or nothing at all.

// maxURLResume is how many positions ?resume= may carry: the user
// channel and broadcast.
const maxURLResume = 2

// urlPosition is one position of ?resume=.
type urlPosition struct {
	channel    string
	seq, epoch uint64
}

// urlResume is the parsed ?resume= parameter: its positions, or why it
// was refused (then none is resumed).
type urlResume struct {
	positions []urlPosition
	err       string
}

// parseResumeParam parses "<channel>:<seq>:<epoch>[,…]".
func parseResumeParam(v []byte) urlResume {
	var out urlResume
	for entry := range strings.SplitSeq(string(v), ",") {
		name, rest, ok1 := strings.Cut(entry, ":")
		seqs, epochs, ok2 := strings.Cut(rest, ":")
		seq, err1 := strconv.ParseUint(seqs, 10, 64)
		epoch, err2 := strconv.ParseUint(epochs, 10, 64)
		switch {
		case !ok1 || !ok2 || err1 != nil || err2 != nil:
			return urlResume{err: "the resume parameter is <channel>:<seq>:<epoch>, comma-separated"}
		case !channel.Valid(name):
			return urlResume{err: "the resume parameter names an invalid channel"}
		case seq > maxPosition || epoch > maxPosition || epoch == 0:
			return urlResume{err: "in the resume parameter, seq and epoch are integers below 2^53, and epoch is not 0"}
		case len(out.positions) == maxURLResume:
			return urlResume{err: "the resume parameter takes the user channel and broadcast, no more"}
		}
		out.positions = append(out.positions, urlPosition{name, seq, epoch})
	}
	return out
}

// resumeAtWelcome registers the replays of ?resume= on c, which the
// welcome has just opened, and returns them for the lookup, or the error
// frame that refuses the parameter (then none is resumed). c.wmu must be
// held.
func (c *Conn) resumeAtWelcome(u urlResume) ([]*replay, []byte) {
	if u.err == "" && len(u.positions) == 0 {
		return nil, nil
	}
	switch {
	case c.srv.history == nil:
		return nil, errorFrame(0, codeNotDurable, "durable notifications are off on this gateway")
	case u.err != "":
		return nil, errorFrame(0, codeBadRequest, u.err)
	}
	for i, p := range u.positions {
		if p.channel != channel.Broadcast && p.channel != channel.User(c.user) || slices.ContainsFunc(u.positions[:i], func(q urlPosition) bool { return q.channel == p.channel }) {
			return nil, errorFrame(0, codeBadRequest, "the resume parameter takes the connection's own user channel and broadcast, each once")
		}
	}
	now := time.Now()
	replays := make([]*replay, len(u.positions))
	for i, p := range u.positions {
		r := &replay{c: c, channel: p.channel, seq: p.seq, epoch: p.epoch, start: now, quiet: true}
		c.addReplay(r)
		replays[i] = r
	}
	c.srv.metrics.clientMessages[msgResume].Add(float64(len(replays)))
	return replays, nil
}
