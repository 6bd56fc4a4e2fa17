package bus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wsgate/wsgate/internal/natstest"
	"github.com/wsgate/wsgate/internal/wstest"
)

// secret is the password or token of the tests: no error or log line may
// hold it.
const secret = "s3cret-Pa55word"

// noSecret fails when text holds one of secrets.
func noSecret(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range append(secrets, secret) {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s shows a secret: %s", what, text)
		}
	}
}

// writeFile writes content to name in a temporary directory and returns
// its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// roundTrip checks that b receives what a publisher dialed with opts sends.
func roundTrip(t *testing.T, b *Bus, rec recorder, url string, opts ConnectOptions) {
	t.Helper()
	if err := b.Interest("user.1"); err != nil {
		t.Fatalf("Interest: %v", err)
	}
	nc, err := DialWith(url, "auth-publisher", opts)
	if err != nil {
		t.Fatalf("DialWith: %v", err)
	}
	defer nc.Close()
	if err := NewPublisher(nc, "").User("1", []byte("through")); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, delivery{channel: "user.1", payload: "through"})
}

// refusedNew checks that New and DialWith both fail for a server that
// refuses opts, with an error that wraps want (when not nil) and matches
// about, and that New fails at once rather than connecting in the
// background.
func refusedNew(t *testing.T, url string, opts ConnectOptions, want error, about string) {
	t.Helper()
	re := regexp.MustCompile(about)
	b, err := New(Config{URL: url, Connect: opts})
	if err == nil {
		b.Close()
		t.Fatal("New: no error, want a refusal")
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("New: %v, want %v", err, want)
	}
	if !re.MatchString(err.Error()) {
		t.Errorf("New: %v, want it to match %q", err, about)
	}
	noSecret(t, "New's error", err.Error(), opts.Password, opts.Token)
	nc, err := DialWith(url, "", opts)
	if err == nil {
		nc.Close()
		t.Fatal("DialWith: no error, want a refusal")
	}
	if !re.MatchString(err.Error()) {
		t.Errorf("DialWith: %v, want it to match %q", err, about)
	}
	noSecret(t, "DialWith's error", err.Error(), opts.Password, opts.Token)
}

