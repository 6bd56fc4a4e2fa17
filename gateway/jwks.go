package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
)

// The JWKS defaults, used when the JWTConfig field is zero.
const (
	// DefaultJWKSRefresh is how often a JWKS is loaded again: a key removed
	// from the set stops verifying within this long.
	DefaultJWKSRefresh = 15 * time.Minute
	// DefaultJWKSMinRefresh is the least time between two loads caused by
	// tokens with an unknown kid (the default of Keycloak's adapters).
	DefaultJWKSMinRefresh = 10 * time.Second
	// DefaultJWKSTimeout bounds one load of a JWKS, the first one included.
	DefaultJWKSTimeout = 5 * time.Second
)

// DefaultJWKSAlgorithms are the algorithms a JWKS key may verify unless
// JWTConfig.Algorithms says otherwise.
var DefaultJWKSAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// jwksMaxBytes bounds a JWKS document; real ones are a few kilobytes.
const jwksMaxBytes = 1 << 20

// jwksLogEvery is the least time between two logs of failed loads.
const jwksLogEvery = time.Minute

// jwksAlgorithms are the algorithms a JWKS key may be used with: asymmetric
// only, so that a published key can never act as an HMAC secret.
var jwksAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// jwksKey is one verification key of a set.
type jwksKey struct {
	alg string // the one algorithm the key verifies
	key any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// keySet is a JWKS by kid. A loaded keySet is never modified: a load builds
// a new one and swaps it in, so verifications read it without a lock.
type keySet map[string]jwksKey

// jwks is a JSON Web Key Set from a URL, a file or bytes, loaded again every
// refresh and, at most every minRefresh, when a token names an unknown kid.
// The last good set stays in use while loads fail. key and keyfunc may be
// called concurrently, with each other and with the refresher.
type jwks struct {
	source     string                                    // the URL or path, for errors and logs
	read       func(ctx context.Context) ([]byte, error) // nil for a static set
	algs       []string
	refresh    time.Duration
	minRefresh time.Duration
	timeout    time.Duration
	log        *zap.Logger
	transport  *http.Transport // nil unless source is a URL

	keys atomic.Pointer[keySet]

	// kick asks the refresher for a load now; the refresher closes the
	// channel it receives once that load is over.
	kick chan chan struct{}

	mu         sync.Mutex // guards the fields below
	lastKick   time.Time  // when an unknown kid last asked for a load
	lastLogged time.Time  // when a failed load was last logged
	failing    bool       // the last load failed

	ctx     context.Context // ends with close
	cancel  context.CancelFunc
	running bool          // the refresher was started; set before it starts
	done    chan struct{} // closed when the refresher has returned
}

// newJWKS loads the set named by cfg (exactly one of JWKSURL, JWKSFile and
// JWKS is set) and, unless it is static, starts its refresher.
func newJWKS(cfg JWTConfig, log *zap.Logger) (*jwks, error) {
	algs, err := jwksAllowed(cfg.Algorithms)
	if err != nil {
		return nil, err
	}
	j := &jwks{
		algs:       algs,
		refresh:    orDefault(cfg.JWKSRefresh, DefaultJWKSRefresh),
		minRefresh: orDefault(cfg.JWKSMinRefresh, DefaultJWKSMinRefresh),
		timeout:    orDefault(cfg.JWKSTimeout, DefaultJWKSTimeout),
		log:        log,
		kick:       make(chan chan struct{}, 1),
		done:       make(chan struct{}),
	}
	switch {
	case cfg.JWKSURL != "":
		if err := checkJWKSURL(cfg.JWKSURL); err != nil {
			return nil, err
		}
		j.source = cfg.JWKSURL
		j.transport = http.DefaultTransport.(*http.Transport).Clone()
		client := &http.Client{Transport: j.transport, CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return checkJWKSURL(req.URL.String())
		}}
		j.read = func(ctx context.Context) ([]byte, error) { return getJWKS(ctx, client, cfg.JWKSURL) }
	case cfg.JWKSFile != "":
		j.source = cfg.JWKSFile
		j.read = func(context.Context) ([]byte, error) { return readJWKSFile(cfg.JWKSFile) }
	default:
		j.source = "the given JWKS"
	}
	j.ctx, j.cancel = context.WithCancel(context.Background())
	if j.read == nil {
		if err := j.store(cfg.JWKS); err != nil {
			return nil, fmt.Errorf("gateway: JWKS: %w", err)
		}
		return j, nil
	}
	if err := j.load(); err != nil {
		j.close()
		return nil, fmt.Errorf("gateway: JWKS %s: %w", j.source, err)
	}
	j.running = true
	go j.run()
	return j, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// jwksAllowed checks the configured algorithms; nil means the defaults.
func jwksAllowed(algs []string) ([]string, error) {
	if len(algs) == 0 {
		return DefaultJWKSAlgorithms, nil
	}
	for _, a := range algs {
		if !slices.Contains(jwksAlgorithms, a) {
			return nil, fmt.Errorf("gateway: JWKS algorithm %q is not one of %s", a, strings.Join(jwksAlgorithms, ", "))
		}
	}
	return algs, nil
}

// checkJWKSURL allows https, and http only to a loopback host (a sidecar, a
// test): over plain http anyone on the path could hand the gateway keys.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("gateway: JWKS URL: %w", err)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("gateway: JWKS URL %s: http is allowed only to a loopback host; use https", raw)
	}
	return fmt.Errorf("gateway: JWKS URL %q: the scheme must be https", raw)
}

