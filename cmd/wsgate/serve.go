package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/control"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/channel"
	"github.com/wsgate/wsgate/internal/fdlimit"
	"github.com/wsgate/wsgate/internal/httpapi"
)

type serveFlags struct {
	listen, admin, path             string
	auth, jwtSecret, jwtPublicKey   string
	jwtIssuer, jwtAudience          string
	jwksURL, jwksFile               string
	jwksRefresh, jwksMinRefresh     time.Duration
	allowedOrigins                  string
	nats                            natsFlags
	natsReconnectWait               time.Duration
	embeddedNATS, prefix            string
	durable, manageStream           bool
	storeDir                        string
	stream                          streamFlags
	pingInterval, idleTimeout       time.Duration
	writeTimeout, handshakeTimeout  time.Duration
	closeTimeout                    time.Duration
	drainDelay, drainTimeout        time.Duration
	maxMessageSize, writeQueueLimit int
	maxSubscriptions, poolSize      int
	maxConns, maxConnsPerIP         int
	acceptRate                      float64
	acceptBurst                     int
	messageRate                     float64
	messageBurst                    int
	maxUserConns                    int
	userConnsPolicy                 string
	readyConnsRatio                 float64
	saturationTimeout, stallTimeout time.Duration
	gcPercent                       int
	logLevel, logFormat             string
	pprof, reusePort                bool
	conformanceEcho                 bool
	compression                     bool
	compressThreshold               int
	replayLimit, replayBatch        int
	replayReaders                   int
	ackInterval                     time.Duration
	gatewayID                       string
	upstreamRate                    float64
	upstreamBurst                   int
	upstreamTimeout                 time.Duration
	maxUpstreamRequests             int
	revocationBucket                string
	apiKeys, apiKeysFile            string
}

// The listen addresses. The admin listener serves /metrics and, with
// --pprof, profiles, without authentication: it stays on loopback unless
// told otherwise. In development mode (--auth=none), which trusts anyone's
// ?user=, so does the WebSocket listener.
const (
	defaultListen = ":8080"
	devListen     = "127.0.0.1:8080"
	defaultAdmin  = "127.0.0.1:9090"
)

// serveZeroRefused are the numeric flags for which "none" (0) makes no
// sense; every other numeric flag reads 0 as none: no limit, no delay, off.
var serveZeroRefused = append([]string{
	"write-timeout", "handshake-timeout", "close-timeout", "max-message-size",
	"write-queue-limit", "max-subscriptions", "pool-size", "ready-conns-ratio",
	"saturation-timeout", "stall-timeout", "replay-limit", "replay-batch", "replay-readers", "ack-interval",
	"upstream-burst", "upstream-timeout", "max-upstream-requests",
	"jwks-refresh", "jwks-min-refresh", "nats-reconnect-wait",
}, streamZeroRefused...)

