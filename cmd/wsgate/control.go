package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/control"
	"github.com/wsgate/wsgate/internal/channel"
)

// The control commands ask every gateway on NATS at once (scatter-gather on
// <prefix>.ctl.*) and print what they answered: presence, disconnect,
// subscribe, unsubscribe, stats. A request ends after --timeout, once
// --expect gateways answered, or shortly after the last answer.

// controlFlags are the flags every control command takes.
type controlFlags struct {
	nats    natsFlags
	prefix  string
	timeout time.Duration
	expect  int
	json    bool
}

func (c *controlFlags) register(fs *flag.FlagSet) {
	c.nats.register(fs, defaultPublishURL, "NATS server URL(s), comma-separated: the gateways' --nats-url, or the embedded server of one")
	fs.StringVar(&c.prefix, "subject-prefix", bus.DefaultPrefix, "NATS subject prefix: the gateways' --subject-prefix")
	fs.DurationVar(&c.timeout, "timeout", control.DefaultTimeout, "how long to wait for the gateways' answers")
	fs.IntVar(&c.expect, "expect", 0, "the number of gateways: return as soon as this many answered, and fail when fewer did; 0 means unknown (wait until answers stop coming)")
	fs.BoolVar(&c.json, "json", false, "print the answers as one JSON object")
}

// The --json output: a result of the control client with how many
// gateways answered, as the HTTP API answers it.
type (
	presenceJSON struct {
		control.PresenceResult
		Answered int `json:"answered"`
	}
	countJSON struct {
		control.CountResult
		Answered int `json:"answered"`
	}
	statsJSON struct {
		control.StatsResult
		Answered int `json:"answered"`
	}
)

// controlZeroRefused are the control flags for which 0 makes no sense.
var controlZeroRefused = []string{"timeout"}

// dial connects to NATS and returns a control client with the flags'
// settings; done closes the connection.
func (c *controlFlags) dial(name string) (cl *control.Client, done func(), err error) {
	nc, err := c.nats.dial(name)
	if err != nil {
		return nil, nil, err
	}
	cl = control.NewClient(nc, c.prefix)
	cl.Timeout = c.timeout
	cl.Expect = c.expect
	if c.expect > 0 {
		cl.Stall = -1 // the fleet's size is known: wait for all of it
	}
	return cl, nc.Close, nil
}

// finish prints res (as JSON with --json, else with text) and turns err
// into the command's error: an invalid request is a usage error, and
// fewer answers than --expect a failure after the answers are printed.
func (c *controlFlags) finish(res any, answered int, err error, text func(w io.Writer)) error {
	if errors.Is(err, control.ErrInvalid) {
		return usageError{err}
	}
	if answered == 0 && err != nil {
		return err
	}
	if c.json {
		enc := json.NewEncoder(os.Stdout)
		if e := enc.Encode(res); e != nil {
			return e
		}
	} else {
		text(os.Stdout)
	}
	if err != nil {
		return err
	}
	if c.expect > 0 && answered < c.expect {
		return fmt.Errorf("%s answered, %d expected (--expect)", plural(answered, "gateway"), c.expect)
	}
	return nil
}

// controlFlagSet returns the flag set of a control command with the
// common flags registered.
func controlFlagSet(usage string, cf *controlFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(usage, flag.ContinueOnError)
	cf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\n", fs.Name())
		printFlags(fs)
	}
	return fs
}

// topicFlag is the topic channel of a --topic value: "topic.team-7" as
// given, or the name alone, "team-7", with "topic." added.
func topicFlag(v string) string {
	if v == "" || strings.HasPrefix(v, channel.TopicKind+".") {
		return v
	}
	return channel.Topic(v)
}

func presence(args []string) error {
	var cf controlFlags
	fs := controlFlagSet("wsgate presence [--user ID | --topic topic.NAME] [flags]", &cf)
	user := fs.String("user", "", "list this user's sockets on every gateway")
	topic := fs.String("topic", "", "count this topic's subscribers on every gateway (topic.team-7, or team-7)")
	if err := parse(fs, args, 0, controlZeroRefused...); err != nil {
		return err
	}
	if *user != "" && *topic != "" {
		fs.Usage()
		return usagef("presence takes --user or --topic, not both; neither gives each gateway's totals")
	}
	q := control.PresenceQuery{User: *user, Topic: topicFlag(*topic)}
	cl, done, err := cf.dial("presence")
	if err != nil {
		return err
	}
	defer done()
	r, err := cl.Presence(context.Background(), q)
	return cf.finish(presenceJSON{r, len(r.Gateways)}, len(r.Gateways), err, func(w io.Writer) { printPresence(w, q, r) })
}