func getJWKS(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	return readLimited(resp.Body)
}

func readJWKSFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f)
}

func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, jwksMaxBytes+1))
	if err == nil && len(b) > jwksMaxBytes {
		err = fmt.Errorf("larger than %d bytes", jwksMaxBytes)
	}
	return b, err
}

// run is the refresher: it loads the set every refresh, and when kicked.
func (j *jwks) run() {
	defer close(j.done)
	t := time.NewTicker(j.refresh)
	defer t.Stop()
	for {
		var done chan struct{}
		select {
		case <-j.ctx.Done():
			return
		case <-t.C:
		case done = <-j.kick:
		}
		if err := j.load(); err != nil {
			j.failed(err)
		} else {
			j.recovered()
		}
		if done != nil {
			close(done)
		}
	}
}

// load reads the set and swaps it in, bounded by the timeout.
func (j *jwks) load() error {
	ctx, cancel := context.WithTimeout(j.ctx, j.timeout)
	defer cancel()
	b, err := j.read(ctx)
	if err != nil {
		return err
	}
	return j.store(b)
}

// store parses a JWKS document and, if it holds a usable key, makes it the
// set. Keys that cannot verify a token here are left out, and logged.
func (j *jwks) store(doc []byte) error {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(doc, &set); err != nil {
		return fmt.Errorf("not a JWKS: %w", err)
	}
	keys := make(keySet, len(set.Keys))
	for _, m := range set.Keys {
		k, err := j.verificationKey(m)
		if err == nil {
			if _, dup := keys[m.KID]; dup {
				err = errors.New("the kid is taken by an earlier key")
			}
		}
		if err != nil {
			if ce := j.log.Check(zap.DebugLevel, "jwks key skipped"); ce != nil {
				ce.Write(zap.String("source", j.source), zap.String("kid", m.KID), zap.String("kty", string(m.KTY)), zap.Error(err))
			}
			continue
		}
		keys[m.KID] = k
	}
	if len(keys) == 0 {
		// Keep the last good set: an empty answer is far likelier a broken
		// endpoint than an identity provider retiring every key at once.
		return fmt.Errorf("no usable verification key (%d keys; usable: kid set, use sig or none, alg among %s)", len(set.Keys), strings.Join(j.algs, ", "))
	}
	if old := j.keys.Swap(&keys); old == nil || !sameKids(*old, keys) {
		j.log.Info("jwks keys loaded", zap.String("source", j.source), zap.Strings("kids", kids(keys)))
	}
	return nil
}