func serve(args []string) error {
	var f serveFlags
	fs := flag.NewFlagSet("wsgate [flags]", flag.ContinueOnError)
	fs.StringVar(&f.listen, "listen", defaultListen, "WebSocket listen address; with --auth=none "+devListen+" unless given")
	fs.StringVar(&f.admin, "admin", defaultAdmin, "admin listen address (/healthz, /readyz, /metrics), on loopback unless given (:9090 for probes and scrapes from other hosts); empty disables")
	fs.StringVar(&f.path, "path", gateway.DefaultPath, "WebSocket endpoint path")
	fs.StringVar(&f.auth, "auth", "jwt", "authentication: jwt, or none (development only: trusts ?user=)")
	fs.StringVar(&f.jwtSecret, "jwt-secret", "", "HS256 shared secret (prefer WSGATE_JWT_SECRET over the command line)")
	fs.StringVar(&f.jwtPublicKey, "jwt-public-key", "", "PEM file of the RS256 or ES256 public key")
	fs.StringVar(&f.jwksURL, "jwks-url", "", "JWKS URL of the identity provider (https; http only to loopback): RS256, ES256 and EdDSA keys by kid, reloaded every --jwks-refresh")
	fs.StringVar(&f.jwksFile, "jwks-file", "", "JWKS file, read again every --jwks-refresh (for sites without access to the identity provider)")
	fs.DurationVar(&f.jwksRefresh, "jwks-refresh", gateway.DefaultJWKSRefresh, "reload the JWKS this often; a failed load keeps the last good keys")
	fs.DurationVar(&f.jwksMinRefresh, "jwks-min-refresh", gateway.DefaultJWKSMinRefresh, "least time between two JWKS loads caused by tokens with an unknown kid")
	fs.StringVar(&f.jwtIssuer, "jwt-issuer", "", "required iss claim, if set")
	fs.StringVar(&f.jwtAudience, "jwt-audience", "", "required aud claim, if set")
	fs.StringVar(&f.allowedOrigins, "allowed-origins", "", "comma-separated allowed browser origins (https://app.example.com, https://*.example.com, *); empty allows any")
	f.nats.register(fs, "", "NATS server URL(s), comma-separated seeds of one cluster; empty starts an embedded NATS server (development: no credentials or TLS)")
	fs.DurationVar(&f.natsReconnectWait, "nats-reconnect-wait", time.Second, "pause between rounds of NATS reconnect attempts, plus a random jitter of up to as much again; the gateway reconnects forever")
	fs.StringVar(&f.embeddedNATS, "embedded-nats-listen", bus.DefaultEmbeddedListen, "listen address of the embedded NATS server")
	fs.StringVar(&f.prefix, "subject-prefix", bus.DefaultPrefix, "NATS subject prefix: channel X is subject <prefix>.X")
	fs.BoolVar(&f.durable, "durable", true, "durable notifications: JetStream in the embedded server, and the stream that stores durable.<prefix>.> and republishes it to the sockets")
	fs.StringVar(&f.storeDir, "nats-store-dir", "", "directory of the embedded server's JetStream files; empty means $XDG_STATE_HOME/wsgate/nats, or ~/.local/state/wsgate/nats: it survives restarts and stays out of the checkout. Only without --nats-url")
	fs.BoolVar(&f.manageStream, "durable-manage-stream", true, "create or update the stream at start; false leaves it to wsgate stream apply")
	f.stream.register(fs)
	fs.IntVar(&f.replayLimit, "replay-limit", gateway.DefaultReplayLimit, "most durable notifications one resume replays; a client that missed more gets these, oldest first, and recovered:false")
	fs.IntVar(&f.replayBatch, "replay-batch", gateway.DefaultReplayBatch, "stored notifications fetched by one read of the stream for a replay")
	fs.IntVar(&f.replayReaders, "replay-readers", gateway.DefaultReplayReaders, "reads of the stream that run at once for replays")
	fs.DurationVar(&f.ackInterval, "ack-interval", gateway.DefaultAckInterval, "how often acked watermarks are written, acks in between merged per user and channel")
	fs.DurationVar(&f.pingInterval, "ping-interval", gateway.DefaultPingInterval, "send a WebSocket ping after this much silence; 0 disables")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", gateway.DefaultIdleTimeout, "close connections silent (no pong either) for this long; 0 disables")
	fs.DurationVar(&f.writeTimeout, "write-timeout", gateway.DefaultWriteTimeout, "close a connection whose write queue has not moved for this long")
	fs.DurationVar(&f.handshakeTimeout, "handshake-timeout", gateway.DefaultHandshakeTimeout, "deadline of the upgrade request")
	fs.DurationVar(&f.closeTimeout, "close-timeout", gateway.DefaultCloseTimeout, "how long a client may take to answer the server's close frame")
	fs.DurationVar(&f.drainDelay, "drain-delay", gateway.DefaultDrainDelay, "on SIGTERM, keep serving this long with /readyz at 503 so load balancers notice; 0 for none")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", gateway.DefaultDrainTimeout, "then close the connections with 1001 spread over this window, so clients reconnect elsewhere in a trickle; 0 closes all at once")
	fs.IntVar(&f.maxMessageSize, "max-message-size", gateway.DefaultMaxMessageSize, "largest client message in bytes (1009 beyond)")
	fs.IntVar(&f.writeQueueLimit, "write-queue-limit", gateway.DefaultWriteQueueLimit, "bytes that may wait for a slow client before it is closed")
	fs.IntVar(&f.maxSubscriptions, "max-subscriptions", gateway.DefaultMaxSubscriptions, "topics one connection may subscribe to")
	fs.IntVar(&f.poolSize, "pool-size", gateway.DefaultPoolSize, "worker goroutines for upgrades, reads and fan-out")
	fs.IntVar(&f.maxConns, "max-conns", 0, "open connections at most (503 beyond); 0 means what the open-file limit allows")
	fs.IntVar(&f.maxConnsPerIP, "max-conns-per-ip", 0, "sockets one client address may hold (429 beyond); 0 means no limit; leave 0 behind a load balancer")
	fs.Float64Var(&f.acceptRate, "accept-rate", 0, "new sockets accepted per second at most (a token bucket); 0 means no limit")
	fs.IntVar(&f.acceptBurst, "accept-burst", 0, "accept token bucket size; 0 means accept-rate/10")
	fs.Float64Var(&f.messageRate, "max-client-rate", gateway.DefaultMessageRate, "client messages (and pings) per second a connection may send on average (1008 beyond its burst); 0 disables")
	fs.IntVar(&f.messageBurst, "max-client-burst", 0, "client messages a connection may send at once above --max-client-rate; 0 means 2×max-subscriptions+10")
	fs.IntVar(&f.maxUserConns, "max-user-conns", 0, "sockets one user may hold on this gateway; 0 means no limit")
	fs.StringVar(&f.userConnsPolicy, "user-conns-policy", "reject-new", "beyond --max-user-conns: reject-new (close the new socket with 4002) or close-oldest (close the oldest with 4003)")
	fs.Float64Var(&f.readyConnsRatio, "ready-conns-ratio", gateway.DefaultReadyConnsRatio, "/readyz turns 503 at this fraction of --max-conns")
	fs.DurationVar(&f.saturationTimeout, "saturation-timeout", gateway.DefaultSaturationTimeout, "/readyz turns 503 when the pool has been saturated this long")
	fs.DurationVar(&f.stallTimeout, "stall-timeout", gateway.DefaultStallTimeout, "/healthz turns 503 when the poller or the pool has been stuck this long")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "json", "json or console")
	fs.BoolVar(&f.pprof, "pprof", false, "serve /debug/pprof/ on the admin listener")
	fs.BoolVar(&f.compression, "compression", true, "negotiate permessage-deflate (without context takeover) with clients that offer it")
	fs.IntVar(&f.compressThreshold, "compress-threshold", gateway.DefaultCompressThreshold, "smallest message in bytes sent compressed to clients that negotiated permessage-deflate; 0 compresses every message")
	fs.BoolVar(&f.conformanceEcho, "conformance-echo", false, "testing only: echo every data message back and send no welcome, for WebSocket conformance clients (Autobahn); needs --auth=none")
	fs.BoolVar(&f.reusePort, "reuseport", false, "set SO_REUSEPORT so several gateway processes can share --listen")
	fs.StringVar(&f.gatewayID, "gateway-id", "", "this gateway's id: it names the gateway in control-plane answers (wsgate presence, wsgate stats) and starts its connection ids (<id>-<n>); empty means 6 random hex digits at each start")
	fs.Float64Var(&f.upstreamRate, "upstream-rate", gateway.DefaultUpstreamRate, "publish and request ops per second one connection may send to services on average (error rate_limited beyond its burst; counted within --max-client-rate too); 0 means no limit of its own")
	fs.IntVar(&f.upstreamBurst, "upstream-burst", gateway.DefaultUpstreamBurst, "publish and request ops a connection may send at once above --upstream-rate")
	fs.DurationVar(&f.upstreamTimeout, "upstream-timeout", gateway.DefaultUpstreamTimeout, "longest a request op waits for the service's reply (a client may ask for less)")
	fs.IntVar(&f.maxUpstreamRequests, "max-upstream-requests", gateway.DefaultMaxUpstreamRequests, "request ops one connection may have waiting for their reply (error too_many_requests beyond); at most 1024")
	fs.StringVar(&f.revocationBucket, "revocation-bucket", control.DefaultDenylistBucket, "JetStream KV bucket of the denylist (revoked users and tokens), watched by every gateway; created at start with --durable and --durable-manage-stream")
	fs.StringVar(&f.apiKeys, "api-keys", "", "comma-separated keys of the HTTP API (/api/v1/ on the admin listener), each at least 16 characters (prefer WSGATE_API_KEYS over the command line); without keys the API is off, except with --auth=none")
	fs.StringVar(&f.apiKeysFile, "api-keys-file", "", "file of HTTP API keys, one a line (# comments), added to --api-keys")
	fs.IntVar(&f.gcPercent, "gogc", 25, "Go GC target percentage (as GOGC; the GOGC variable, when set, wins): idle connections dominate memory and allocate little, so a tight GC costs little CPU; 0 turns the GC off")
	fs.Usage = func() {
		printUsage(fs.Output())
		printFlags(fs)
	}
	if err := parse(fs, args, 0, serveZeroRefused...); err != nil {
		return err
	}
	if err := f.stream.checkStorage(); err != nil {
		return err
	}
	if f.gatewayID != "" && (len(f.gatewayID) > 32 || !channel.ValidToken(f.gatewayID)) {
		return usagef("--gateway-id %q: an id is one token of [A-Za-z0-9_-], at most 32 bytes", f.gatewayID)
	}
	if !channel.ValidToken(f.revocationBucket) {
		return usagef("--revocation-bucket %q: a bucket name is one token of [A-Za-z0-9_-]", f.revocationBucket)
	}
	if f.auth == "none" && !given(fs, "listen") {
		f.listen = devListen
	}
	if secured := f.nats.secured(fs); f.nats.url == "" && len(secured) > 0 {
		return usagef("%s: need --nats-url: the embedded NATS server is for development and takes no credentials or TLS", strings.Join(secured, ", "))
	}
	log, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	defer log.Sync()
	return run(f, log)
}

