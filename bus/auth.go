package bus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ConnectOptions are the settings of a NATS connection beyond its URL: how
// the client proves who it is, how it checks the server, and how it
// reconnects. The zero value connects without authentication or TLS (a
// development server, or the embedded one) and reconnects every 1–2 s.
// Config.Connect holds them for the gateway's connection, DialWith takes
// them for a publisher's.
//
// At most one of CredsFile, NKeySeedFile, User with Password, and Token is
// set. New and DialWith check that the files are readable and hold what
// they should, and name the field and the file, never a secret, when they
// do not. The credentials and nkey seed files are read again at every
// (re)connect, to sign the server's challenge: a rotated file is picked up
// without a restart, and the seed is not kept in memory. The TLS files are
// read once, by New or DialWith.
//
// Secrets are never logged: the connection's log lines and errors show URLs
// with their user information replaced by "xxxxx" (RedactURL), and any
// Password, Token or URL secret an error from nats.go repeats is replaced
// too.
type ConnectOptions struct {
	// CredsFile is a NATS credentials file, a user JWT and its nkey seed as
	// `nsc` or the account's issuer writes them, for a server in operator
	// mode (decentralized JWT authentication).
	CredsFile string

	// NKeySeedFile is a file holding a user nkey seed ("SU…"), for a server
	// whose authorization lists the user's public key (nkeys).
	NKeySeedFile string

	// User and Password authenticate with a user name and password: both
	// or neither.
	User, Password string

	// Token is an authentication token.
	Token string

	// TLSCA is a PEM file of the CA certificates that verify the server's
	// certificate; empty means the system's roots. Setting any TLS field
	// makes the connection require TLS (a tls:// URL does too). The name
	// checked against the server's certificate is the host of the URL being
	// connected to.
	TLSCA string

	// TLSCert and TLSKey are PEM files of the client certificate and its
	// private key, for a server that verifies its clients (verify: true):
	// both or neither.
	TLSCert, TLSKey string

	// ReconnectWait is the pause between two rounds of reconnect attempts,
	// to which a random jitter of up to ReconnectWait is added, so that a
	// fleet of clients does not hit a restarted server in one wave. Zero
	// means 1s (1–2 s between rounds). The connection reconnects forever.
	ReconnectWait time.Duration
}

// secured reports whether o sets any authentication or TLS option: those
// that apply to an external server only.
func (o ConnectOptions) secured() bool {
	return o.CredsFile != "" || o.NKeySeedFile != "" || o.User != "" || o.Password != "" ||
		o.Token != "" || o.TLSCA != "" || o.TLSCert != "" || o.TLSKey != ""
}

// wait returns the reconnect wait, the default for zero.
func (o ConnectOptions) wait() time.Duration {
	if o.ReconnectWait == 0 {
		return reconnectWait
	}
	return o.ReconnectWait
}

// natsOptions checks o and returns its nats.go options: authentication,
// TLS, and the reconnect pause with its jitter. Its errors wrap
// ErrInvalidConfig and name the field; a file that cannot be used is a
// *FileError.
func (o ConnectOptions) natsOptions() ([]nats.Option, error) {
	if o.ReconnectWait < 0 {
		return nil, fmt.Errorf("%w: ReconnectWait %v is negative", ErrInvalidConfig, o.ReconnectWait)
	}
	var methods []string
	for _, m := range []struct {
		name string
		set  bool
	}{
		{"CredsFile", o.CredsFile != ""},
		{"NKeySeedFile", o.NKeySeedFile != ""},
		{"User and Password", o.User != "" || o.Password != ""},
		{"Token", o.Token != ""},
	} {
		if m.set {
			methods = append(methods, m.name)
		}
	}
	if len(methods) > 1 {
		return nil, fmt.Errorf("%w: %s: a connection authenticates one way only", ErrInvalidConfig, strings.Join(methods, ", "))
	}
	if (o.User == "") != (o.Password == "") {
		return nil, fmt.Errorf("%w: User and Password go together", ErrInvalidConfig)
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, fmt.Errorf("%w: TLSCert and TLSKey go together", ErrInvalidConfig)
	}

	w := o.wait()
	opts := []nats.Option{nats.ReconnectWait(w), nats.ReconnectJitter(w, w)}
	switch {
	case o.CredsFile != "":
		if err := checkCreds(o.CredsFile); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	case o.NKeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(o.NKeySeedFile)
		if err != nil {
			return nil, fileError("NKeySeedFile", o.NKeySeedFile, err)
		}
		opts = append(opts, opt)
	case o.User != "":
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	case o.Token != "":
		opts = append(opts, nats.Token(o.Token))
	}
	if o.TLSCA != "" || o.TLSCert != "" {
		cfg, err := o.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(cfg))
	}
	return opts, nil
}

// checkCreds reads a credentials file once to report a missing or broken
// one at start, rather than at every connect attempt.
func checkCreds(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fileError("CredsFile", path, err)
	}
	defer clear(b) // it holds the seed
	if _, err := nkeys.ParseDecoratedJWT(b); err != nil {
		return fileError("CredsFile", path, fmt.Errorf("no user JWT: %w", err))
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return fileError("CredsFile", path, fmt.Errorf("no user nkey seed: %w", err))
	}
	kp.Wipe()
	return nil
}