func TestConnectOptionsInvalid(t *testing.T) {
	pki := natstest.NewPKI(t)
	seed := writeFile(t, "seed.nk", "not a seed")
	tests := []struct {
		name  string
		url   string
		opts  ConnectOptions
		names string // what the error must say
	}{
		{"two methods", "nats://127.0.0.1:1", ConnectOptions{Token: secret, User: "u", Password: secret}, "user and password, token"},
		{"user without password", "nats://127.0.0.1:1", ConnectOptions{User: "u"}, "user and password go together"},
		{"password without user", "nats://127.0.0.1:1", ConnectOptions{Password: secret}, "user and password go together"},
		{"cert without key", "nats://127.0.0.1:1", ConnectOptions{TLSCert: pki.ClientCert}, "tlscert and tlskey"},
		{"missing creds", "nats://127.0.0.1:1", ConnectOptions{CredsFile: "/nonexistent/u.creds"}, "/nonexistent/u.creds"},
		{"bad creds", "nats://127.0.0.1:1", ConnectOptions{CredsFile: seed}, seed},
		{"bad seed", "nats://127.0.0.1:1", ConnectOptions{NKeySeedFile: seed}, seed},
		{"CA not PEM", "nats://127.0.0.1:1", ConnectOptions{TLSCA: seed}, seed},
		{"key of another cert", "nats://127.0.0.1:1", ConnectOptions{TLSCert: pki.ClientCert, TLSKey: pki.ServerKey}, "tlscert"},
		{"negative wait", "nats://127.0.0.1:1", ConnectOptions{ReconnectWait: -time.Second}, "reconnectwait"},
		{"embedded with token", "", ConnectOptions{Token: secret}, "embedded"},
		{"embedded with TLS", "", ConnectOptions{TLSCA: pki.CA}, "embedded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(Config{URL: tt.url, EmbeddedListen: "127.0.0.1:0", Connect: tt.opts})
			if err == nil {
				b.Close()
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New: %v, want ErrInvalidConfig", err)
			}
			if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.names)) {
				t.Errorf("New: %v, want it to name %s", err, tt.names)
			}
			if fe, ok := errors.AsType[*FileError](err); strings.HasPrefix(tt.names, "/") && (!ok || fe.Path != tt.names) {
				t.Errorf("New: %v, want a *FileError for %s", err, tt.names)
			}
			noSecret(t, "New's error", err.Error())
			if tt.url == "" {
				return
			}
			if nc, err := DialWith(tt.url, "", tt.opts); !errors.Is(err, ErrInvalidConfig) {
				if nc != nil {
					nc.Close()
				}
				t.Errorf("DialWith: %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// The embedded server takes the reconnect pause: only credentials and TLS
// are for an external server.
func TestEmbeddedReconnectWait(t *testing.T) {
	b, rec := newBus(t, Config{Connect: ConnectOptions{ReconnectWait: 2 * time.Second}}, nil)
	roundTrip(t, b, rec, b.ClientURL(), ConnectOptions{})
}

func TestTLS(t *testing.T) {
	pki := natstest.NewPKI(t)
	srv := natstest.RunWith(t, &server.Options{TLSConfig: pki.ServerTLS, TLSVerify: true, TLSTimeout: 5})
	url := srv.ClientURL()
	good := ConnectOptions{TLSCA: pki.CA, TLSCert: pki.ClientCert, TLSKey: pki.ClientKey}

	b, rec := newBus(t, Config{URL: url, Connect: good}, nil)
	if !b.Connected() {
		t.Fatal("not connected with the CA and a client certificate")
	}
	if !b.Conn().TLSRequired() {
		t.Error("the server does not require TLS: the test proves nothing")
	}
	roundTrip(t, b, rec, url, good)

	t.Run("no client certificate", func(t *testing.T) {
		// TLS 1.3 sends the alert after the handshake; when the server's
		// close loses it, nats.go says the server closed the connection
		// after the handshake.
		refusedNew(t, url, ConnectOptions{TLSCA: pki.CA}, nil, "tls: certificate required|connection closed by remote after TLS handshake")
	})
	t.Run("wrong CA", func(t *testing.T) {
		refusedNew(t, url, ConnectOptions{TLSCA: pki.Other, TLSCert: pki.ClientCert, TLSKey: pki.ClientKey}, nats.ErrTLS, "certificate signed by unknown authority")
	})
	t.Run("no TLS options", func(t *testing.T) {
		// The server requires TLS, so nats.go tries it, and the system
		// roots do not know the test's CA.
		refusedNew(t, url, ConnectOptions{}, nats.ErrTLS, "certificate signed by unknown authority")
	})
}

func TestTLSNotOffered(t *testing.T) {
	pki := natstest.NewPKI(t)
	srv := natstest.Run(t, false)
	refusedNew(t, srv.ClientURL(), ConnectOptions{TLSCA: pki.CA}, nats.ErrSecureConnWanted, "secure connection")
}

func TestNKey(t *testing.T) {
	user, seedFile := newNKey(t)
	other, otherFile := newNKey(t)
	_ = other
	srv := natstest.RunWith(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: user}}})
	url := srv.ClientURL()

	opts := ConnectOptions{NKeySeedFile: seedFile}
	b, rec := newBus(t, Config{URL: url, Connect: opts}, nil)
	roundTrip(t, b, rec, url, opts)

	seed, err := os.ReadFile(otherFile)
	if err != nil {
		t.Fatal(err)
	}
	refusedNew(t, url, ConnectOptions{NKeySeedFile: otherFile}, nats.ErrAuthorization, "Authorization Violation")
	refusedNew(t, url, ConnectOptions{}, nats.ErrAuthorization, "Authorization Violation")
	b2, err := New(Config{URL: url, Connect: ConnectOptions{NKeySeedFile: otherFile}})
	if err == nil {
		b2.Close()
		t.Fatal("New with an unknown nkey: no error")
	}
	noSecret(t, "New's error", err.Error(), string(seed))
}

// newNKey returns a user's public nkey and a file holding its seed.
func newNKey(t *testing.T) (pub, seedFile string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err = kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	return pub, writeFile(t, "user.nk", string(seed)+"\n")
}

