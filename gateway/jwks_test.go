package gateway

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
	"github.com/wsgate/wsgate/internal/wstest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

// idpKey is a signing key of the tests' identity provider, published in
// a JWKS as kid.
type idpKey struct {
	kid    string
	method jwt.SigningMethod
	priv   crypto.Signer
	jwk    jwkset.JWKMarshal
}

// newIdPKey makes a key for alg (RS256: RSA 2048, ES256: P-256, EdDSA:
// Ed25519) whose JWK carries alg and use "sig".
func newIdPKey(t testing.TB, kid, alg string) idpKey {
	t.Helper()
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no test key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return idpKey{kid: kid, method: jwt.GetSigningMethod(alg), priv: priv, jwk: publicJWK(t, priv.Public(), kid, alg, jwkset.UseSig)}
}

// publicJWK is the JWK of pub with the given kid, alg and use ("" leaves
// them out).
func publicJWK(t testing.TB, pub crypto.PublicKey, kid, alg string, use jwkset.USE) jwkset.JWKMarshal {
	t.Helper()
	jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.ALG(alg), USE: use}})
	if err != nil {
		t.Fatal(err)
	}
	return jwk.Marshal()
}

// token signs a token for user 42 allowing topic.a, with k's kid in its
// header.
func (k idpKey) token(t testing.TB) []byte {
	return signKid(t, k.method, k.priv, k.kid)
}

func signKid(t testing.TB, m jwt.SigningMethod, key any, kid string) []byte {
	t.Helper()
	claims := jwtClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: "42", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}, Channels: []string{"topic.a"}}
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s)
}