func newLogger(level, format string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	var cfg zap.Config
	switch format {
	case "json":
		cfg = zap.NewProductionConfig()
	case "console":
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
	default:
		return nil, fmt.Errorf("--log-format must be json or console, not %q", format)
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	return cfg.Build()
}

func authenticator(f serveFlags, log *zap.Logger) (gateway.Authenticator, error) {
	switch f.auth {
	case "none":
		log.Warn("INSECURE: --auth=none trusts ?user= from anyone and allows every topic; for development only, never in production")
		return gateway.InsecureAuth{}, nil
	case "jwt":
		cfg := gateway.JWTConfig{Secret: []byte(f.jwtSecret), Issuer: f.jwtIssuer, Audience: f.jwtAudience, Leeway: 5 * time.Second,
			JWKSURL: f.jwksURL, JWKSFile: f.jwksFile, JWKSRefresh: f.jwksRefresh, JWKSMinRefresh: f.jwksMinRefresh, Logger: log.Named("jwks")}
		var sources []string
		for _, s := range []struct{ flag, value string }{{"--jwt-secret", f.jwtSecret}, {"--jwt-public-key", f.jwtPublicKey}, {"--jwks-url", f.jwksURL}, {"--jwks-file", f.jwksFile}} {
			if s.value != "" {
				sources = append(sources, s.flag)
			}
		}
		if len(sources) > 1 {
			return nil, usagef("%s: give one JWT key source", strings.Join(sources, " and "))
		}
		if f.jwtPublicKey != "" {
			pem, err := os.ReadFile(f.jwtPublicKey)
			if err != nil {
				return nil, fmt.Errorf("--jwt-public-key: %w", err)
			}
			cfg.PublicKeyPEM = pem
		}
		if len(sources) == 0 {
			return nil, errors.New("--auth=jwt needs --jwt-secret (or WSGATE_JWT_SECRET), --jwt-public-key, --jwks-url or --jwks-file; use --auth=none only for development")
		}
		if f.allowedOrigins == "" {
			log.Warn("no --allowed-origins: any web page may open a connection, and with the wsgate_token cookie it would be the visitor's; list your origins")
		}
		return gateway.NewJWTAuth(cfg)
	}
	return nil, fmt.Errorf("--auth must be jwt or none, not %q", f.auth)
}

func run(f serveFlags, log *zap.Logger) error {
	if _, set := os.LookupEnv("GOGC"); !set {
		// --gogc 0 is "no GC", where GOGC=0 would collect all the time: with
		// no memory limit either, the heap would grow until the kernel kills
		// the process, so that pair is refused rather than obeyed.
		if f.gcPercent == 0 && debug.SetMemoryLimit(-1) == math.MaxInt64 {
			return errors.New("--gogc 0 turns the garbage collector off; without GOMEMLIMIT the heap would grow until the process is killed: set GOMEMLIMIT too, or keep a --gogc above 0")
		}
		debug.SetGCPercent(orNegative(f.gcPercent))
	}
	if f.conformanceEcho && f.auth != "none" {
		return errors.New("--conformance-echo is for conformance testing and needs --auth=none")
	}
	auth, err := authenticator(f, log)
	if err != nil {
		return err
	}
	if c, ok := auth.(io.Closer); ok { // a JWKS refresher
		defer c.Close()
	}
	policy, err := gateway.ParseUserConnsPolicy(f.userConnsPolicy)
	if err != nil {
		return fmt.Errorf("--user-conns-policy: %w", err)
	}
	maxConns, err := connLimit(f.maxConns, log)
	if err != nil {
		return err
	}
	apiKeys, err := httpapi.LoadKeys(f.apiKeys, f.apiKeysFile)
	if errors.Is(err, httpapi.ErrInvalidKey) || errors.Is(err, httpapi.ErrNoKeys) {
		return usageError{fmt.Errorf("--api-keys, --api-keys-file: %w", err)} // names where, never the key
	}
	if err != nil {
		return err
	}
	id := f.gatewayID
	if id == "" {
		// The Upstream stamps the id on what clients send up, so it must
		// be the gateway's own: chosen here and given to both.
		id = randomID()
	}
	natsOpts, err := f.nats.options()
	if err != nil {
		return err
	}
	natsOpts.ReconnectWait = f.natsReconnectWait
	b, err := bus.New(bus.Config{
		URL:            f.nats.url,
		Connect:        natsOpts,
		EmbeddedListen: f.embeddedNATS,
		StoreDir:       jetStreamDir(f, log),
		Prefix:         f.prefix,
		Logger:         log.Named("bus"),
	})
	if err := natsFileError(err); err != nil {
		return err
	}
	if err != nil {
		return err // the bus's errors say "bus:" themselves
	}
	defer b.Close()
	var history gateway.History
	if f.durable {
		applied := !f.manageStream || applyStream(b, f, log)
		trackStream(b, f, log, applied)
		h, err := b.History(f.stream.history(f.prefix))
		if err != nil {
			return err
		}
		history = h
	}
	deny, err := openDenylist(b, f, log)
	if err != nil {
		return err
	}
	defer deny.Close()
	up, err := control.NewUpstream(b.Conn(), f.prefix, id)
	if err != nil {
		return err
	}
	defer up.Close()

	s, err := gateway.New(gateway.Config{
		Path:                f.path,
		Auth:                auth,
		AllowedOrigins:      splitList(f.allowedOrigins),
		Bus:                 b,
		Logger:              log.Named("gateway"),
		PingInterval:        orNegative(f.pingInterval),
		IdleTimeout:         orNegative(f.idleTimeout),
		WriteTimeout:        f.writeTimeout,
		WriteQueueLimit:     f.writeQueueLimit,
		MaxMessageSize:      f.maxMessageSize,
		HandshakeTimeout:    f.handshakeTimeout,
		CloseTimeout:        f.closeTimeout,
		MaxSubscriptions:    f.maxSubscriptions,
		PoolSize:            f.poolSize,
		MaxConns:            maxConns,
		ReadyConnsRatio:     f.readyConnsRatio,
		MaxConnsPerIP:       f.maxConnsPerIP,
		AcceptRate:          f.acceptRate,
		AcceptBurst:         f.acceptBurst,
		MessageRate:         orNegative(f.messageRate),
		MessageBurst:        f.messageBurst,
		MaxUserConns:        f.maxUserConns,
		UserConnsPolicy:     policy,
		DrainDelay:          orNegative(f.drainDelay),
		DrainTimeout:        orNegative(f.drainTimeout),
		SaturationTimeout:   f.saturationTimeout,
		StallTimeout:        f.stallTimeout,
		EnablePprof:         f.pprof,
		ConformanceEcho:     f.conformanceEcho,
		DisableCompression:  !f.compression,
		CompressThreshold:   orNegative(f.compressThreshold),
		History:             history,
		ReplayLimit:         f.replayLimit,
		ReplayBatch:         f.replayBatch,
		ReplayReaders:       f.replayReaders,
		AckInterval:         f.ackInterval,
		ID:                  id,
		Version:             buildVersion(),
		Revocations:         deny,
		Upstream:            up,
		UpstreamRate:        orNegative(f.upstreamRate),
		UpstreamBurst:       f.upstreamBurst,
		UpstreamTimeout:     f.upstreamTimeout,
		MaxUpstreamRequests: f.maxUpstreamRequests,
	})
	if err != nil {
		return err
	}
	b.OnMissed(s.NotifyMissed)
	if err := b.Start(s.Deliver); err != nil {
		s.Close()
		return err
	}
	responder, err := control.Serve(b.Conn(), s, control.ServeConfig{Prefix: f.prefix, Denylist: deny, Logger: log.Named("control")})
	if err != nil {
		s.Close()
		return err
	}
	defer responder.Close() // before the bus closes: deferred after it

	ln, err := listen(f.listen, f.reusePort)
	if err != nil {
		s.Close()
		return err
	}
	var admin *http.Server
	var adminAddr net.Addr
	if f.admin != "" {
		aln, err := net.Listen("tcp", f.admin)
		if err != nil {
			ln.Close()
			s.Close()
			return fmt.Errorf("admin: %w", err)
		}
		adminAddr = aln.Addr()
		handler, err := withAPI(s.AdminHandler(), f, apiKeys, b, log)
		if err != nil {
			aln.Close()
			ln.Close()
			s.Close()
			return err
		}
		if f.auth == "none" && !f.conformanceEcho {
			handler = withDemo(handler, demoConfig{WS: "ws://" + dialable(ln.Addr()) + f.path, Publish: publishCommand(f, b.ClientURL()), API: "/api/v1/"})
		}
		admin = &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
		go admin.Serve(aln)
		log.Info("admin listening", zap.Stringer("addr", adminAddr))
	} else if len(apiKeys) > 0 {
		log.Warn("API keys given but no admin listener (--admin is empty): the HTTP API is off")
	}
	log.Info("gateway listening",
		zap.Stringer("addr", ln.Addr()), zap.String("path", f.path), zap.String("auth", f.auth),
		zap.String("nats", bus.RedactURL(b.ClientURL())), zap.String("subject_prefix", f.prefix), zap.String("gateway_id", id))
	if f.auth == "none" && !f.conformanceEcho {
		log.Info(tryLine(f, ln.Addr(), adminAddr, b.ClientURL()))
	}

	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case err := <-served:
		s.Close()
		return err
	case sig := <-sigs:
		log.Info("shutting down: draining", zap.Stringer("signal", sig),
			zap.Duration("drain_delay", f.drainDelay), zap.Duration("drain_timeout", f.drainTimeout))
	}
	// The drain bounds itself: the delay, the window, then the close
	// handshakes, which the sweeper ends after --close-timeout.
	ctx, cancel := context.WithTimeout(context.Background(), f.drainDelay+f.drainTimeout+f.closeTimeout+5*time.Second)
	defer cancel()
	go func() {
		sig := <-sigs
		log.Warn("second signal: closing now", zap.Stringer("signal", sig))
		cancel()
	}()
	start := time.Now()
	err = s.Shutdown(ctx)
	if admin != nil {
		admin.Close()
	}
	if err != nil {
		log.Warn("drain cut short", zap.Error(err), zap.Duration("elapsed", time.Since(start)))
	}
	log.Info("stopped", zap.Duration("drain", time.Since(start)))
	return nil
}