func TestUserPassword(t *testing.T) {
	srv := natstest.RunWith(t, &server.Options{Username: "wsgate", Password: secret})
	url := srv.ClientURL()
	opts := ConnectOptions{User: "wsgate", Password: secret}
	b, rec := newBus(t, Config{URL: url, Connect: opts}, nil)
	roundTrip(t, b, rec, url, opts)

	wrong := "wr0ng-" + secret[:4]
	refusedNew(t, url, ConnectOptions{User: "wsgate", Password: wrong}, nats.ErrAuthorization, "Authorization Violation")

	// Credentials in the URL work too, and are redacted the same way.
	withInfo := strings.Replace(url, "nats://", "nats://wsgate:"+wrong+"@", 1)
	refusedNew(t, withInfo, ConnectOptions{}, nats.ErrAuthorization, "Authorization Violation")
	_, err := DialWith(withInfo, "", ConnectOptions{})
	noSecret(t, "DialWith's error", err.Error(), wrong)
	if !strings.Contains(err.Error(), "wsgate:xxxxx@") {
		t.Errorf("DialWith: %v, want the URL with its password redacted", err)
	}
}

func TestToken(t *testing.T) {
	srv := natstest.RunWith(t, &server.Options{Authorization: secret})
	url := srv.ClientURL()
	opts := ConnectOptions{Token: secret}
	b, rec := newBus(t, Config{URL: url, Connect: opts}, nil)
	roundTrip(t, b, rec, url, opts)
	refusedNew(t, url, ConnectOptions{Token: "not-" + secret[:6]}, nats.ErrAuthorization, "Authorization Violation")
}

// TestCredsFile runs a server in operator mode (decentralized JWT
// authentication): an operator, an account it signed in a memory resolver,
// and users the account signed, each in a credentials file.
func TestCredsFile(t *testing.T) {
	operator, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatal(err)
	}
	opPub, _ := operator.PublicKey()
	account, accJWT := newAccount(t, operator)
	accPub, _ := account.PublicKey()
	resolver := &server.MemAccResolver{}
	if err := resolver.Store(accPub, accJWT); err != nil {
		t.Fatal(err)
	}
	srv := natstest.RunWith(t, &server.Options{TrustedKeys: []string{opPub}, AccountResolver: resolver})
	url := srv.ClientURL()

	opts := ConnectOptions{CredsFile: newCreds(t, account)}
	b, rec := newBus(t, Config{URL: url, Connect: opts}, nil)
	roundTrip(t, b, rec, url, opts)

	// A user of an account the server does not know.
	stranger, _ := newAccount(t, operator)
	refusedNew(t, url, ConnectOptions{CredsFile: newCreds(t, stranger)}, nats.ErrAuthorization, "Authorization Violation")
}

// newAccount returns an account key and its JWT signed by operator.
func newAccount(t *testing.T, operator nkeys.KeyPair) (nkeys.KeyPair, string) {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	token, err := jwt.NewAccountClaims(pub).Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	return kp, token
}

// newCreds writes the credentials file of a new user of account.
func newCreds(t *testing.T, account nkeys.KeyPair) string {
	t.Helper()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	token, err := jwt.NewUserClaims(pub).Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "user.creds", string(creds))
}

// Several seed URLs, comma-separated: the bus connects to one that answers,
// here the second, with the credentials given once.
func TestSeedURLs(t *testing.T) {
	srv := natstest.RunWith(t, &server.Options{Authorization: secret})
	url := deadURL(t) + "," + srv.ClientURL()
	b, rec := newBus(t, Config{URL: url, Connect: ConnectOptions{Token: secret}}, nil)
	if !b.Connected() {
		t.Fatal("not connected through the second seed URL")
	}
	roundTrip(t, b, rec, url, ConnectOptions{Token: secret})
}

