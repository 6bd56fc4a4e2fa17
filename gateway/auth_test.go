package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func pemPublic(t *testing.T, pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.Claims) []byte {
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s)
}

func TestJWTAuth(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	hs, err := NewJWTAuth(JWTConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewJWTAuth(JWTConfig{PublicKeyPEM: pemPublic(t, &rsaKey.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	es, err := NewJWTAuth(JWTConfig{PublicKeyPEM: pemPublic(t, &ecKey.PublicKey), Issuer: "auth.example", Audience: "wsgate"})
	if err != nil {
		t.Fatal(err)
	}
	exp := jwt.NewNumericDate(time.Now().Add(time.Hour))
	ok := jwtClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: "42", ExpiresAt: exp}, Channels: []string{"topic.a"}}
	esOK := ok
	esOK.Issuer, esOK.Audience = "auth.example", jwt.ClaimStrings{"wsgate"}
	noExp := jwtClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: "42"}}
	badSub := jwtClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: "4.2", ExpiresAt: exp}}
	unsigned, _ := jwt.NewWithClaims(jwt.SigningMethodNone, ok).SignedString(jwt.UnsafeAllowNoneSignatureType)

	tests := []struct {
		name  string
		auth  *JWTAuth
		token []byte
		ok    bool
	}{
		{name: "HS256", auth: hs, token: sign(t, jwt.SigningMethodHS256, testSecret, ok), ok: true},
		{name: "RS256", auth: rs, token: sign(t, jwt.SigningMethodRS256, rsaKey, ok), ok: true},
		{name: "ES256 with iss and aud", auth: es, token: sign(t, jwt.SigningMethodES256, ecKey, esOK), ok: true},
		{name: "ES256 without aud", auth: es, token: sign(t, jwt.SigningMethodES256, ecKey, ok)},
		{name: "exp required", auth: hs, token: sign(t, jwt.SigningMethodHS256, testSecret, noExp)},
		{name: "sub must be a token", auth: hs, token: sign(t, jwt.SigningMethodHS256, testSecret, badSub)},
		{name: "alg none", auth: hs, token: []byte(unsigned)},
		{name: "HS256 signed with the RSA public key (alg confusion)", auth: rs, token: sign(t, jwt.SigningMethodHS256, pemPublic(t, &rsaKey.PublicKey), ok)},
		{name: "RS384 not pinned", auth: rs, token: sign(t, jwt.SigningMethodRS384, rsaKey, ok)},
		{name: "empty", auth: hs, token: nil},
		{name: "garbage", auth: hs, token: []byte("a.b.c")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := tt.auth.Authenticate(Credentials{Token: tt.token})
			if tt.ok {
				if err != nil || id.User != "42" || !id.mayJoin("topic.a") || id.mayJoin("topic.b") || id.Expires.IsZero() {
					t.Fatalf("got %+v, %v", id, err)
				}
				return
			}
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("got %+v, %v; want ErrUnauthorized", id, err)
			}
		})
	}
}

func TestNewJWTAuthRefusesBadKeys(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for name, cfg := range map[string]JWTConfig{
		"nothing":      {},
		"short secret": {Secret: []byte("short")},
		"both":         {Secret: testSecret, PublicKeyPEM: []byte("x")},
		"not pem":      {PublicKeyPEM: []byte("not pem")},
		"P-384":        {PublicKeyPEM: pemPublic(t, &ecKey.PublicKey)},
		"key and JWKS": {PublicKeyPEM: pemPublic(t, &ecKey.PublicKey), JWKS: []byte(`{"keys":[]}`)},
		"empty JWKS":   {JWKS: []byte(`{"keys":[]}`)},
	} {
		if _, err := NewJWTAuth(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