// jetStreamDir returns the embedded server's JetStream directory, created if
// missing, or "" for no JetStream: with --durable=false or --nats-url, or
// when the directory cannot be made, which it logs (volatile notifications
// work without it).
func jetStreamDir(f serveFlags, log *zap.Logger) string {
	if !f.durable || f.nats.url != "" {
		return ""
	}
	dir, err := f.storeDir, error(nil)
	if dir == "" {
		dir, err = defaultStoreDir()
	}
	if err == nil {
		err = os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		log.Error("durable notifications off: no JetStream store directory; set --nats-store-dir", zap.Error(err))
		return ""
	}
	log.Info("jetstream store", zap.String("dir", dir))
	return dir
}

// openDenylist opens the denylist checked at upgrade, creating its bucket
// when the gateway manages the stream. With --durable=false, or without
// JetStream, it still works: it holds the revocations that disconnect
// requests carry, and keeps trying to follow the bucket, which another
// gateway's JetStream may hold.
func openDenylist(b *bus.Bus, f serveFlags, log *zap.Logger) (*control.Denylist, error) {
	ctx, cancel := context.WithTimeout(context.Background(), streamApplyTimeout)
	defer cancel()
	deny, err := control.OpenDenylist(ctx, b.Conn(), control.DenylistConfig{
		Bucket:   f.revocationBucket,
		Manage:   f.durable && f.manageStream,
		Replicas: f.stream.replicas,
		Memory:   f.stream.storage == "memory",
		Logger:   log.Named("denylist"),
	})
	if err != nil {
		return nil, fmt.Errorf("--revocation-bucket: %w", err)
	}
	return deny, nil
}

