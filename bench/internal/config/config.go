package config

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/bench/internal/payload"
	"github.com/wsgate/wsgate/bench/internal/token"
)

// Scenarios, in the order the help lists them.
const (
	ScenarioConnect   = "connect"
	ScenarioBroadcast = "broadcast"
	ScenarioTopic     = "topic"
	ScenarioUnicast   = "unicast"
	ScenarioChurn     = "churn"
	ScenarioFloor     = "floor"
	ScenarioResume    = "resume"
	ScenarioControl   = "control"
	ScenarioUpstream  = "upstream"
	ScenarioScale     = "scale"
)

// Scenarios lists every scenario name.
var Scenarios = []string{ScenarioConnect, ScenarioBroadcast, ScenarioTopic, ScenarioUnicast, ScenarioChurn, ScenarioFloor, ScenarioResume,
	ScenarioControl, ScenarioUpstream, ScenarioScale}

// Payload kinds (--payload-kind). Every payload is a JSON object that
// starts with "seq" and "ts", which the delivery accounting reads.
const (
	PayloadPad    = "pad"    // {"seq":N,"ts":T,"pad":"xx…"} padded to PayloadSize: compresses to almost nothing
	PayloadJSON1K = "json1k" // payload.JSON1K, about 1 KiB, compressing about as well as real notifications
	PayloadFile   = "file"   // the JSON object in --payload-file
)

// PayloadKinds lists the values of --payload-kind.
var PayloadKinds = []string{PayloadPad, PayloadJSON1K, PayloadFile}

// connsPerWorker is how many connections one worker process holds when
// Config.Workers is zero: the open-file limit here is 20,000 per process
// and each connection is one descriptor.
const connsPerWorker = 15000

// connsPerSource is how many connections go out of one source address
// when Config.SourceAddrs is empty and the target is loopback: the
// ephemeral port range gives ~28k ports per (source, destination) pair.
const connsPerSource = 25000