func jwksDoc(t testing.TB, keys ...jwkset.JWKMarshal) []byte {
	t.Helper()
	b, err := json.Marshal(jwkset.JWKSMarshal{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwksServer is an identity provider's JWKS endpoint on loopback. It
// counts the requests it answers, and serves what set last gave it, or an
// error status.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex // guards doc and status
	doc     []byte
	status  int // 0 means 200 with doc
}

func newJWKSServer(t testing.TB, keys ...jwkset.JWKMarshal) *jwksServer {
	s := &jwksServer{doc: jwksDoc(t, keys...)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		doc, status := s.doc, s.status
		s.mu.Unlock()
		if status != 0 {
			http.Error(w, "unavailable", status)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

// publish makes the server answer with doc.
func (s *jwksServer) publish(doc []byte) {
	s.mu.Lock()
	s.doc, s.status = doc, 0
	s.mu.Unlock()
}

func (s *jwksServer) fail(status int) {
	s.mu.Lock()
	s.status = status
	s.mu.Unlock()
}

// newJWKSAuth is NewJWTAuth with cfg, closed when the test ends.
func newJWKSAuth(t testing.TB, cfg JWTConfig) *JWTAuth {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t)
	}
	a, err := NewJWTAuth(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestJWKSVerify(t *testing.T) {
	rs := newIdPKey(t, "rs", "RS256")
	es := newIdPKey(t, "es", "ES256")
	ed := newIdPKey(t, "ed", "EdDSA")
	enc := newIdPKey(t, "enc", "RS256")
	enc.jwk.USE = jwkset.UseEnc
	bare := newIdPKey(t, "bare", "ES256") // a JWK with neither alg nor use
	bare.jwk = publicJWK(t, bare.priv.Public(), "bare", "", "")
	rs384 := newIdPKey(t, "rs384", "RS256")
	rs384.jwk.ALG = jwkset.AlgRS384
	rs384.method = jwt.SigningMethodRS384
	srv := newJWKSServer(t, rs.jwk, es.jwk, ed.jwk, enc.jwk, bare.jwk, rs384.jwk)
	a := newJWKSAuth(t, JWTConfig{JWKSURL: srv.URL, JWKSMinRefresh: time.Hour})

	rsaPEM := pemPublic(t, rs.priv.Public())
	unsigned, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "42", "exp": time.Now().Add(time.Hour).Unix(), "kid": "rs"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	tests := []struct {
		name  string
		token []byte
		ok    bool
	}{
		{name: "RS256", token: rs.token(t), ok: true},
		{name: "ES256", token: es.token(t), ok: true},
		{name: "EdDSA", token: ed.token(t), ok: true},
		{name: "a key without alg verifies what its type implies", token: bare.token(t), ok: true},
		{name: "no kid", token: signKid(t, jwt.SigningMethodRS256, rs.priv, "")},
		{name: "unknown kid", token: signKid(t, jwt.SigningMethodRS256, rs.priv, "nope")},
		{name: "kid of another key", token: signKid(t, jwt.SigningMethodES256, es.priv, "rs")},
		{name: "the key's kid with another alg", token: signKid(t, jwt.SigningMethodRS384, rs.priv, "rs")},
		{name: "HS256 signed with the RSA public key (alg confusion)", token: signKid(t, jwt.SigningMethodHS256, rsaPEM, "rs")},
		{name: "HS256 signed with the RSA modulus (alg confusion)", token: signKid(t, jwt.SigningMethodHS256, []byte(rs.jwk.N), "rs")},
		{name: "alg none", token: []byte(unsigned)},
		{name: "a use=enc key is ignored", token: enc.token(t)},
		{name: "RS384 is not allowed by default", token: rs384.token(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := a.Authenticate(Credentials{Token: tt.token})
			if tt.ok {
				if err != nil || id.User != "42" || !id.mayJoin("topic.a") {
					t.Fatalf("got %+v, %v", id, err)
				}
				return
			}
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("got %+v, %v; want ErrUnauthorized", id, err)
			}
		})
	}
	if n := srv.fetches.Load(); n != 2 { // the first load, and one for kid "nope"
		t.Errorf("%d JWKS fetches, want 2", n)
	}

	t.Run("RS384 when allowed", func(t *testing.T) {
		a := newJWKSAuth(t, JWTConfig{JWKSURL: srv.URL, Algorithms: []string{"RS384"}})
		if _, err := a.Authenticate(Credentials{Token: rs384.token(t)}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Authenticate(Credentials{Token: rs.token(t)}); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("RS256 with only RS384 allowed: %v", err)
		}
	})
	t.Run("an allowed alg that is not the key's", func(t *testing.T) {
		a := newJWKSAuth(t, JWTConfig{JWKSURL: srv.URL, Algorithms: []string{"RS256", "RS384"}})
		if _, err := a.Authenticate(Credentials{Token: signKid(t, jwt.SigningMethodRS384, rs.priv, "rs")}); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("RS384 token for the RS256 key: %v", err)
		}
	})
}

// upgradeStatus dials e with token and returns the HTTP status of the
// answer: 101, or the refusal's.
func upgradeStatus(t *testing.T, e *env, token []byte) int {
	t.Helper()
	c, err := e.dialURL(e.url+"?token="+string(token), nil)
	var se ws.StatusError
	switch {
	case errors.As(err, &se):
		return int(se)
	case err != nil:
		t.Fatal(err)
	}
	c.Close()
	return http.StatusSwitchingProtocols
}

// The identity provider publishes key B next to key A, then retires A: a
// gateway that refreshes its JWKS takes tokens signed with A until A is gone
// from the set, then refuses them with 401, without a restart.
func TestJWKSRotation(t *testing.T) {
	a := newIdPKey(t, "a", "RS256")
	b := newIdPKey(t, "b", "ES256")
	srv := newJWKSServer(t, a.jwk)
	auth := newJWKSAuth(t, JWTConfig{JWKSURL: srv.URL, JWKSRefresh: 20 * time.Millisecond, JWKSMinRefresh: time.Hour})
	e := newEnv(t, func(c *Config) { c.Auth = auth })

	if got := upgradeStatus(t, e, a.token(t)); got != http.StatusSwitchingProtocols {
		t.Fatalf("token of key a: %d, want 101", got)
	}
	srv.publish(jwksDoc(t, a.jwk, b.jwk))
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		if got := upgradeStatus(t, e, b.token(t)); got != http.StatusSwitchingProtocols {
			return fmt.Errorf("token of the added key b: %d, want 101", got)
		}
		return nil
	})
	if got := upgradeStatus(t, e, a.token(t)); got != http.StatusSwitchingProtocols {
		t.Fatalf("token of key a while both are published: %d, want 101", got)
	}
	srv.publish(jwksDoc(t, b.jwk))
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		if got := upgradeStatus(t, e, a.token(t)); got != http.StatusUnauthorized {
			return fmt.Errorf("token of the retired key a: %d, want 401", got)
		}
		return nil
	})
	if got := upgradeStatus(t, e, b.token(t)); got != http.StatusSwitchingProtocols {
		t.Fatalf("token of key b after the rotation: %d, want 101", got)
	}
}

