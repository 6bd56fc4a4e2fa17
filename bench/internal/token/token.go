package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Channels are the topic patterns every token grants: all topics.
var Channels = []string{"topic.>"}

// Signer signs one user's token with one key.
type Signer struct {
	method jwt.SigningMethod
	key    any    // []byte, *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey
	kid    string // "" for no kid header
}

// New returns a signer for secret (HS256) or for the PEM private key in
// the file keyFile, with kid in the header of each token when not empty.
// Exactly one of secret and keyFile is set; kid needs keyFile.
func New(secret []byte, keyFile, kid string) (*Signer, error) {
	switch {
	case len(secret) > 0 && keyFile != "":
		return nil, errors.New("token: give a secret or a key file, not both")
	case len(secret) > 0 && kid != "":
		return nil, errors.New("token: a kid goes with a key file (a JWKS holds public keys only)")
	case len(secret) > 0:
		return &Signer{method: jwt.SigningMethodHS256, key: secret}, nil
	case keyFile == "":
		return nil, errors.New("token: no secret and no key file")
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	method, key, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("token: %s: %w", keyFile, err)
	}
	return &Signer{method: method, key: key, kid: kid}, nil
}

// ParseKey reads a PEM private key, PKCS #8 ("PRIVATE KEY", what openssl
// genpkey writes), PKCS #1 ("RSA PRIVATE KEY") or SEC 1 ("EC PRIVATE
// KEY"), and returns the one method it signs with: RS256 for RSA, ES256
// for P-256, EdDSA for Ed25519.
func ParseKey(pemBytes []byte) (jwt.SigningMethod, any, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, nil, errors.New("not PEM")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, nil, err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, nil, fmt.Errorf("a %d-bit RSA key; the gateway wants at least 2048", k.N.BitLen())
		}
		return jwt.SigningMethodRS256, k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, nil, fmt.Errorf("an EC key on %s; ES256 needs P-256", k.Curve.Params().Name)
		}
		return jwt.SigningMethodES256, k, nil
	case ed25519.PrivateKey:
		return jwt.SigningMethodEdDSA, k, nil
	}
	return nil, nil, fmt.Errorf("unsupported private key type %T", key)
}

// Alg is the token's alg header: HS256, RS256, ES256 or EdDSA.
func (s *Signer) Alg() string { return s.method.Alg() }

// Kid is the token's kid header; "" when it has none.
func (s *Signer) Kid() string { return s.kid }

// Sign returns a token for user: sub user, exp, and channels Channels.
func (s *Signer) Sign(user string, exp time.Time) (string, error) {
	t := jwt.NewWithClaims(s.method, jwt.MapClaims{
		"sub":      user,
		"exp":      exp.Unix(),
		"channels": Channels,
	})
	if s.kid != "" {
		t.Header["kid"] = s.kid
	}
	return t.SignedString(s.key)
}