// Config is one wsbench run. Every field is a flag of the same name (see
// FlagSet); zero values mean the defaults applied by Normalize.
type Config struct {
	Scenario         string   `json:"scenario"`
	URLs             []string `json:"urls"`               // --url, repeatable or comma-separated; clients round-robin
	NATS             string   `json:"nats"`               // --nats; default nats://127.0.0.1:4222
	SubjectPrefix    string   `json:"subject_prefix"`     // --subject-prefix; default notify
	Conns            int      `json:"conns"`              // --conns; default 1000 (topic: topics × subs-per-topic)
	Rate             float64  `json:"rate"`               // --rate, connects per second over all workers; default 5000
	Hold             Duration `json:"hold"`               // --hold; churn: default 10s
	SourceAddrs      string   `json:"source_addrs"`       // --source-addrs: "127.0.0.1-127.0.0.50,10.0.0.7"
	Workers          int      `json:"workers"`            // --workers; 0 = ceil(conns / 15000)
	PayloadSize      int      `json:"payload_size"`       // --payload-size bytes; default 200; with a template its size with a 1-digit seq
	PayloadKind      string   `json:"payload_kind"`       // --payload-kind: pad (default), json1k, file (set by --payload-file)
	PayloadFile      string   `json:"payload_file"`       // --payload-file: a JSON object published with seq and ts put in front
	Deflate          bool     `json:"deflate"`            // --deflate: offer permessage-deflate as Chromium does
	InflateOnce      bool     `json:"inflate_once"`       // --inflate-once: a reader inflates a repeated compressed frame once
	Messages         int      `json:"messages"`           // --messages; default 20
	MsgRate          float64  `json:"msg_rate"`           // --msg-rate, messages per second in total; default 2
	Topics           int      `json:"topics"`             // --topics; default 10
	SubsPerTopic     int      `json:"subs_per_topic"`     // --subs-per-topic; default 100
	ChurnShare       float64  `json:"churn_share"`        // --churn-share of the connections reconnected each second; default 0.05
	Timeout          Duration `json:"timeout"`            // --timeout: wait for deliveries after the last publish; default 15s
	HandshakeTimeout Duration `json:"handshake_timeout"`  // --handshake-timeout per connection; default 10s
	Settle           Duration `json:"settle"`             // --settle before the server is sampled after the ramp; default 2s
	Dialers          int      `json:"dialers"`            // --dialers per worker; default 64
	Retries          int      `json:"retries"`            // --retries of a failed ramp dial; default 0
	UserPrefix       string   `json:"user_prefix"`        // --user-prefix; users are <prefix><i>; default u
	Auth             string   `json:"auth"`               // "user" (?user=) or "jwt" (?token=, when --jwt-secret or --jwt-key is set)
	JWTSecret        string   `json:"-"`                  // --jwt-secret; never written to reports
	JWTKey           string   `json:"jwt_key,omitempty"`  // --jwt-key: a PEM private key file (RSA, EC P-256, Ed25519)
	JWTKid           string   `json:"jwt_kid,omitempty"`  // --jwt-kid: the kid header of the tokens signed with JWTKey
	JWTAlg           string   `json:"jwt_alg,omitempty"`  // the tokens' alg, HS256, RS256, ES256 or EdDSA; set by Normalize
	ServerPIDs       []int    `json:"server_pids"`        // --server-pid, repeatable
	ServerMetrics    []string `json:"server_metrics"`     // --server-metrics, repeatable
	NATSPID          int      `json:"nats_pid,omitempty"` // --nats-pid: the NATS server's process, for its CPU over the measured window
	Label            string   `json:"label"`              // --label; default the scenario and connection count
	Sample           int      `json:"sample"`             // --sample; scale: distinct users unicast after the hold, default 10000
	Seed             int64    `json:"seed"`               // --seed for unicast targets and churn picks; default 1
	JSONFile         string   `json:"json_file,omitempty"`
	HTMLFile         string   `json:"html_file,omitempty"`
	FloorServers     int      `json:"floor_servers,omitempty"` // floor: server processes, ceil(conns / 15000)

	// Durable publishes broadcast, topic and unicast notifications through
	// JetStream (bus.Publisher.DurableBroadcast and friends, waiting for
	// each ack) instead of core NATS (--durable); resume always does.
	Durable bool `json:"durable,omitempty"`
	// Missed is how many durable notifications resume publishes to each
	// user while its connections are cut (--missed). Unlike the other
	// fields, zero is a value: nothing missed. The flag's default is 10.
	Missed int `json:"missed"`
	// Publishers is how many goroutines publish durable notifications at
	// once in resume (--publishers); default 64.
	Publishers int `json:"publishers,omitempty"`
	// NoResume makes resume's clients reconnect without resuming, as
	// volatile clients do, with nothing published (--no-resume): the
	// control for the storm's reconnect rate, against a gateway without
	// durable notifications.
	NoResume bool `json:"no_resume,omitempty"`
	// ResumeInURL makes resume's clients give their position in the
	// upgrade request (?resume=) instead of a resume op after the welcome
	// (--resume-in-url): the gateway then answers only when something is
	// missing.
	ResumeInURL bool `json:"resume_in_url,omitempty"`
	// CutCmd, when set, is how resume cuts the connections: a shell
	// command (sh -c) that makes the server close them, a gateway
	// restart for instance, and returns once the gateway takes
	// connections again (--cut-cmd). Empty: wsbench closes them itself.
	CutCmd string `json:"cut_cmd,omitempty"`

	// Queries is how many presence queries control sends, one at a time,
	// each to every gateway (--queries); default 1000.
	Queries int `json:"queries,omitempty"`
	// Disconnects is how many distinct users control disconnects, one at
	// a time, after the queries (--disconnects); default 100, at most
	// Conns.
	Disconnects int `json:"disconnects,omitempty"`
	// DisconnectReason is the reason of control's disconnects
	// (--disconnect-reason): reconnect (close 4004, the default), logout
	// (4005) or revoked (4006, which also stores a revocation). wsbench
	// does not reconnect after any of them.
	DisconnectReason string `json:"disconnect_reason,omitempty"`
	// Gateways is how many gateways answer a control request
	// (--gateways): control.Client.Expect. Default: the number of --url
	// values.
	Gateways int `json:"gateways,omitempty"`
	// Revocations is how many revocations wsbench stores in the denylist
	// before the ramp, of users not in the run (rv0, rv1, …, one hour
	// each), waiting until every --url refuses the last one
	// (--revocations). Any scenario; zero stores none.
	Revocations int `json:"revocations,omitempty"`
	// UpstreamChannel is the channel of upstream's request ops
	// (--upstream-channel); default rpc.bench.
	UpstreamChannel string `json:"upstream_channel,omitempty"`
	// NoResponder leaves upstream's requests to a responder of one's own
	// (wsgate upstream --echo, say) instead of wsbench's (--no-responder).
	NoResponder bool `json:"no_responder,omitempty"`

	// template is the payload object after "seq" and "ts" without its
	// opening brace (payload.Template); nil for pad. Set by Normalize.
	template []byte
}