// verificationKey returns the key m describes and the one algorithm it
// verifies: its alg, or the one its type implies (RSA RS256, P-256 ES256,
// P-384 ES384, P-521 ES512, Ed25519 EdDSA).
func (j *jwks) verificationKey(m jwkset.JWKMarshal) (jwksKey, error) {
	switch {
	case m.KID == "":
		return jwksKey{}, errors.New("no kid")
	case m.USE != "" && m.USE != jwkset.UseSig:
		return jwksKey{}, fmt.Errorf("use %q", m.USE)
	case len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify):
		return jwksKey{}, errors.New("key_ops without verify")
	case m.KTY == jwkset.KtyOct:
		return jwksKey{}, errors.New("a symmetric key")
	}
	jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return jwksKey{}, err
	}
	alg := string(m.ALG)
	switch k := jwk.Key().(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return jwksKey{}, fmt.Errorf("a %d-bit RSA key; at least 2048", k.N.BitLen())
		}
		if alg == "" {
			alg = "RS256"
		}
		if !strings.HasPrefix(alg, "RS") && !strings.HasPrefix(alg, "PS") {
			return jwksKey{}, fmt.Errorf("alg %s on an RSA key", alg)
		}
	case *ecdsa.PublicKey:
		want := map[string]string{"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[k.Curve.Params().Name]
		if alg == "" {
			alg = want
		}
		if alg != want {
			return jwksKey{}, fmt.Errorf("alg %s on a %s key", alg, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if alg == "" {
			alg = "EdDSA"
		}
		if alg != "EdDSA" {
			return jwksKey{}, fmt.Errorf("alg %s on an Ed25519 key", alg)
		}
	default:
		return jwksKey{}, fmt.Errorf("key type %T cannot verify a signature", k)
	}
	if !slices.Contains(j.algs, alg) {
		return jwksKey{}, fmt.Errorf("alg %s is not allowed", alg)
	}
	return jwksKey{alg: alg, key: jwk.Key()}, nil
}

func kids(keys keySet) []string {
	ids := make([]string, 0, len(keys))
	for kid := range keys {
		ids = append(ids, kid)
	}
	slices.Sort(ids)
	return ids
}

func sameKids(a, b keySet) bool {
	if len(a) != len(b) {
		return false
	}
	for kid := range a {
		if _, ok := b[kid]; !ok {
			return false
		}
	}
	return true
}

// failed logs a failed load, at most every jwksLogEvery.
func (j *jwks) failed(err error) {
	j.mu.Lock()
	now := time.Now()
	logIt := now.Sub(j.lastLogged) >= jwksLogEvery
	if logIt {
		j.lastLogged = now
	}
	j.failing = true
	j.mu.Unlock()
	if logIt && j.ctx.Err() == nil {
		j.log.Warn("jwks load failed; keeping the last good keys", zap.String("source", j.source), zap.Error(err))
	}
}

func (j *jwks) recovered() {
	j.mu.Lock()
	was := j.failing
	j.failing = false
	j.mu.Unlock()
	if was {
		j.log.Info("jwks loaded again", zap.String("source", j.source))
	}
}

// key returns the key with kid. For an unknown kid it asks the refresher
// for a load, if no unknown kid did in the last minRefresh, and waits for
// that load, at most the timeout; otherwise it answers at once. So a flood
// of made-up kids costs one load per minRefresh and holds one caller for
// at most the timeout.
func (j *jwks) key(kid string) (jwksKey, bool) {
	if k, ok := (*j.keys.Load())[kid]; ok {
		return k, true
	}
	if j.read == nil {
		return jwksKey{}, false
	}
	j.mu.Lock()
	now := time.Now()
	if now.Sub(j.lastKick) < j.minRefresh {
		j.mu.Unlock()
		return jwksKey{}, false
	}
	j.lastKick = now
	j.mu.Unlock()
	done := make(chan struct{})
	select {
	case j.kick <- done:
	default: // a kick is pending already
		return jwksKey{}, false
	}
	wait := time.NewTimer(j.timeout) // the refresher may be busy with a periodic load
	defer wait.Stop()
	select {
	case <-done:
	case <-wait.C:
		return jwksKey{}, false
	case <-j.ctx.Done():
		return jwksKey{}, false
	}
	k, ok := (*j.keys.Load())[kid]
	return k, ok
}

// keyfunc is the jwt.Keyfunc: the token must name a kid of the set, and its
// alg must be the key's.
func (j *jwks) keyfunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errNoKid
	}
	k, ok := j.key(kid)
	if !ok {
		return nil, fmt.Errorf("%w %q", errUnknownKid, kid)
	}
	if alg := t.Method.Alg(); alg != k.alg {
		return nil, fmt.Errorf("gateway: token alg %s, but key %q is for %s", alg, kid, k.alg)
	}
	return k.key, nil
}

var (
	errNoKid      = errors.New("gateway: the token has no kid, which a JWKS needs")
	errUnknownKid = errors.New("gateway: no JWKS key with kid")
)

// close stops the refresher and waits for it.
func (j *jwks) close() {
	j.cancel()
	if j.running {
		<-j.done
	}
	if j.transport != nil {
		j.transport.CloseIdleConnections()
	}
}