// streamApplyTimeout bounds the wait for JetStream when the gateway applies
// the stream at start.
const streamApplyTimeout = 5 * time.Second

// applyStream creates or updates the stream of durable notifications and
// reports whether it did, or logs why it could not: the gateway then
// serves volatile notifications as before, and durable publishes fail for
// their publishers.
func applyStream(b *bus.Bus, f serveFlags, log *zap.Logger) bool {
	ctx, cancel := context.WithTimeout(context.Background(), streamApplyTimeout)
	defer cancel()
	info, err := f.stream.apply(ctx, b.Conn(), f.prefix)
	if err != nil {
		log.Error("durable stream not applied: durable publishes and resumes fail until the stream and the ack bucket exist (wsgate stream apply); volatile notifications are unaffected", zap.Error(err))
		return false
	}
	log.Info("durable stream ready", zap.String("stream", info.Config.Name), zap.Strings("subjects", info.Config.Subjects),
		zap.Uint64("messages", info.State.Msgs), zap.Uint64("bytes", info.State.Bytes))
	return true
}

// trackStream has the bus look the stream up, now and after each
// reconnect, so that durable frames carry its epoch; until it is found
// they carry epoch 0, and the bus keeps looking. A failure is logged
// unless applyStream has just said why (applied false).
func trackStream(b *bus.Bus, f serveFlags, log *zap.Logger, applied bool) {
	ctx, cancel := context.WithTimeout(context.Background(), streamApplyTimeout)
	defer cancel()
	if _, err := b.TrackStream(ctx, f.stream.config(f.prefix).Name); err != nil && applied {
		log.Warn("durable stream epoch unknown: durable frames carry epoch 0 until the stream is found", zap.Error(err))
	}
}