// Duration is a time.Duration that reads and writes as "1.5s" in flags
// and JSON.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// Set parses a flag value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// MarshalText writes d as "1.5s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads "1.5s".
func (d *Duration) UnmarshalText(b []byte) error { return d.Set(string(b)) }

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.v = append(*l.v, p)
		}
	}
	return nil
}

type intListFlag struct{ v *[]int }

func (l intListFlag) String() string {
	if l.v == nil {
		return ""
	}
	s := make([]string, len(*l.v))
	for i, n := range *l.v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func (l intListFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return fmt.Errorf("bad pid %q", p)
		}
		*l.v = append(*l.v, n)
	}
	return nil
}

// FlagSet returns a flag set that fills c. The defaults shown are the
// zero-value defaults of Normalize.
func (c *Config) FlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Var(listFlag{&c.URLs}, "url", "gateway WebSocket URL `ws://host:port/path`; repeatable or comma-separated, clients spread round-robin (default ws://127.0.0.1:8080/ws)")
	fs.StringVar(&c.NATS, "nats", "", "NATS `URL` the publisher connects to (default nats://127.0.0.1:4222)")
	fs.StringVar(&c.SubjectPrefix, "subject-prefix", "", "subject `prefix`: channel X is <prefix>.X (default notify)")
	fs.IntVar(&c.Conns, "conns", 0, "connections `N` (default 1000; topic: topics × subs-per-topic)")
	fs.Float64Var(&c.Rate, "rate", 0, "connects per second over all workers (default 5000)")
	fs.Var(&c.Hold, "hold", "connect: hold the connections this long before closing; churn: how long to churn; scale: how long to hold them before publishing (default 0; churn 10s)")
	fs.StringVar(&c.SourceAddrs, "source-addrs", "", "local source `IPs` to dial from, round-robin: 127.0.0.1-127.0.0.50,10.0.0.7 (default: the kernel's choice; on loopback above 25000 connections 127.0.0.1-127.0.0.k)")
	fs.IntVar(&c.Workers, "workers", 0, "client worker processes; 0 = ceil(conns / 15000), 1 = in this process")
	fs.IntVar(&c.PayloadSize, "payload-size", 0, "published payload `bytes`, {\"seq\":N,\"ts\":T,\"pad\":\"xx…\"} padded to this size (default 200; --payload-kind pad only)")
	fs.StringVar(&c.PayloadKind, "payload-kind", "", "published payload: pad ({\"seq\":N,\"ts\":T,\"pad\":\"xx…\"}, --payload-size), json1k (a realistic notification of about 1 KiB with seq and ts in front) (default pad)")
	fs.StringVar(&c.PayloadFile, "payload-file", "", "publish the JSON object in `FILE`, compacted, with \"seq\" and \"ts\" put in front (--payload-kind file)")
	fs.BoolVar(&c.Deflate, "deflate", false, "offer permessage-deflate (\"permessage-deflate; client_max_window_bits\", as Chromium does) and inflate compressed frames; the report counts the connections that accepted it and the compressed messages")
	fs.BoolVar(&c.InflateOnce, "inflate-once", false, "with --deflate: each reader goroutine inflates a compressed frame identical to the last one it inflated only once (wsgate compresses a notification once, so its recipients get the same bytes); keeps wsbench's own inflating, 5,000 times per broadcast to 5,000, out of the latency on a shared host, and out of client CPU")
	fs.IntVar(&c.Messages, "messages", 0, "messages to publish: broadcast and floor K rounds, topic K per topic, unicast K in total (default 20)")
	fs.Float64Var(&c.MsgRate, "msg-rate", 0, "messages published per second, in total (default 2)")
	fs.IntVar(&c.Topics, "topics", 0, "topic: number of topics M (default 10)")
	fs.IntVar(&c.SubsPerTopic, "subs-per-topic", 0, "topic: subscribers S per topic (default 100)")
	fs.Float64Var(&c.ChurnShare, "churn-share", 0, "churn: share of the connections closed and reopened every second (default 0.05)")
	fs.Var(&c.Timeout, "timeout", "how long to wait for deliveries after the last publish (default 15s)")
	fs.Var(&c.HandshakeTimeout, "handshake-timeout", "per connection: dial start to welcome (and subscribed) (default 10s)")
	fs.Var(&c.Settle, "settle", "wait after the ramp before sampling the server's memory (default 2s)")
	fs.IntVar(&c.Dialers, "dialers", 0, "dialer goroutines per worker (default 64)")
	fs.IntVar(&c.Retries, "retries", 0, "dial a connection that failed in the ramp again, up to N times, after 1 s, 2 s, 4 s, … (plus up to half as jitter), as a client would; the report counts the retries by reason")
	fs.StringVar(&c.UserPrefix, "user-prefix", "", "user ids are <prefix><i>, i = 0..conns-1 (default u)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "sign an HS256 token per user (sub=<user>, channels [topic.>], 24h) sent as ?token= instead of ?user=; every token is signed before the ramp")
	fs.StringVar(&c.JWTKey, "jwt-key", "", "like --jwt-secret, with the PEM private key in `FILE`: RS256 for RSA, ES256 for EC P-256, EdDSA for Ed25519 (a gateway with --jwks-file, --jwks-url or --jwt-public-key verifies them)")
	fs.StringVar(&c.JWTKid, "jwt-kid", "", "with --jwt-key: the kid header of the tokens, the key's kid in the gateway's JWKS")
	fs.Var(intListFlag{&c.ServerPIDs}, "server-pid", "gateway process `id` for RSS and CPU from /proc; repeatable, summed")
	fs.IntVar(&c.NATSPID, "nats-pid", 0, "NATS server process `id` on this host: its CPU over the publish and drain window (resume: over the resumes) is reported beside the gateway's")
	fs.Var(listFlag{&c.ServerMetrics}, "server-metrics", "gateway Prometheus `URL` (http://host:9090/metrics); repeatable, summed; also the source of goroutines")
	fs.BoolVar(&c.Durable, "durable", false, "broadcast, topic, unicast: publish durable notifications (JetStream, each publish waits for its ack) instead of volatile ones; the frames then carry seq, prev and epoch (the gateway needs --durable and a NATS with JetStream)")
	fs.IntVar(&c.Missed, "missed", 10, "resume: durable notifications published to each user while its connection is cut; 0: nothing missed")
	fs.BoolVar(&c.ResumeInURL, "resume-in-url", false, "resume: give each position in the upgrade request's resume parameter instead of a resume op after the welcome")
	fs.BoolVar(&c.NoResume, "no-resume", false, "resume: reconnect without resuming and publish nothing, as volatile clients do (needs --missed 0): the same storm for a gateway with --durable=false, to compare reconnect rates")
	fs.StringVar(&c.CutCmd, "cut-cmd", "", "resume: cut by running this shell `command` (sh -c), which must make the gateway close every connection (restart it, say) and return once it accepts again; wsbench then waits for every connection to be closed. Default: wsbench closes them itself. With a restart, give --server-metrics, not --server-pid (the pid changes)")
	fs.IntVar(&c.Publishers, "publishers", 0, "resume: goroutines publishing durable notifications at once, each waiting for its ack (default 64)")
	fs.IntVar(&c.Queries, "queries", 0, "control: presence queries of random users, one at a time, each answered by every gateway (default 1000)")
	fs.IntVar(&c.Disconnects, "disconnects", 0, "control: distinct random users disconnected one at a time after the queries (default 100)")
	fs.StringVar(&c.DisconnectReason, "disconnect-reason", "", "control: reason of the disconnects: reconnect (close 4004), logout (4005) or revoked (4006; also stores a revocation) (default reconnect)")
	fs.IntVar(&c.Gateways, "gateways", 0, "control: gateways that answer each request, the control client's Expect (default: the number of --url values)")
	fs.IntVar(&c.Revocations, "revocations", 0, "any scenario: before the ramp, store N revocations in the denylist (users rv0…rvN-1, not in the run, for 1h) and wait until every --url refuses the last one with 401")
	fs.StringVar(&c.UpstreamChannel, "upstream-channel", "", "upstream: channel of the request ops; wsbench answers on NATS subject <prefix>.up.<channel> (default rpc.bench)")
	fs.BoolVar(&c.NoResponder, "no-responder", false, "upstream: do not answer the requests; a responder of one's own must (wsgate upstream --echo)")
	fs.StringVar(&c.Label, "label", "", "name of the run in reports (default <scenario>-<conns>)")
	fs.IntVar(&c.Sample, "sample", 0, "scale: distinct random users sent one unicast each after --hold, before the --messages broadcasts (default 10000, at most --conns)")
	fs.Int64Var(&c.Seed, "seed", 0, "random seed for unicast targets and churn picks (default 1)")
	fs.StringVar(&c.JSONFile, "json", "", "write the full result as JSON to `FILE`")
	fs.StringVar(&c.HTMLFile, "html", "", "write a self-contained HTML report with charts to `FILE`")
	return fs
}

