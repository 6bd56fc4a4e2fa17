package bus

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/wsgate/wsgate/internal/lograte"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// embeddedReadyTimeout bounds how long New waits for the embedded server to
// accept connections.
const embeddedReadyTimeout = 10 * time.Second

// startEmbedded starts a NATS server in this process listening on listen
// (host:port, port 0 for a free one), with JetStream storing under
// storeDir unless it is empty, and returns it with the URL clients use. The bus connects to it over TCP like any publisher, rather than
// through nats.InProcessServer, so that the gateway's path to NATS, and its
// reconnect behaviour, are the same as with an external server.
func startEmbedded(listen, storeDir string, log *zap.Logger) (*server.Server, string, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, "", fmt.Errorf("%w: EmbeddedListen %q: %w", ErrInvalidConfig, listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < -1 || port > 65535 {
		return nil, "", fmt.Errorf("%w: EmbeddedListen %q: bad port", ErrInvalidConfig, listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as its default, 4222
	}
	opts := &server.Options{
		ServerName: "wsgate-embedded",
		Host:       host,
		Port:       port,
		NoSigs:     true, // signals belong to the gateway process
		NoLog:      true, // its log goes through serverLog below
		JetStream:  storeDir != "",
		StoreDir:   storeDir,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrEmbedded, err)
	}
	sl := &serverLog{log: log, fatal: make(chan string, 1)}
	srv.SetLogger(sl, false, false)
	srv.Start() // returns once the accept loop runs, or has failed

	// A listen error is reported through Fatalf; without watching for it we
	// would wait the whole readiness timeout for a port that is in use.
	deadline := time.Now().Add(embeddedReadyTimeout)
	for !srv.ReadyForConnections(50 * time.Millisecond) {
		select {
		case msg := <-sl.fatal:
			shutdown(srv)
			return nil, "", fmt.Errorf("%w: %s", ErrEmbedded, msg)
		default:
		}
		if time.Now().After(deadline) {
			shutdown(srv)
			return nil, "", fmt.Errorf("%w: not ready after %v", ErrEmbedded, embeddedReadyTimeout)
		}
	}
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		shutdown(srv)
		return nil, "", fmt.Errorf("%w: no TCP listener", ErrEmbedded)
	}
	// Clients cannot dial the unspecified address portably: use loopback.
	clientHost := host
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		clientHost = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			clientHost = "::1"
		}
	}
	return srv, "nats://" + net.JoinHostPort(clientHost, strconv.Itoa(addr.Port)), nil
}

// stopEmbedded shuts the embedded server down, if any, and waits for it.
func (b *Bus) stopEmbedded() {
	if b.srv != nil {
		shutdown(b.srv)
	}
}

func shutdown(srv *server.Server) {
	srv.Shutdown()
	srv.WaitForShutdown()
}

// serverLog adapts zap to nats-server's Logger. Notices (startup banner,
// listening addresses) go to Debug; warnings and errors are rate-limited,
// since a misbehaving publisher can make the server repeat one per message.
type serverLog struct {
	log   *zap.Logger
	warns lograte.Limiter
	errs  lograte.Limiter
	fatal chan string // capacity 1: the first fatal error, read by startEmbedded

	once sync.Once
}

func (l *serverLog) Noticef(format string, v ...any) {
	if ce := l.log.Check(zap.DebugLevel, "nats-server notice"); ce != nil {
		ce.Write(zap.String("detail", fmt.Sprintf(format, v...)))
	}
}

func (l *serverLog) Warnf(format string, v ...any) {
	l.limited(&l.warns, zap.WarnLevel, "nats-server warning", format, v)
}

func (l *serverLog) Errorf(format string, v ...any) {
	l.limited(&l.errs, zap.ErrorLevel, "nats-server error", format, v)
}

// Fatalf logs without exiting: the gateway decides what a dead embedded
// server means (New fails; later, readiness turns false).
func (l *serverLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.once.Do(func() { l.fatal <- msg })
	l.log.Error("nats-server fatal error", zap.String("detail", msg))
}

func (l *serverLog) Debugf(string, ...any) {}

func (l *serverLog) Tracef(string, ...any) {}

func (l *serverLog) limited(lim *lograte.Limiter, level zapcore.Level, msg, format string, v []any) {
	ce := l.log.Check(level, msg)
	if ce == nil {
		return
	}
	if ok, held := lim.Allow(); ok {
		ce.Write(zap.String("detail", fmt.Sprintf(format, v...)), zap.Int("suppressed", held))
	}
}
