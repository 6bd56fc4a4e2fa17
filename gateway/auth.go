package gateway

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/channel"
)

// Credentials are what a client presented at upgrade. The slices are only
// valid until Authenticate returns.
type Credentials struct {
	// Token is the bearer token from ?token=, "Authorization: Bearer" or the
	// wsgate_token cookie, in that order of preference.
	Token []byte
	// User is the ?user= query parameter (development mode only).
	User []byte
}

// Identity is who a connection belongs to and what it may subscribe to.
type Identity struct {
	// User is the user id; the connection gets channel "user.<User>".
	User string
	// Channels lists the channel patterns ("topic.sports", "topic.news.*",
	// "topic.>") the user may subscribe to. Nil means none.
	Channels []string
	// Expires is when the credentials stop being valid; the connection is
	// closed with 1008 then. Zero means never.
	Expires time.Time
	// Upstream lists the channel patterns the user may send to services
	// on (the publish and request ops), with the rules of Channels, over
	// any channel name ("chat.>", "rpc.profile"). Nil means none.
	Upstream []string
	// TokenID (the jti claim) and IssuedAt (iat) identify the token for
	// the revocation check; empty and zero when the token has none.
	TokenID  string
	IssuedAt time.Time
}

// mayJoin reports whether the identity's patterns allow channel name.
func (id *Identity) mayJoin(name string) bool { return matchAny(id.Channels, name) }

// matchAny reports whether one of patterns matches channel name.
func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if channel.Match(p, name) {
			return true
		}
	}
	return false
}

// Revocations is the denylist checked at upgrade. Revoked must be safe for
// concurrent use and must not block: it runs on every upgrade.
type Revocations interface {
	// Revoked reports whether the token of user with id tokenID (""
	// without one) issued at issued (zero when unknown) is refused.
	Revoked(user, tokenID string, issued time.Time) bool
}

// Authenticator turns upgrade credentials into an Identity. Implementations
// must be safe for concurrent use; an error rejects the upgrade with 401.
type Authenticator interface {
	Authenticate(c Credentials) (Identity, error)
}

// InsecureAuth is the development authenticator: it trusts ?user= and lets
// the user subscribe to every topic and send upstream on every channel.
// Never use it in production.
type InsecureAuth struct{}

var (
	allTopics   = []string{channel.TopicKind + ".>"}
	allChannels = []string{">"}
)

// Authenticate returns the identity named by ?user=, which must be a single
// channel token ([A-Za-z0-9_-]) of at most channel.MaxUserLen (123) bytes,
// so that its channel "user.<id>" is at most 128.
func (InsecureAuth) Authenticate(c Credentials) (Identity, error) {
	if !channel.ValidUser(string(c.User)) {
		return Identity{}, fmt.Errorf("%w: ?user= must be a token of [A-Za-z0-9_-], at most %d bytes", ErrUnauthorized, channel.MaxUserLen)
	}
	return Identity{User: string(c.User), Channels: allTopics, Upstream: allChannels}, nil
}

// JWTConfig configures NewJWTAuth. Exactly one key source is set: Secret,
// PublicKeyPEM, or a JSON Web Key Set (JWKSURL, JWKSFile or JWKS).
type JWTConfig struct {
	// Secret is the HS256 shared secret.
	Secret []byte
	// PublicKeyPEM is an RSA (RS256) or ECDSA P-256 (ES256) public key in
	// PEM form.
	PublicKeyPEM []byte
	// JWKSURL is where an identity provider publishes its JSON Web Key Set
	// (Keycloak: <realm>/protocol/openid-connect/certs; Auth0 and Cognito:
	// .well-known/jwks.json). It must be https; http is allowed to a
	// loopback host only. NewJWTAuth loads it before returning, and it is
	// loaded again every JWKSRefresh and when a token names an unknown kid.
	JWKSURL string
	// JWKSFile is a JWKS on disk, for sites without access to the identity
	// provider; it is read again like JWKSURL.
	JWKSFile string
	// JWKS is a JWKS document, used as it is: never reloaded.
	JWKS []byte
	// JWKSRefresh is how often the JWKS is loaded again, so that new keys
	// are known before tokens use them and removed keys stop verifying.
	// A failed load keeps the last good keys. Zero means
	// DefaultJWKSRefresh (15m).
	JWKSRefresh time.Duration
	// JWKSMinRefresh is the least time between two loads caused by tokens
	// whose kid is not in the set (a key the provider has just added).
	// Zero means DefaultJWKSMinRefresh (10s).
	JWKSMinRefresh time.Duration
	// JWKSTimeout bounds one load of the JWKS, the first one included.
	// Zero means DefaultJWKSTimeout (5s).
	JWKSTimeout time.Duration
	// Algorithms are the signing algorithms JWKS keys may verify, among
	// RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 and
	// EdDSA. Nil means DefaultJWKSAlgorithms (RS256, ES256, EdDSA). Only
	// with a JWKS; Secret and PublicKeyPEM each verify their one algorithm.
	Algorithms []string
	// Issuer, when set, must equal the token's iss claim.
	Issuer string
	// Audience, when set, must be among the token's aud claim.
	Audience string
	// Leeway tolerates clock skew on exp, nbf and iat. Zero means none.
	Leeway time.Duration
	// Logger receives the JWKS loads and their failures (rate-limited).
	// Nil means zap.NewNop().
	Logger *zap.Logger
}