// Normalize applies the defaults and checks the values.
func (c *Config) Normalize() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !ValidScenario(c.Scenario) {
		bad("unknown scenario %q (want one of %s)", c.Scenario, strings.Join(Scenarios, ", "))
	}
	if len(c.URLs) == 0 {
		c.URLs = []string{"ws://127.0.0.1:8080/ws"}
	}
	for _, u := range c.URLs {
		if _, err := ParseTarget(u); err != nil {
			errs = append(errs, err)
		}
	}
	setDefault(&c.NATS, "nats://127.0.0.1:4222")
	setDefault(&c.SubjectPrefix, "notify")
	setDefault(&c.UserPrefix, "u")
	if c.Scenario == ScenarioTopic {
		setDefaultInt(&c.Topics, 10)
		setDefaultInt(&c.SubsPerTopic, 100)
		if c.Conns != 0 && c.Conns != c.Topics*c.SubsPerTopic {
			bad("topic: --conns %d differs from topics × subs-per-topic = %d; leave --conns out", c.Conns, c.Topics*c.SubsPerTopic)
		}
		c.Conns = c.Topics * c.SubsPerTopic
	}
	setDefaultInt(&c.Conns, 1000)
	if c.Rate == 0 {
		c.Rate = 5000
	}
	if err := c.resolvePayload(); err != nil {
		errs = append(errs, err)
	}
	setDefaultInt(&c.Messages, 20)
	if c.MsgRate == 0 {
		c.MsgRate = 2
	}
	if c.ChurnShare == 0 {
		c.ChurnShare = 0.05
	}
	setDefaultInt(&c.Publishers, 64)
	if c.Scenario == ScenarioResume {
		c.Durable = true
	}
	if (c.Scenario == ScenarioChurn || c.Scenario == ScenarioUpstream) && c.Hold == 0 {
		c.Hold = Duration(10 * time.Second)
	}
	if c.Scenario == ScenarioScale {
		setDefaultInt(&c.Sample, min(10000, c.Conns))
	}
	if c.Scenario == ScenarioControl {
		setDefaultInt(&c.Queries, 1000)
		setDefaultInt(&c.Disconnects, 100)
		setDefault(&c.DisconnectReason, "reconnect")
		setDefaultInt(&c.Gateways, len(c.URLs))
	}
	if c.Scenario == ScenarioUpstream {
		setDefault(&c.UpstreamChannel, "rpc.bench")
	}
	setDefaultDur(&c.Timeout, 15*time.Second)
	setDefaultDur(&c.HandshakeTimeout, 10*time.Second)
	setDefaultDur(&c.Settle, 2*time.Second)
	setDefaultInt(&c.Dialers, 64)
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Workers == 0 {
		c.Workers = (c.Conns + connsPerWorker - 1) / connsPerWorker
	}
	if c.Scenario == ScenarioFloor {
		c.FloorServers = (c.Conns + connsPerWorker - 1) / connsPerWorker
	}
	c.Auth, c.JWTAlg = "user", ""
	switch {
	case c.JWTSecret != "" && c.JWTKey != "":
		bad("--jwt-secret and --jwt-key: give one")
	case c.JWTKid != "" && c.JWTKey == "":
		bad("--jwt-kid needs --jwt-key")
	case c.JWTSecret != "" && len(c.JWTSecret) < 32:
		bad("--jwt-secret must have at least 32 bytes (the gateway refuses shorter ones)")
	case c.JWTSecret != "" || c.JWTKey != "":
		c.Auth = "jwt"
		if s, err := token.New([]byte(c.JWTSecret), c.JWTKey, c.JWTKid); err != nil {
			bad("--jwt-key: %v", err)
		} else {
			c.JWTAlg = s.Alg()
		}
	}
	if c.Label == "" {
		c.Label = c.Scenario + "-" + strconv.Itoa(c.Conns)
	}
	switch {
	case c.Conns < 1:
		bad("--conns must be positive")
	case c.Rate <= 0 || math.IsInf(c.Rate, 0) || math.IsNaN(c.Rate):
		bad("--rate must be positive")
	case c.MsgRate <= 0 || math.IsInf(c.MsgRate, 0) || math.IsNaN(c.MsgRate):
		bad("--msg-rate must be positive")
	case c.Messages < 1:
		bad("--messages must be positive")
	case c.Workers < 1 || c.Workers > c.Conns:
		bad("--workers must be between 1 and --conns")
	case c.PayloadSize > 1<<20:
		bad("--payload-size must be at most 1 MiB (NATS max_payload)")
	case c.ChurnShare < 0 || c.ChurnShare > 1:
		bad("--churn-share must be between 0 and 1")
	case c.Topics < 0 || c.SubsPerTopic < 0:
		bad("--topics and --subs-per-topic must be positive")
	case c.Dialers < 1:
		bad("--dialers must be positive")
	case c.Retries < 0 || c.Retries > 10:
		bad("--retries must be between 0 and 10")
	case c.Deflate && c.Scenario == ScenarioFloor:
		bad("--deflate needs a WebSocket handshake: the floor has none")
	case c.InflateOnce && !c.Deflate:
		bad("--inflate-once needs --deflate")
	case c.Missed < 0:
		bad("--missed must not be negative")
	case c.NoResume && (c.Scenario != ScenarioResume || c.Missed != 0):
		bad("--no-resume applies to resume with --missed 0")
	case c.ResumeInURL && (c.Scenario != ScenarioResume || c.NoResume):
		bad("--resume-in-url applies to resume, without --no-resume")
	case c.CutCmd != "" && c.Scenario != ScenarioResume:
		bad("--cut-cmd applies to resume")
	case c.Publishers < 1:
		bad("--publishers must be positive")
	case c.Queries < 0 || c.Disconnects < 0 || c.Disconnects > c.Conns:
		bad("--queries and --disconnects must not be negative, and --disconnects at most --conns")
	case c.DisconnectReason != "" && c.DisconnectReason != "reconnect" && c.DisconnectReason != "logout" && c.DisconnectReason != "revoked":
		bad("--disconnect-reason must be reconnect, logout or revoked")
	case c.Revocations < 0 || c.Gateways < 0:
		bad("--revocations and --gateways must not be negative")
	case c.Revocations > 0 && c.Scenario == ScenarioFloor:
		bad("--revocations needs gateways: the floor has none")
	case c.Sample < 0 || c.Sample > c.Conns:
		bad("--sample must be between 0 and --conns")
	case c.Durable && (c.Scenario == ScenarioFloor || c.Scenario == ScenarioChurn || c.Scenario == ScenarioConnect ||
		c.Scenario == ScenarioControl || c.Scenario == ScenarioUpstream || c.Scenario == ScenarioScale):
		bad("--durable applies to broadcast, topic and unicast (resume is always durable)")
	}
	if _, err := ParseSources(c.SourceAddrs); err != nil {
		errs = append(errs, err)
	}
	if c.SourceAddrs == "" && c.Conns > connsPerSource && c.Scenario != ScenarioFloor {
		if t, err := ParseTarget(c.URLs[0]); err == nil && t.Loopback() {
			n := (c.Conns + connsPerSource - 1) / connsPerSource
			c.SourceAddrs = fmt.Sprintf("127.0.0.1-127.0.0.%d", n)
		}
	}
	return errors.Join(errs...)
}