// A token whose kid is not in the set makes the gateway load the set again
// at once, so a key the provider has just added works for the first token
// that uses it, long before the periodic refresh.
func TestJWKSUnknownKidRefreshes(t *testing.T) {
	a := newIdPKey(t, "a", "ES256")
	c := newIdPKey(t, "c", "EdDSA")
	srv := newJWKSServer(t, a.jwk)
	auth := newJWKSAuth(t, JWTConfig{JWKSURL: srv.URL, JWKSRefresh: time.Hour, JWKSMinRefresh: time.Hour})
	srv.publish(jwksDoc(t, a.jwk, c.jwk))
	if _, err := auth.Authenticate(Credentials{Token: c.token(t)}); err != nil {
		t.Fatalf("the first token of the just-added key: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2", n)
	}
}

// A flood of tokens naming made-up kids cannot make the gateway fetch the
// JWKS for each: one load per JWKSMinRefresh, and every one is refused.
func TestJWKSUnknownKidFlood(t *testing.T) {
	a := newIdPKey(t, "a", "ES256")
	srv := newJWKSServer(t, a.jwk)
	auth := newJWKSAuth(t, JWTConfig{JWKSURL: srv.URL, JWKSRefresh: time.Hour, JWKSMinRefresh: time.Hour})
	const tokens, workers = 1000, 16
	kids := make(chan []byte, tokens)
	for range tokens {
		kids <- signKid(t, jwt.SigningMethodES256, a.priv, rand.Text())
	}
	close(kids)
	var accepted, slowest atomic.Int64
	refuse := func(tok []byte) {
		start := time.Now()
		if _, err := auth.Authenticate(Credentials{Token: tok}); err == nil {
			accepted.Add(1)
		}
		if d := int64(time.Since(start)); d > slowest.Load() {
			slowest.Store(d) // a racy max, enough for a log line
		}
	}
	// Half one after the other, where each kid could wait for a load of
	// its own, then half at once from many goroutines.
	for range tokens / 2 {
		refuse(<-kids)
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for tok := range kids {
				refuse(tok)
			}
		})
	}
	wg.Wait()
	t.Logf("slowest refusal: %v", time.Duration(slowest.Load()))
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d tokens with made-up kids accepted", n)
	}
	if n := srv.fetches.Load(); n > 2 { // the first load, and at most one for the flood
		t.Errorf("%d JWKS fetches for %d unknown kids, want at most 2", n, tokens)
	}
	if _, err := auth.Authenticate(Credentials{Token: a.token(t)}); err != nil {
		t.Fatalf("a good token after the flood: %v", err)
	}
}

// While a load asked for by an unknown kid hangs on an identity provider
// that does not answer, only that upgrade waits, and at most JWKSTimeout:
// other unknown kids are refused at once and known ones verify.
func TestJWKSUnknownKidHangingProvider(t *testing.T) {
	a := newIdPKey(t, "a", "ES256")
	var hang atomic.Bool
	var hanging atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			hanging.Add(1)
			<-r.Context().Done()
			return
		}
		w.Write(jwksDoc(t, a.jwk))
	}))
	defer srv.Close()

	for _, timeout := range []time.Duration{time.Hour, 50 * time.Millisecond} {
		hang.Store(false)
		hanging.Store(0)
		auth, err := NewJWTAuth(JWTConfig{JWKSURL: srv.URL, JWKSRefresh: time.Hour, JWKSMinRefresh: time.Hour, JWKSTimeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		hang.Store(true)
		first := make(chan error, 1)
		go func() {
			_, err := auth.Authenticate(Credentials{Token: signKid(t, jwt.SigningMethodES256, a.priv, "new")})
			first <- err
		}()
		if timeout == time.Hour {
			wstest.CheckFor(t, 5*time.Second, poll, func() error {
				if hanging.Load() == 0 {
					return errors.New("the unknown kid asked for no load")
				}
				return nil
			})
			if _, err := auth.Authenticate(Credentials{Token: signKid(t, jwt.SigningMethodES256, a.priv, "other")}); !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("another unknown kid during the load: %v", err)
			}
			if _, err := auth.Authenticate(Credentials{Token: a.token(t)}); err != nil {
				t.Fatalf("a known kid during the load: %v", err)
			}
			select {
			case err := <-first:
				t.Fatalf("the upgrade that asked for the load returned before it ended: %v", err)
			default:
			}
			auth.Close() // the only way the load ends
		}
		if err := <-first; !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("the unknown kid whose load hung (timeout %v): %v", timeout, err)
		}
		auth.Close()
	}
}