// tlsConfig loads the CA and the client certificate.
func (o ConnectOptions) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLSCA != "" {
		pem, err := os.ReadFile(o.TLSCA)
		if err != nil {
			return nil, fileError("TLSCA", o.TLSCA, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fileError("TLSCA", o.TLSCA, errors.New("no PEM certificate"))
		}
	}
	if o.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, fileError("TLSCert", o.TLSCert+", "+o.TLSKey, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// FileError is returned by New and DialWith for a file of ConnectOptions
// that cannot be used: missing, unreadable, or not holding what it should.
// It is an ErrInvalidConfig, and never quotes the file's content.
type FileError struct {
	Field string // the ConnectOptions field: CredsFile, NKeySeedFile, TLSCA, or TLSCert for the certificate and key
	Path  string // the file; for TLSCert, "<cert>, <key>"
	Err   error  // why
}

func (e *FileError) Error() string {
	return fmt.Sprintf("%v: %s %s: %v", ErrInvalidConfig, e.Field, e.Path, e.Err)
}

// Unwrap returns ErrInvalidConfig and the cause.
func (e *FileError) Unwrap() []error { return []error{ErrInvalidConfig, e.Err} }

// fileError returns a *FileError, without the path an *fs.PathError would
// repeat.
func fileError(field, path string, err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		err = fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return &FileError{Field: field, Path: path, Err: err}
}

// refused reports whether err from a first connect attempt is the
// server's, or the TLS handshake's, answer to what the client presented:
// an authorization error, a certificate that does not verify, or a TLS
// connection the server closed right after the handshake, which is how
// TLS 1.3 refuses a client certificate when the alert itself is lost.
// Retrying cannot help; a server that is not reachable yet is another
// matter.
func refused(err error) bool {
	for _, e := range []error{
		nats.ErrAuthorization, nats.ErrAuthExpired, nats.ErrAuthRevoked, nats.ErrAccountAuthExpired,
		nats.ErrSecureConnRequired, nats.ErrSecureConnWanted, nats.ErrTLS,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	// The server's alert (bad or missing client certificate) read after
	// the handshake arrives as "remote error: tls: …", whose alert type
	// crypto/tls does not export.
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// RedactURL returns urls, one NATS URL or several comma-separated, with
// the secret of each URL's user information replaced by "xxxxx": the
// password of nats://user:pass@host, the token of nats://token@host. It
// works on the text, so a URL that does not parse is redacted too.
func RedactURL(urls string) string {
	items := strings.Split(urls, ",")
	for i, u := range items {
		if start, at, colon := userinfo(u); at >= 0 {
			if colon >= 0 {
				items[i] = u[:colon+1] + "xxxxx" + u[at:]
			} else {
				items[i] = u[:start] + "xxxxx" + u[at:]
			}
		}
	}
	return strings.Join(items, ",")
}

// userinfo returns where the user information of URL u starts, the index
// of its "@" (-1 when there is none), and the index of the ":" before the
// password (-1 when it is a token).
func userinfo(u string) (start, at, colon int) {
	if i := strings.Index(u, "://"); i >= 0 {
		start = i + len("://")
	}
	authority := u[start:]
	if end := strings.IndexAny(authority, "/?#"); end >= 0 {
		authority = authority[:end]
	}
	at = strings.LastIndexByte(authority, '@')
	if at < 0 {
		return start, -1, -1
	}
	colon = strings.IndexByte(authority[:at], ':')
	if colon >= 0 {
		colon += start
	}
	return start, start + at, colon
}

// urlSecrets returns the secrets in the user information of urls, as
// written and unescaped: what an error from nats.go or net/url may repeat.
func urlSecrets(urls string) []string {
	var out []string
	for u := range strings.SplitSeq(urls, ",") {
		start, at, colon := userinfo(u)
		if at < 0 {
			continue
		}
		s := u[start:at]
		if colon >= 0 {
			s = u[colon+1 : at]
		}
		out = append(out, s)
		if un, err := url.PathUnescape(s); err == nil && un != s {
			out = append(out, un)
		}
	}
	return out
}

// redactor replaces known secrets in the text of errors.
type redactor []string

// newRedactor returns the redactor of a connection to urls with o.
func newRedactor(urls string, o ConnectOptions) redactor {
	var r redactor
	for _, s := range append(urlSecrets(urls), o.Password, o.Token) {
		if s != "" {
			r = append(r, s)
		}
	}
	return r
}

// error returns err, or an error that wraps it with every secret in its
// text replaced by "xxxxx".
func (r redactor) error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := msg
	for _, s := range r {
		red = strings.ReplaceAll(red, s, "xxxxx")
	}
	if red == msg {
		return err
	}
	return &redactedError{msg: red, err: err}
}

// redactedError is an error whose text holds a secret, with the secret
// replaced: errors.Is and errors.As still see the original.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
