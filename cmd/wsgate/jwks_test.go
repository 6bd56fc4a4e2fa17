//go:build linux

package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
)

// A gateway started with --jwks-url takes the keys of an identity
// provider's JWKS: a client connects with an ES256 token naming its kid.
func TestJWKSGateway(t *testing.T) {
	bin := buildBinary(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(key.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "idp-1", ALG: jwkset.AlgES256, USE: jwkset.UseSig}})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	if err != nil {
		t.Fatal(err)
	}
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(doc) }))
	defer idp.Close()

	g := startGateway(t, bin, "--auth=jwt", "--jwks-url", idp.URL, "--embedded-nats-listen", "127.0.0.1:0")
	if kids, _ := g.waitLog(t, "jwks keys loaded")["kids"].([]any); len(kids) != 1 || kids[0] != "idp-1" {
		t.Errorf("loaded kids %v, want [idp-1]", kids)
	}
	gw := g.waitField(t, "gateway listening", "addr")
	sign := func(kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "42", "exp": time.Now().Add(time.Hour).Unix(), "channels": []string{"topic.>"}})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	c, err := dialWelcome(t.Context(), ws.DefaultDialer, "ws://"+gw+"/ws?token="+sign("idp-1"), time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatalf("an ES256 token of the JWKS key: %v", err)
	}
	c.Close()
	_, err = dialWelcome(t.Context(), ws.DefaultDialer, "ws://"+gw+"/ws?token="+sign("idp-2"), time.Now().Add(5*time.Second))
	if se := ws.StatusError(0); !errors.As(err, &se) || se != http.StatusUnauthorized {
		t.Fatalf("a token naming a kid the JWKS lacks: %v, want 401", err)
	}
}

// The key sources exclude one another, and a JWKS that cannot be loaded
// at start stops the gateway with the reason.
func TestJWKSFlags(t *testing.T) {
	bin := buildBinary(t)
	missing := httptest.NewServer(http.NotFoundHandler())
	defer missing.Close()
	quiet := []string{"--auth=jwt", "--listen", "127.0.0.1:0", "--admin", "", "--embedded-nats-listen", "127.0.0.1:0"}
	with := func(args ...string) []string { return append(append([]string(nil), quiet...), args...) }
	runUsageCases(t, bin, []usageCase{
		{name: "secret and JWKS", args: with("--jwks-url", missing.URL), env: []string{"WSGATE_JWT_SECRET=" + testSecret}, code: 2,
			want: []string{"--jwt-secret and --jwks-url: give one JWT key source"}},
		{name: "public key and JWKS file", args: with("--jwt-public-key", "k.pem", "--jwks-file", "jwks.json"), code: 2,
			want: []string{"--jwt-public-key and --jwks-file: give one JWT key source"}},
		{name: "URL and file", args: with("--jwks-url", missing.URL, "--jwks-file", "jwks.json"), code: 2,
			want: []string{"--jwks-url and --jwks-file: give one JWT key source"}},
		{name: "no refresh", args: with("--jwks-url", missing.URL, "--jwks-refresh", "0"), code: 2,
			want: []string{"--jwks-refresh 0s"}},
		{name: "plain http to another host", args: with("--jwks-url", "http://idp.example/certs"), code: 1,
			want: []string{"http is allowed only to a loopback host; use https"}},
		{name: "JWKS missing at start", args: with("--jwks-url", missing.URL), code: 1,
			want: []string{"gateway: JWKS " + missing.URL + ": status 404 Not Found"}},
		{name: "no key source", args: quiet, code: 1,
			want: []string{"--jwks-url or --jwks-file"}},
	})
}