// While the JWKS cannot be loaded (the endpoint fails, answers garbage or
// an empty set, or is gone), the last good keys keep working.
func TestJWKSKeepsLastGoodKeys(t *testing.T) {
	a := newIdPKey(t, "a", "RS256")
	for _, tc := range []struct {
		name   string
		breaks func(*jwksServer)
	}{
		{name: "503", breaks: func(s *jwksServer) { s.fail(http.StatusServiceUnavailable) }},
		{name: "not JSON", breaks: func(s *jwksServer) { s.publish([]byte("<html>maintenance</html>")) }},
		{name: "empty set", breaks: func(s *jwksServer) { s.publish([]byte(`{"keys":[]}`)) }},
		{name: "only an enc key", breaks: func(s *jwksServer) {
			enc := a.jwk
			enc.USE = jwkset.UseEnc
			s.publish(jwksDoc(t, enc))
		}},
		{name: "down", breaks: func(s *jwksServer) { s.Listener.Close(); s.CloseClientConnections() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newJWKSServer(t, a.jwk)
			log, failures := failureLog()
			auth := newJWKSAuth(t, JWTConfig{JWKSURL: srv.URL, JWKSRefresh: 10 * time.Millisecond, JWKSTimeout: time.Second, Logger: log})
			tc.breaks(srv)
			waitFailedLoad(t, failures)
			if _, err := auth.Authenticate(Credentials{Token: a.token(t)}); err != nil {
				t.Fatalf("token of the last good key: %v", err)
			}
		})
	}
}

// failureLog is a logger that records the JWKS loads that failed.
func failureLog() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.WarnLevel)
	return zap.New(core), logs
}

// waitFailedLoad waits until a load has failed; the log of failures is
// rate-limited, but the first one is always written.
func waitFailedLoad(t *testing.T, failures *observer.ObservedLogs) {
	t.Helper()
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		if failures.FilterMessage("jwks load failed; keeping the last good keys").Len() == 0 {
			return errors.New("no failed JWKS load yet")
		}
		return nil
	})
}

// A JWKS file, for sites that cannot reach the identity provider, is read
// again every refresh: replacing the file rotates the keys.
func TestJWKSFile(t *testing.T) {
	a := newIdPKey(t, "a", "EdDSA")
	b := newIdPKey(t, "b", "RS256")
	path := filepath.Join(t.TempDir(), "jwks.json")
	write := func(keys ...jwkset.JWKMarshal) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, jwksDoc(t, keys...), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(a.jwk)
	log, failures := failureLog()
	auth := newJWKSAuth(t, JWTConfig{JWKSFile: path, JWKSRefresh: 10 * time.Millisecond, JWKSMinRefresh: time.Hour, Logger: log})
	if _, err := auth.Authenticate(Credentials{Token: a.token(t)}); err != nil {
		t.Fatal(err)
	}
	write(b.jwk)
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		if _, err := auth.Authenticate(Credentials{Token: a.token(t)}); err == nil {
			return errors.New("the key removed from the file still verifies")
		}
		if _, err := auth.Authenticate(Credentials{Token: b.token(t)}); err != nil {
			return fmt.Errorf("the key added to the file: %w", err)
		}
		return nil
	})
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFailedLoad(t, failures)
	if _, err := auth.Authenticate(Credentials{Token: b.token(t)}); err != nil {
		t.Fatalf("after the file vanished, the last good key: %v", err)
	}
}