// tryLine is what a newcomer who ran `make run` can do next: open the
// demo page, connect a WebSocket, look at the admin endpoints, and publish
// to that socket:
//
//	try: http://127.0.0.1:9090/demo/ · ws://127.0.0.1:8080/ws?user=42 · admin http://127.0.0.1:9090 · wsgate publish --user 42 '{"text":"hi"}'
//
// admin is nil without an admin listener, and then there is no demo page
// either.
func tryLine(f serveFlags, ws, admin net.Addr, natsURL string) string {
	line := "try: "
	if admin != nil {
		line += "http://" + dialable(admin) + "/demo/ · "
	}
	line += "ws://" + dialable(ws) + f.path + "?user=42"
	if admin != nil {
		line += " · admin http://" + dialable(admin)
	}
	return line + " · " + publishCommand(f, natsURL) + ` --user 42 '{"text":"hi"}'`
}

// publishCommand is the publish command that reaches this gateway, without
// its target and payload: it names --nats-url and --subject-prefix when
// they differ from its defaults.
func publishCommand(f serveFlags, natsURL string) string {
	// `make run` starts ./wsgate, which is not on PATH.
	self := "wsgate"
	if arg0 := os.Args[0]; strings.HasPrefix(arg0, "./") || strings.HasPrefix(arg0, "../") {
		self = arg0
	}
	cmd := self + " publish"
	if natsURL != defaultPublishURL {
		cmd += " --nats-url " + bus.RedactURL(natsURL)
	}
	if f.prefix != bus.DefaultPrefix {
		cmd += " --subject-prefix " + f.prefix
	}
	return cmd
}