// The log lines of a connection whose URL holds a token show the URL
// redacted, and the bus's log never holds the token, also while the
// server is gone and the bus tries to reconnect.
func TestLogRedacted(t *testing.T) {
	srv := natstest.RunWith(t, &server.Options{Authorization: secret})
	url := strings.Replace(srv.ClientURL(), "nats://", "nats://"+secret+"@", 1)
	core, logs := observer.New(zap.DebugLevel)
	b, _ := newBus(t, Config{URL: url, Logger: zap.New(core)}, nil)
	if !b.Connected() {
		t.Fatal("not connected with the token in the URL")
	}
	// nats.go runs the connect handler on its callback goroutine: wait for
	// its line before the server goes, or the handler may find no URL.
	wstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if logs.FilterMessage("nats connected").Len() == 0 {
			return errors.New("no connect logged")
		}
		return nil
	})
	srv.Shutdown()
	srv.WaitForShutdown()
	wstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if logs.FilterMessage("nats reconnect attempt failed").Len() == 0 {
			return errors.New("no reconnect attempt logged")
		}
		return nil
	})
	b.Close()
	connected := logs.FilterMessage("nats connected").All()
	if len(connected) != 1 || connected[0].ContextMap()["url"] != strings.Replace(url, secret, "xxxxx", 1) {
		t.Errorf("nats connected lines: %+v, want one with the URL redacted", connected)
	}
	for _, e := range logs.All() {
		noSecret(t, "log line "+e.Message, e.Message+" "+strings.Join(fieldStrings(e.ContextMap()), " "))
	}
}

func fieldStrings(m map[string]any) []string {
	var out []string
	for k, v := range m {
		s, _ := v.(string)
		out = append(out, k+"="+s)
	}
	return out
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://u:pw@h:4222", "nats://u:xxxxx@h:4222"},
		{"nats://tok@h:4222", "nats://xxxxx@h:4222"},
		{"tls://u:p%40ss@h:4222/x?y@z", "tls://u:xxxxx@h:4222/x?y@z"},
		{"u:pw@h:4222", "u:xxxxx@h:4222"},
		{"nats://a:1@h1,nats://h2,nats://tok@h3", "nats://a:xxxxx@h1,nats://h2,nats://xxxxx@h3"},
		{"nats://u:p w@h", "nats://u:xxxxx@h"}, // does not parse: still redacted
		{"", ""},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	r := newRedactor("nats://u:p%40ss@h,nats://tok3n@h2", ConnectOptions{Token: secret})
	err := r.error(errors.New(`parse "nats://u:p@ss@h": p%40ss, tok3n, ` + secret))
	if got, want := err.Error(), `parse "nats://u:xxxxx@h": xxxxx, xxxxx, xxxxx`; got != want {
		t.Errorf("redacted error %q, want %q", got, want)
	}
}

// A server that stops accepting the bus's credentials (rotated on the
// server before the gateway's secret) leaves the bus reconnecting, not
// closed: once the server takes them again, the bus is back with its
// subscriptions. nats.go's default would give up after the second
// identical authorization error.
func TestAuthRecovers(t *testing.T) {
	opts := &server.Options{Authorization: secret}
	srv := natstest.RunWith(t, opts)
	failures := &authLog{}
	srv.SetLogger(failures, false, false)
	url := srv.ClientURL()
	b, rec := newBus(t, Config{URL: url, Connect: ConnectOptions{Token: secret, ReconnectWait: 20 * time.Millisecond}}, nil)
	if err := b.Interest("user.1"); err != nil {
		t.Fatal(err)
	}

	reload := func(token string) {
		t.Helper()
		o := *opts
		o.Authorization = token
		if err := srv.ReloadOptions(&o); err != nil {
			t.Fatalf("reload: %v", err)
		}
	}
	reload("rotated-" + secret)
	wstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := failures.count(); n < 5 {
			return fmt.Errorf("%d authorization failures so far", n)
		}
		return nil
	})
	if b.Conn().IsClosed() {
		t.Fatal("the connection gave up after repeated authorization errors")
	}
	reload(secret)
	wstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !b.Connected() {
			return errors.New("not reconnected")
		}
		return nil
	})
	nc, err := DialWith(url, "", ConnectOptions{Token: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := NewPublisher(nc, "").User("1", []byte("back")); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, delivery{channel: "user.1", payload: "back"})
}

// authLog counts the authorization failures a NATS server logs.
type authLog struct {
	mu sync.Mutex // protects n
	n  int
}

func (l *authLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (l *authLog) Errorf(format string, v ...any) {
	if strings.Contains(fmt.Sprintf(format, v...), server.ErrAuthentication.Error()) {
		l.mu.Lock()
		l.n++
		l.mu.Unlock()
	}
}

func (l *authLog) Noticef(string, ...any) {}
func (l *authLog) Warnf(string, ...any)   {}
func (l *authLog) Fatalf(string, ...any)  {}
func (l *authLog) Debugf(string, ...any)  {}
func (l *authLog) Tracef(string, ...any)  {}