func TestNewJWTAuthJWKSRefuses(t *testing.T) {
	a := newIdPKey(t, "a", "ES256")
	good := newJWKSServer(t, a.jwk)
	missing := newJWKSServer(t)
	missing.fail(http.StatusNotFound)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	for _, tc := range []struct {
		name string
		cfg  JWTConfig
		want string
	}{
		{name: "http to another host", cfg: JWTConfig{JWKSURL: "http://auth.example/certs"}, want: "http is allowed only to a loopback host"},
		{name: "ftp", cfg: JWTConfig{JWKSURL: "ftp://127.0.0.1/certs"}, want: "the scheme must be https"},
		{name: "404 at start", cfg: JWTConfig{JWKSURL: missing.URL}, want: "404"},
		{name: "nothing listening", cfg: JWTConfig{JWKSURL: "http://127.0.0.1:1/certs"}, want: "connection refused"},
		{name: "missing file", cfg: JWTConfig{JWKSFile: filepath.Join(t.TempDir(), "nope.json")}, want: "no such file"},
		{name: "not JSON", cfg: JWTConfig{JWKS: []byte("nope")}, want: "not a JWKS"},
		{name: "only an enc key", cfg: JWTConfig{JWKS: jwksDoc(t, publicJWK(t, a.priv.Public(), "a", "ES256", jwkset.UseEnc))}, want: "no usable verification key"},
		{name: "no kid", cfg: JWTConfig{JWKS: jwksDoc(t, publicJWK(t, a.priv.Public(), "", "ES256", ""))}, want: "no usable verification key"},
		{name: "RSA 1024", cfg: JWTConfig{JWKS: jwksDoc(t, publicJWK(t, small.Public(), "s", "RS256", ""))}, want: "no usable verification key"},
		{name: "alg of another key type", cfg: JWTConfig{JWKS: jwksDoc(t, publicJWK(t, a.priv.Public(), "a", "RS256", ""))}, want: "no usable verification key"},
		{name: "HS256 allowed", cfg: JWTConfig{JWKSURL: good.URL, Algorithms: []string{"HS256"}}, want: `"HS256" is not one of`},
		{name: "secret and JWKS", cfg: JWTConfig{Secret: testSecret, JWKSURL: good.URL}, want: "one JWT key source"},
		{name: "URL and file", cfg: JWTConfig{JWKSURL: good.URL, JWKSFile: "x"}, want: "one JWT key source"},
		{name: "file and document", cfg: JWTConfig{JWKSFile: "x", JWKS: jwksDoc(t, a.jwk)}, want: "one JWT key source"},
		{name: "algorithms with a secret", cfg: JWTConfig{Secret: testSecret, Algorithms: []string{"ES256"}}, want: "only with a JWKS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := NewJWTAuth(tc.cfg)
			if err == nil {
				a.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

// Close ends the refresher, even with a load under way, and leaves no
// goroutine behind.
func TestJWKSCloseLeavesNoGoroutine(t *testing.T) {
	a := newIdPKey(t, "a", "ES256")
	var fetches, hanging atomic.Int64
	var hang atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if hang.Load() { // a load that hangs until Close cancels it
			hanging.Add(1)
			<-r.Context().Done()
			return
		}
		w.Write(jwksDoc(t, a.jwk))
	}))
	defer srv.Close()
	ignore := goleak.IgnoreCurrent()
	for _, hangs := range []bool{false, true} {
		fetches.Store(0)
		hang.Store(false)
		auth, err := NewJWTAuth(JWTConfig{JWKSURL: srv.URL, JWKSRefresh: time.Millisecond, JWKSTimeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		hang.Store(hangs)
		wstest.CheckFor(t, 5*time.Second, poll, func() error {
			if fetches.Load() < 3 && hanging.Load() == 0 {
				return errors.New("no refresh yet")
			}
			return nil
		})
		auth.Close()
		auth.Close()
		if _, err := auth.Authenticate(Credentials{Token: a.token(t)}); err != nil {
			t.Fatalf("after Close, with the keys last loaded: %v", err)
		}
	}
	goleak.VerifyNone(t, ignore)
}

// authCases are tokens that verify, one per kind of key, shared by
// TestAuthenticateCases and BenchmarkAuthenticate.
func authCases(t testing.TB) []struct {
	name  string
	auth  *JWTAuth
	token []byte
} {
	type authCase = struct {
		name  string
		auth  *JWTAuth
		token []byte
	}
	cases := []authCase{{name: "HS256 secret", auth: newJWKSAuth(t, JWTConfig{Secret: testSecret}), token: signKid(t, jwt.SigningMethodHS256, testSecret, "")}}
	for _, alg := range DefaultJWKSAlgorithms {
		k := newIdPKey(t, "k-"+alg, alg)
		other := newIdPKey(t, "other-"+alg, alg) // a set of two, as during a rotation
		auth := newJWKSAuth(t, JWTConfig{JWKS: jwksDoc(t, other.jwk, k.jwk)})
		cases = append(cases, authCase{name: alg + " JWKS", auth: auth, token: k.token(t)})
	}
	return cases
}

func TestAuthenticateCases(t *testing.T) {
	for _, tc := range authCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			if id, err := tc.auth.Authenticate(Credentials{Token: tc.token}); err != nil || id.User != "42" {
				t.Fatalf("got %+v, %v", id, err)
			}
		})
	}
}

// BenchmarkAuthenticate is the cost of verifying one token at upgrade, by
// kind of key: go test -run '^$' -bench Authenticate ./gateway/
func BenchmarkAuthenticate(b *testing.B) {
	for _, tc := range authCases(b) {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tc.auth.Authenticate(Credentials{Token: tc.token}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