// dialable is addr as a client can dial it: a listener on every interface
// is reached on localhost.
func dialable(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// orNegative maps a flag's 0 (none: off, no delay, every message) to the
// Config's negative: in a Config, 0 means the default, which on the command
// line is the flag's own default.
func orNegative[T int | float64 | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// connLimit raises the soft open-file limit to the hard one and returns the
// connection limit: max, or what the descriptors allow when max is 0. A max
// the descriptors cannot hold is an error now, not EMFILE at 3 a.m.
func connLimit(max int, log *zap.Logger) (int, error) {
	soft, err := fdlimit.Raise()
	if err != nil {
		log.Warn("raise the open-file limit", zap.Error(err))
	}
	capacity := fdlimit.Capacity(soft)
	log.Info("file limit", zap.Uint64("soft", soft), zap.Int("capacity", capacity))
	switch {
	case capacity == 0:
		return 0, fmt.Errorf("the open-file limit %d leaves no descriptors for connections (%d are reserved); raise it (ulimit -n, LimitNOFILE=)", soft, fdlimit.Reserved)
	case max == 0 && capacity == math.MaxInt:
		return 0, nil // no descriptor limit: no connection limit either
	case max == 0:
		return capacity, nil
	case max > capacity:
		return 0, fmt.Errorf("--max-conns %d is above the %d connections the open-file limit %d allows (%d descriptors are reserved); raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower --max-conns",
			max, capacity, soft, fdlimit.Reserved)
	case max < 0:
		return 0, fmt.Errorf("--max-conns %d is negative", max)
	}
	return max, nil
}

// randomID returns 6 random hex digits: a gateway id when --gateway-id is
// empty, unlikely to repeat in a fleet of hundreds.
func randomID() string {
	var b [3]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// withAPI serves the HTTP API at /api/ beside admin's endpoints. It is on
// with keys, or without them in development mode (--auth=none), where
// anyone who can reach the admin listener may call it; otherwise every
// call is answered 403 api_disabled, which says how to turn it on, and one
// line at start says so too. The keys are never logged.
func withAPI(admin http.Handler, f serveFlags, keys []string, b *bus.Bus, log *zap.Logger) (http.Handler, error) {
	insecure := f.auth == "none"
	apiLog := log.Named("api")
	switch {
	case insecure:
		log.Warn("INSECURE: the HTTP API on the admin listener takes calls without a key (--auth=none)", zap.String("path", "/api/v1/"))
	case len(keys) == 0:
		log.Info("http api off: set WSGATE_API_KEYS or --api-keys-file to serve /api/v1/ on the admin listener")
		apiLog = zap.NewNop() // every call is a 403 that says why
	default:
		log.Info("http api on", zap.String("path", "/api/v1/"), zap.Int("keys", len(keys)))
	}
	api, err := httpapi.New(httpapi.Config{
		Keys:      keys,
		Insecure:  insecure,
		Publisher: bus.NewPublisher(b.Conn(), f.prefix),
		Control:   control.NewClient(b.Conn(), f.prefix),
		Logger:    apiLog,
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", api)
	mux.Handle("/", admin)
	return mux, nil
}

// buildVersion is this binary's version line without its "wsgate ", as
// wsgate stats shows it: "v1.2.0 (revision 4b967eb1c2a0, …) go1.26.8".
func buildVersion() string {
	info, _ := debug.ReadBuildInfo()
	return strings.TrimPrefix(version(info), "wsgate ")
}