// JWTAuth verifies JSON Web Tokens: sub is the user id, exp is required,
// the optional channels claim lists topic patterns, the optional upstream
// claim the channel patterns the user may send to services on, and jti and
// iat, when present, are what a revocation names. Only the algorithm that
// matches the configured key is accepted (no "none", no algorithm
// confusion). With a JWKS, a token must carry the kid of a key in the set,
// and its alg must be that key's. Close stops the JWKS refresher.
type JWTAuth struct {
	parser  *jwt.Parser
	keyfunc jwt.Keyfunc
	jwks    *jwks // nil without a JWKS
	leeway  time.Duration
	closed  sync.Once
}

type jwtClaims struct {
	jwt.RegisteredClaims
	Channels []string `json:"channels,omitempty"`
	Upstream []string `json:"upstream,omitempty"`
}

// NewJWTAuth returns a JWT authenticator for the key in cfg. With a JWKS
// URL or file it loads the set first, within JWKSTimeout, and fails if the
// set holds no usable key; it then refreshes the set in the background until
// Close.
func NewJWTAuth(cfg JWTConfig) (*JWTAuth, error) {
	sources := 0
	for _, set := range []bool{len(cfg.Secret) > 0, len(cfg.PublicKeyPEM) > 0, cfg.JWKSURL != "" || cfg.JWKSFile != "" || len(cfg.JWKS) > 0} {
		if set {
			sources++
		}
	}
	if sources > 1 || cfg.JWKSURL != "" && cfg.JWKSFile != "" || (cfg.JWKSURL != "" || cfg.JWKSFile != "") && len(cfg.JWKS) > 0 {
		return nil, errors.New("gateway: set one JWT key source: a secret, a public key, or a JWKS (URL, file or document)")
	}
	if len(cfg.Algorithms) > 0 && len(cfg.Secret)+len(cfg.PublicKeyPEM) > 0 {
		return nil, errors.New("gateway: JWT algorithms can be chosen only with a JWKS")
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	a := &JWTAuth{leeway: cfg.Leeway}
	var methods []string
	switch {
	case len(cfg.Secret) > 0:
		if len(cfg.Secret) < 32 {
			return nil, fmt.Errorf("gateway: the HS256 secret has %d bytes; use at least 32", len(cfg.Secret))
		}
		methods, a.keyfunc = []string{jwt.SigningMethodHS256.Alg()}, staticKey(cfg.Secret)
	case len(cfg.PublicKeyPEM) > 0:
		method, key, err := parsePublicKey(cfg.PublicKeyPEM)
		if err != nil {
			return nil, err
		}
		methods, a.keyfunc = []string{method}, staticKey(key)
	case sources == 1:
		j, err := newJWKS(cfg, log)
		if err != nil {
			return nil, err
		}
		a.jwks, methods, a.keyfunc = j, j.algs, j.keyfunc
	default:
		return nil, errors.New("gateway: JWT auth needs a secret, a public key or a JWKS")
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	a.parser = jwt.NewParser(opts...)
	return a, nil
}

func staticKey(key any) jwt.Keyfunc {
	return func(*jwt.Token) (any, error) { return key, nil }
}

// Close stops the JWKS refresher and waits for it; a load under way is
// cancelled. It does nothing without a JWKS and may be called more than
// once. Authenticate still works after Close, with the keys last loaded.
func (a *JWTAuth) Close() error {
	a.closed.Do(func() {
		if a.jwks != nil {
			a.jwks.close()
		}
	})
	return nil
}

func parsePublicKey(pemBytes []byte) (method string, key any, err error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return "", nil, errors.New("gateway: the JWT public key is not PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		rsaKey, rerr := x509.ParsePKCS1PublicKey(block.Bytes)
		if rerr != nil {
			return "", nil, fmt.Errorf("gateway: parse JWT public key: %w", err)
		}
		pub = rsaKey
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return jwt.SigningMethodRS256.Alg(), k, nil
	case *ecdsa.PublicKey:
		if k.Curve.Params().Name != "P-256" {
			return "", nil, fmt.Errorf("gateway: ES256 needs a P-256 key, got %s", k.Curve.Params().Name)
		}
		return jwt.SigningMethodES256.Alg(), k, nil
	}
	return "", nil, fmt.Errorf("gateway: unsupported JWT public key type %T", pub)
}

// Authenticate verifies the bearer token.
func (a *JWTAuth) Authenticate(c Credentials) (Identity, error) {
	if len(c.Token) == 0 {
		return Identity{}, fmt.Errorf("%w: missing token", ErrUnauthorized)
	}
	var claims jwtClaims
	_, err := a.parser.ParseWithClaims(string(c.Token), &claims, a.keyfunc)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	if !channel.ValidUser(claims.Subject) {
		return Identity{}, fmt.Errorf("%w: sub must be a token of [A-Za-z0-9_-], at most %d bytes", ErrUnauthorized, channel.MaxUserLen)
	}
	// The leeway that admitted the token also delays its expiry close.
	expires := claims.ExpiresAt.Time.Add(a.leeway)
	id := Identity{User: claims.Subject, Channels: claims.Channels, Upstream: claims.Upstream, Expires: expires, TokenID: claims.ID}
	if claims.IssuedAt != nil {
		id.IssuedAt = claims.IssuedAt.Time
	}
	return id, nil
}