// printPresence writes a presence result: the user's sockets, the topic's
// subscribers, or each gateway's totals.
func printPresence(w io.Writer, q control.PresenceQuery, r control.PresenceResult) {
	answered := plural(len(r.Gateways), "gateway") + " answered"
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	switch {
	case q.User != "":
		state := "offline"
		if r.Online {
			state = "online"
		}
		on := 0
		for _, g := range r.Gateways {
			if len(g.Sockets) > 0 {
				on++
			}
		}
		fmt.Fprintf(w, "user %s: %s, %s on %s; %s\n", q.User, state, plural(r.Sockets, "socket"), plural(on, "gateway"), answered)
		if r.Sockets == 0 && !hasErrors(r) {
			return
		}
		fmt.Fprintln(tw, "  gateway\tconnection\ttopics")
		for _, g := range r.Gateways {
			if g.Error != "" {
				fmt.Fprintf(tw, "  %s\terror: %s\n", orDash(g.Gateway), g.Error)
			}
			for _, s := range g.Sockets {
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", g.Gateway, s.Conn, orDash(strings.Join(s.Topics, ",")))
			}
		}
	case q.Topic != "":
		fmt.Fprintf(w, "%s: %s; %s\n", q.Topic, plural(r.Subscribers, "subscriber"), answered)
		fmt.Fprintln(tw, "  gateway\tsubscribers")
		for _, g := range r.Gateways {
			if g.Error != "" {
				fmt.Fprintf(tw, "  %s\terror: %s\n", orDash(g.Gateway), g.Error)
				continue
			}
			fmt.Fprintf(tw, "  %s\t%d\n", g.Gateway, g.Subscribers)
		}
	default:
		fmt.Fprintf(w, "%s: %s, %s (a user on two gateways counts twice)\n", answered,
			plural(r.Connections, "connection"), plural(r.Users, "user"))
		fmt.Fprintln(tw, "  gateway\tconnections\tusers")
		for _, g := range r.Gateways {
			if g.Error != "" {
				fmt.Fprintf(tw, "  %s\terror: %s\n", orDash(g.Gateway), g.Error)
				continue
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\n", g.Gateway, g.Connections, g.Users)
		}
	}
}

// hasErrors reports whether a gateway refused the query.
func hasErrors(r control.PresenceResult) bool {
	for _, g := range r.Gateways {
		if g.Error != "" {
			return true
		}
	}
	return false
}

func disconnect(args []string) error {
	var cf controlFlags
	fs := controlFlagSet("wsgate disconnect (--user ID | --conn ID) --reason logout|revoked|reconnect [--revoke-for D] [flags]", &cf)
	user := fs.String("user", "", "close every socket of this user, on every gateway")
	conn := fs.String("conn", "", "close the socket with this connection id (as in its welcome frame)")
	reason := fs.String("reason", "", "logout (close code 4005: do not reconnect), revoked (4006: the user's tokens issued until now are refused) or reconnect (4004: come back after the usual backoff)")
	revokeFor := fs.Duration("revoke-for", control.DefaultRevocationTTL, "with --reason revoked: how long the user's current tokens stay refused (the longest lifetime of a token issued until now)")
	if err := parse(fs, args, 0, append(controlZeroRefused, "revoke-for")...); err != nil {
		return err
	}
	if (*user == "") == (*conn == "") {
		fs.Usage()
		return usagef("disconnect needs exactly one of --user and --conn")
	}
	switch *reason {
	case control.ReasonLogout, control.ReasonRevoked, control.ReasonReconnect:
	case "":
		fs.Usage()
		return usagef("disconnect needs --reason: logout, revoked or reconnect")
	default:
		return usagef("--reason %q: must be logout, revoked or reconnect", *reason)
	}
	if given(fs, "revoke-for") && *reason != control.ReasonRevoked {
		return usagef("--revoke-for goes with --reason revoked")
	}
	d := control.Disconnect{User: *user, Conn: *conn, Reason: *reason}
	if *reason == control.ReasonRevoked && *user != "" {
		now := time.Now()
		d.Revocation = &control.Revocation{User: *user, Before: now, Until: now.Add(*revokeFor)}
	}
	cl, done, err := cf.dial("disconnect")
	if err != nil {
		return err
	}
	defer done()
	r, err := cl.Disconnect(context.Background(), d)
	if errors.Is(err, control.ErrNoDenylist) && len(r.Gateways) > 0 {
		err = fmt.Errorf("%w; the revocation holds only in the memory of the %s that answered, until they restart", err, plural(len(r.Gateways), "gateway"))
	}
	what := "user " + *user
	if *conn != "" {
		what = "connection " + *conn
	}
	return cf.finish(countJSON{r, len(r.Gateways)}, len(r.Gateways), err, func(w io.Writer) {
		printCount(w, r, fmt.Sprintf("disconnected %s of %s (%s)", plural(r.Sockets, "socket"), what, *reason))
		if *reason == control.ReasonRevoked && d.Revocation != nil {
			fmt.Fprintf(w, "tokens of user %s issued until %s are refused until %s\n", *user,
				d.Revocation.Before.UTC().Format(time.RFC3339), d.Revocation.Until.UTC().Format(time.RFC3339))
		}
	})
}

func subscribe(args []string) error   { return subscription(args, true) }
func unsubscribe(args []string) error { return subscription(args, false) }

// subscription runs wsgate subscribe, or wsgate unsubscribe when add is
// false.
func subscription(args []string, add bool) error {
	name := "subscribe"
	if !add {
		name = "unsubscribe"
	}
	var cf controlFlags
	fs := controlFlagSet("wsgate "+name+" --user ID --topic topic.NAME [flags]", &cf)
	user := fs.String("user", "", "every socket of this user, on every gateway")
	topic := fs.String("topic", "", "the topic (topic.team-7, or team-7)")
	if err := parse(fs, args, 0, controlZeroRefused...); err != nil {
		return err
	}
	if *user == "" || *topic == "" {
		fs.Usage()
		return usagef("%s needs --user and --topic", name)
	}
	s := control.Subscription{User: *user, Topic: topicFlag(*topic)}
	cl, done, err := cf.dial(name)
	if err != nil {
		return err
	}
	defer done()
	var r control.CountResult
	if add {
		r, err = cl.Subscribe(context.Background(), s)
	} else {
		r, err = cl.Unsubscribe(context.Background(), s)
	}
	summary := fmt.Sprintf("subscribed %s of user %s to %s", plural(r.Sockets, "socket"), s.User, s.Topic)
	if !add {
		summary = fmt.Sprintf("unsubscribed %s of user %s from %s", plural(r.Sockets, "socket"), s.User, s.Topic)
	}
	return cf.finish(countJSON{r, len(r.Gateways)}, len(r.Gateways), err, func(w io.Writer) { printCount(w, r, summary) })
}

// printCount writes what the gateways did: the summary line, then one row
// per gateway.
func printCount(w io.Writer, r control.CountResult, summary string) {
	if r.Refused > 0 {
		summary += fmt.Sprintf(", %d refused", r.Refused)
	}
	fmt.Fprintf(w, "%s; %s answered\n", summary, plural(len(r.Gateways), "gateway"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  gateway\tsockets\trefused")
	for _, g := range r.Gateways {
		if g.Error != "" {
			fmt.Fprintf(tw, "  %s\terror: %s\n", orDash(g.Gateway), g.Error)
			continue
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\n", g.Gateway, g.Sockets, g.Refused)
	}
	tw.Flush()
}

func stats(args []string) error {
	var cf controlFlags
	fs := controlFlagSet("wsgate stats [flags]", &cf)
	if err := parse(fs, args, 0, controlZeroRefused...); err != nil {
		return err
	}
	cl, done, err := cf.dial("stats")
	if err != nil {
		return err
	}
	defer done()
	r, err := cl.Stats(context.Background())
	return cf.finish(statsJSON{r, len(r.Gateways)}, len(r.Gateways), err, func(w io.Writer) {
		fmt.Fprintf(w, "%s answered: %s, %s (a user on two gateways counts twice)\n",
			plural(len(r.Gateways), "gateway"), plural(r.Connections, "connection"), plural(r.Users, "user"))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  gateway\thost\tconnections\tusers\ttopics\tuptime\tstate\tversion")
		for _, g := range r.Gateways {
			state := "serving"
			if g.Draining {
				state = "draining"
			}
			uptime := (time.Duration(g.Uptime) * time.Second).String()
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", g.Gateway, orDash(g.Host), g.Connections, g.Users, g.Topics, uptime, state, orDash(g.Version))
		}
		tw.Flush()
	})
}

// plural is "1 gateway", "3 gateways".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// orDash is s, or "-" for an empty table cell.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// upstreamFlags are the flags of wsgate upstream.
type upstreamFlags struct {
	nats           natsFlags
	prefix         string
	channel, queue string
	echo           bool
	reject         string
}

// upstreamLine is what wsgate upstream prints for each message.
type upstreamLine struct {
	Channel string          `json:"channel"`
	User    string          `json:"user"`
	Conn    string          `json:"conn"`
	Gateway string          `json:"gateway"`
	Data    json.RawMessage `json:"data"`
	Request bool            `json:"request"`
}

// upstream runs wsgate upstream: a stand-in for a service, for trying the
// publish and request ops of clients. It prints every message clients send
// on <prefix>.up.<channel> as a JSON line and, with --echo or --reject,
// answers requests.
func upstream(args []string) error {
	var f upstreamFlags
	fs := flag.NewFlagSet("wsgate upstream [--channel PATTERN] [--echo | --reject MESSAGE] [--queue NAME] [flags]", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\n", fs.Name())
		printFlags(fs)
	}
	f.nats.register(fs, defaultPublishURL, "NATS server URL(s), comma-separated: the gateways' --nats-url, or the embedded server of one")
	fs.StringVar(&f.prefix, "subject-prefix", bus.DefaultPrefix, "NATS subject prefix: the gateways' --subject-prefix")
	fs.StringVar(&f.channel, "channel", ">", "channels to listen on, a NATS pattern: chat.*, rpc.>, >")
	fs.StringVar(&f.queue, "queue", "", "NATS queue group: several wsgate upstream in one group share the messages")
	fs.BoolVar(&f.echo, "echo", false, `answer every request with {"echo":<its data>,"user":<the sender's user id>}`)
	fs.StringVar(&f.reject, "reject", "", "answer every request with a refusal carrying this message (header "+control.HeaderError+"); the client gets error code rejected")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if f.prefix == "" {
		f.prefix = bus.DefaultPrefix
	}
	if f.echo && f.reject != "" {
		return usagef("--echo and --reject exclude each other")
	}
	if !validPattern(f.channel) {
		return usagef("--channel %q: a pattern is dot-separated tokens of [A-Za-z0-9_-], * for one token, > for the rest", f.channel)
	}
	nc, err := f.nats.dial("upstream")
	if err != nil {
		return err
	}
	defer nc.Close()
	subject := f.prefix + "." + control.SubjectUpstream + "." + f.channel
	// NATS calls the handler for one message at a time: the lines do not
	// interleave.
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false) // the data as the client sent it: "<b>", not "\u003cb\u003e"
	sub, err := nc.QueueSubscribe(subject, f.queue, func(m *nats.Msg) {
		out.Encode(upstreamMessage(f.prefix, m))
		if m.Reply != "" {
			answerUpstream(m, f)
		}
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wsgate upstream: listening on %s%s\n", subject, map[bool]string{true: " (queue " + f.queue + ")", false: ""}[f.queue != ""])

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	<-sigs
	return nil
}

// upstreamMessage is the line of m, a message on <prefix>.up.<channel>.
// Data that is not JSON (a client cannot send it, a NATS client can)
// becomes a JSON string.
func upstreamMessage(prefix string, m *nats.Msg) upstreamLine {
	data := json.RawMessage(m.Data)
	if !json.Valid(m.Data) {
		data, _ = json.Marshal(string(m.Data))
	}
	return upstreamLine{
		Channel: strings.TrimPrefix(m.Subject, prefix+"."+control.SubjectUpstream+"."),
		User:    m.Header.Get(control.HeaderUser),
		Conn:    m.Header.Get(control.HeaderConn),
		Gateway: m.Header.Get(control.HeaderGateway),
		Data:    data,
		Request: m.Reply != "",
	}
}

// answerUpstream answers a request as the flags say: an echo, a refusal,
// or nothing (the client's request times out).
func answerUpstream(m *nats.Msg, f upstreamFlags) {
	switch {
	case f.echo:
		reply, _ := json.Marshal(struct {
			Echo json.RawMessage `json:"echo"`
			User string          `json:"user"`
		}{upstreamMessage(f.prefix, m).Data, m.Header.Get(control.HeaderUser)})
		m.Respond(reply)
	case f.reject != "":
		h := nats.Header{}
		h.Set(control.HeaderError, f.reject)
		m.RespondMsg(&nats.Msg{Header: h})
	}
}

// validPattern reports whether p is a NATS subject pattern of channel
// tokens: each token valid, or *, and > only last.
func validPattern(p string) bool {
	tokens := strings.Split(p, ".")
	for i, t := range tokens {
		switch {
		case t == "*":
		case t == ">" && i == len(tokens)-1:
		case !channel.ValidToken(t):
			return false
		}
	}
	return true
}
