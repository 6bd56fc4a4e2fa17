package report

import (
	"fmt"
	"strings"
)

// Control is the control scenario: presence queries and disconnects sent
// through NATS to every gateway with control.Client, one at a time, after
// the ramp.
type Control struct {
	// Gateways is the client's Expect: a request ends when this many
	// gateways answered (or after its 2 s timeout).
	Gateways int `json:"gateways"`

	// Queries are presence queries of random users of the run; Complete
	// those answered by every gateway, Online those that found the user's
	// socket, Errors those that failed (no gateway answered).
	Queries         int64       `json:"queries"`
	QueriesComplete int64       `json:"queries_complete"`
	QueriesOnline   int64       `json:"queries_online"`
	QueryErrors     int64       `json:"query_errors"`
	QueriesPerS     float64     `json:"queries_per_s"`       // one at a time: 1 / mean latency
	PresenceLatency Percentiles `json:"presence_latency_us"` // call → every gateway's answer gathered

	// Disconnects of distinct random users, with Reason. Complete: every
	// gateway answered; SocketsClosed: the gateways' count of sockets
	// they closed. DisconnectLatency is the call → every answer gathered;
	// CloseFrames and CloseLatency are the close frames the clients read,
	// call → the frame read by the client's socket.
	Reason              string           `json:"reason"`
	Disconnects         int64            `json:"disconnects"`
	DisconnectsComplete int64            `json:"disconnects_complete"`
	DisconnectErrors    int64            `json:"disconnect_errors"`
	SocketsClosed       int64            `json:"sockets_closed"`
	DisconnectLatency   Percentiles      `json:"disconnect_latency_us"`
	CloseFrames         int64            `json:"close_frames"`
	CloseLatency        Percentiles      `json:"close_latency_us"`
	CloseCodes          map[string]int64 `json:"close_codes"` // the clients' dropped_by_reason
	Errors              []string         `json:"errors,omitempty"`
}

// Upstream is the upstream scenario: request ops sent by the clients at a
// fixed rate, answered by a responder on NATS through one gateway.
type Upstream struct {
	Channel     string           `json:"channel"`
	Connections int64            `json:"connections"` // those that sent
	RatePerS    float64          `json:"rate_per_s"`  // asked, in total
	Sent        int64            `json:"sent"`
	WriteFailed int64            `json:"write_failed"`
	SendS       float64          `json:"send_s"`        // first → last request written
	SentPerS    float64          `json:"sent_per_s"`    // Sent / SendS
	Replies     int64            `json:"replies"`       // reply frames read
	RepliesPerS float64          `json:"replies_per_s"` // Replies / (first request → last reply)
	Errors      map[string]int64 `json:"errors"`        // error frames by code
	Answered    int64            `json:"answered"`      // requests wsbench's responder answered; -1 with --no-responder
	Latency     Percentiles      `json:"latency_us"`    // request written (ts in its data) → reply read
	// CPU over the window (first request → replies settled), per 1,000
	// requests sent: the gateway's (--server-pid), the NATS server's
	// (--nats-pid) and wsbench's (clients and responder); -1 when not
	// measured. The shares are CPU seconds per second of the window.
	ServerCPUPer1000 float64 `json:"server_cpu_ms_per_1000"`
	NATSCPUPer1000   float64 `json:"nats_cpu_ms_per_1000"`
	ClientCPUPer1000 float64 `json:"client_cpu_ms_per_1000"`
	WindowS          float64 `json:"window_s"`
	ServerCPUShare   float64 `json:"server_cpu_share"`
	NATSCPUShare     float64 `json:"nats_cpu_share"`
	ClientCPUShare   float64 `json:"client_cpu_share"`
}

// Revocations are what --revocations stored before the ramp.
type Revocations struct {
	Stored   int     `json:"stored"`
	StoreS   float64 `json:"store_s"`   // storing them in the KV bucket
	VisibleS float64 `json:"visible_s"` // then until every gateway refused the last one
}

func (r *Result) writeControl(p func(string, ...any)) {
	if v := r.Revocations; v != nil {
		p("revocations\t%d stored in %.2f s, refused by every gateway %.2f s later", v.Stored, v.StoreS, v.VisibleS)
	}
	if c := r.Control; c != nil {
		p("")
		p("presence\t%d queries, %d answered by all %d gateways, %d found the user, %d failed (%s/s one at a time)",
			c.Queries, c.QueriesComplete, c.Gateways, c.QueriesOnline, c.QueryErrors, Num(c.QueriesPerS))
		p("presence µs\t%s", pct(c.PresenceLatency))
		p("disconnect\t%d users (%s), %d answered by all gateways, %d sockets closed, %d failed", c.Disconnects, c.Reason,
			c.DisconnectsComplete, c.SocketsClosed, c.DisconnectErrors)
		p("disconnect µs\t%s", pct(c.DisconnectLatency))
		p("close frame µs\t%s (call → close frame read by the client; %d of %d%s)", pct(c.CloseLatency), c.CloseFrames,
			c.SocketsClosed, reasons(c.CloseCodes))
		for _, e := range c.Errors {
			p("control error\t%s", e)
		}
	}
	if u := r.Upstream; u != nil {
		p("")
		p("upstream\t%d requests on %s from %d connections, asked %s/s, sent %s/s (%d not written)", u.Sent, u.Channel,
			u.Connections, Num(u.RatePerS), Num(u.SentPerS), u.WriteFailed)
		answered := "external responder"
		if u.Answered >= 0 {
			answered = fmt.Sprintf("%d answered by wsbench", u.Answered)
		}
		p("replies\t%d (%s/s), %s; errors%s", u.Replies, Num(u.RepliesPerS), answered, orNone(reasons(u.Errors)))
		p("reply µs\t%s", pct(u.Latency))
		cpu := func(per, share float64) string {
			if per < 0 {
				return "n/a"
			}
			return fmt.Sprintf("%.2f ms (%.0f%% of a core)", per, share*100)
		}
		p("CPU per 1000\tgateway %s, NATS %s, wsbench %s over %.2f s", cpu(u.ServerCPUPer1000, u.ServerCPUShare),
			cpu(u.NATSCPUPer1000, u.NATSCPUShare), cpu(u.ClientCPUPer1000, u.ClientCPUShare), u.WindowS)
	}
}

func orNone(s string) string {
	if s == "" {
		return " none"
	}
	return strings.TrimPrefix(s, ":")
}
