package bench

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/MicahParks/jwkset"

	"github.com/wsgate/wsgate/gateway"
)

// TestJWTKey connects with tokens signed by --jwt-key and --jwt-kid to a
// gateway that verifies them against a JWKS file, one key of each kind in
// the set, and with an HS256 --jwt-secret to one with that secret. The
// unicast case runs two workers, so that a worker's tokens must belong to
// its own users: a token of another user would misroute its messages.
func TestJWTKey(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := []struct {
		kid, alg string
		key      crypto.Signer
	}{{"k-rsa", "RS256", rsaKey}, {"k-ec", "ES256", ecKey}, {"k-ed", "EdDSA", edKey}}
	var set jwkset.JWKSMarshal
	files := map[string]string{}
	for _, k := range keys {
		der, err := x509.MarshalPKCS8PrivateKey(k.key)
		if err != nil {
			t.Fatal(err)
		}
		files[k.kid] = filepath.Join(dir, k.kid+".pem")
		if err := os.WriteFile(files[k.kid], pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		jwk, err := jwkset.NewJWKFromKey(k.key.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: jwkset.ALG(k.alg), USE: jwkset.UseSig}})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	doc, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	secret := strings.Repeat("s", 32)

	for _, tc := range []struct {
		name            string
		auth            gateway.JWTConfig
		secret, key     string
		kid, wantAlg    string
		unicast         bool
		wantEstablished int64
		wantFailed      string // the failure of every connection, when none is established
	}{
		{name: "HS256 secret", auth: gateway.JWTConfig{Secret: []byte(secret)}, secret: secret, wantAlg: "HS256", wantEstablished: 40},
		{name: "RS256 JWKS", auth: gateway.JWTConfig{JWKSFile: jwksFile}, key: files["k-rsa"], kid: "k-rsa", wantAlg: "RS256", wantEstablished: 40},
		{name: "ES256 JWKS", auth: gateway.JWTConfig{JWKSFile: jwksFile}, key: files["k-ec"], kid: "k-ec", wantAlg: "ES256", wantEstablished: 40},
		{name: "EdDSA JWKS two workers unicast", auth: gateway.JWTConfig{JWKSFile: jwksFile}, key: files["k-ed"], kid: "k-ed", wantAlg: "EdDSA", unicast: true, wantEstablished: 40},
		{name: "another key's kid", auth: gateway.JWTConfig{JWKSFile: jwksFile}, key: files["k-ec"], kid: "k-ed", wantAlg: "ES256", wantFailed: "http_401"},
		{name: "no kid", auth: gateway.JWTConfig{JWKSFile: jwksFile}, key: files["k-rsa"], wantAlg: "RS256", wantFailed: "http_401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth, err := gateway.NewJWTAuth(tc.auth)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { auth.Close() })
			g := newGateway(t, func(c *gateway.Config) { c.Auth = auth })
			cfg := fastConfig(g, ScenarioConnect)
			cfg.Conns, cfg.JWTSecret, cfg.JWTKey, cfg.JWTKid = 40, tc.secret, tc.key, tc.kid
			if tc.unicast {
				cfg.Scenario, cfg.Workers, cfg.Messages = ScenarioUnicast, 2, 80
			}
			res := runOK(t, cfg)
			if res.Config.Auth != "jwt" || res.Config.JWTAlg != tc.wantAlg {
				t.Errorf("auth %q alg %q, want jwt %s", res.Config.Auth, res.Config.JWTAlg, tc.wantAlg)
			}
			if tc.unicast {
				checkDelivery(t, res, 40, 80)
				return
			}
			c := res.Conns
			if c.Established != tc.wantEstablished || tc.wantFailed != "" && c.FailedByReason[tc.wantFailed] != 40 {
				t.Errorf("established %d, failed %v; want %d established, %q for the rest", c.Established, c.FailedByReason, tc.wantEstablished, tc.wantFailed)
			}
		})
	}
}