// Template is the payload object Normalize resolved from --payload-kind or
// --payload-file, after "seq" and "ts" and without its opening brace (see
// payload.AppendTemplate); nil for pad, which payload.Append pads to
// PayloadSize.
func (c *Config) Template() []byte { return c.template }

// resolvePayload resolves --payload-kind and --payload-file into
// c.template and PayloadSize.
func (c *Config) resolvePayload() error {
	var obj []byte
	switch {
	case c.PayloadFile != "":
		if c.PayloadKind != "" && c.PayloadKind != PayloadFile {
			return fmt.Errorf("--payload-kind %s and --payload-file: give one", c.PayloadKind)
		}
		c.PayloadKind = PayloadFile
		b, err := os.ReadFile(c.PayloadFile)
		if err != nil {
			return fmt.Errorf("--payload-file: %w", err)
		}
		obj = b
	case c.PayloadKind == "" || c.PayloadKind == PayloadPad:
		c.PayloadKind = PayloadPad
		setDefaultInt(&c.PayloadSize, 200)
		return nil
	case c.PayloadKind == PayloadJSON1K:
		obj = []byte(payload.JSON1K)
	case c.PayloadKind == PayloadFile:
		return errors.New("--payload-kind file needs --payload-file")
	default:
		return fmt.Errorf("--payload-kind %q: want one of %s", c.PayloadKind, strings.Join(PayloadKinds, ", "))
	}
	body, err := payload.Template(obj)
	if err != nil {
		if c.PayloadKind == PayloadFile {
			return fmt.Errorf("--payload-file %s: %w", c.PayloadFile, err)
		}
		return fmt.Errorf("--payload-kind %s: %w", c.PayloadKind, err)
	}
	size := payload.TemplateSize(body)
	if c.PayloadSize != 0 && c.PayloadSize != size {
		return fmt.Errorf("--payload-size applies to --payload-kind pad; the %s payload is %d bytes", c.PayloadKind, size)
	}
	c.template, c.PayloadSize = body, size
	return nil
}

// ValidScenario reports whether s is one of Scenarios.
func ValidScenario(s string) bool {
	for _, v := range Scenarios {
		if s == v {
			return true
		}
	}
	return false
}

func setDefault(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

func setDefaultInt(n *int, v int) {
	if *n == 0 {
		*n = v
	}
}

func setDefaultDur(d *Duration, v time.Duration) {
	if *d == 0 {
		*d = Duration(v)
	}
}
