//go:build integration && linux

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/wsgate/wsgate/internal/natstest"
)

// noClientCert is what the binary says when the server wants a client
// certificate it was not given: the server's TLS 1.3 alert, or, when the
// server's close loses it, nats.go's word for a connection closed right
// after the handshake.
const noClientCert = `tls: certificate required|connection closed by remote after TLS handshake`

// natsPassword is the password of the publishing user: it may reach the
// binary through the environment or a file, and never its output.
const natsPassword = "pub-S3cret-0f-the-test"

// TestSecuredNATS runs the binary against a NATS server, started by the
// test, that speaks TLS only, verifies client certificates, and knows two
// users: the gateway's nkey and a publisher's user and password. The
// gateway connects with its seed file and the client certificate, a
// WebSocket client gets what `wsgate publish` sends with the password from
// the environment or a file, `wsgate stats` reaches the gateway the same
// way, wrong credentials and a missing certificate stop the start, and
// neither the seed nor the password appears in any output.
func TestSecuredNATS(t *testing.T) {
	bin := buildBinary(t)
	pki := natstest.NewPKI(t)
	gwKey, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	gwPub, _ := gwKey.PublicKey()
	gwSeed, _ := gwKey.Seed()
	dir := t.TempDir()
	seedFile := filepath.Join(dir, "gateway.nk")
	passwordFile := filepath.Join(dir, "password")
	for path, content := range map[string]string{seedFile: string(gwSeed) + "\n", passwordFile: natsPassword + "\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv := natstest.RunWith(t, &server.Options{
		TLSConfig: pki.ServerTLS, TLSVerify: true, TLSTimeout: 5,
		Nkeys: []*server.NkeyUser{{Nkey: gwPub}},
		Users: []*server.User{{Username: "pub", Password: natsPassword}},
	})
	url := srv.ClientURL()
	tlsFlags := []string{"--nats-tls-ca", pki.CA, "--nats-tls-cert", pki.ClientCert, "--nats-tls-key", pki.ClientKey}
	secrets := []string{string(gwSeed), natsPassword}

	g := startGateway(t, bin, append([]string{"--nats-url", url, "--nats-nkey", seedFile, "--log-level", "debug"}, tlsFlags...)...)
	addr := g.waitField(t, "gateway listening", "addr")
	if got := g.waitField(t, "nats connected", "url"); got != url {
		t.Errorf("nats connected to %q, want %q", got, url)
	}
	c, err := dialWelcome(t.Context(), ws.DefaultDialer, "ws://"+addr+"/ws?user=42", time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// The publisher's password from the environment, then from a file.
	pub := append([]string{"publish", "--nats-url", url, "--nats-user", "pub"}, tlsFlags...)
	for i, run := range []struct {
		env  []string
		args []string
	}{
		{env: []string{"WSGATE_NATS_PASSWORD=" + natsPassword}},
		{args: []string{"--nats-password-file", passwordFile}},
	} {
		payload := `{"n":` + string(rune('1'+i)) + `}`
		r := runBinary(t, bin, run.env, append(append(pub, run.args...), "--user", "42", payload)...)
		if r.code != 0 {
			t.Fatalf("publish %d: status %d\n%s", i+1, r.code, r.stderr)
		}
		m, err := c.Read(time.Now().Add(5 * time.Second))
		if err != nil {
			t.Fatalf("after publish %d: %v", i+1, err)
		}
		if data, _ := m["data"].(map[string]any); m["channel"] != "user.42" || data["n"] != float64(i+1) {
			t.Fatalf("after publish %d the client got %v", i+1, m)
		}
	}

	// A control command reaches the gateway with the same flags, here all
	// from the environment.
	env := []string{
		"WSGATE_NATS_URL=" + url, "WSGATE_NATS_USER=pub", "WSGATE_NATS_PASSWORD=" + natsPassword,
		"WSGATE_NATS_TLS_CA=" + pki.CA, "WSGATE_NATS_TLS_CERT=" + pki.ClientCert, "WSGATE_NATS_TLS_KEY=" + pki.ClientKey,
	}
	if r := runBinary(t, bin, env, "stats", "--expect", "1"); r.code != 0 || !strings.Contains(r.stdout, "1 gateway answered") {
		t.Errorf("stats: status %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	refused := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"wrong password", []string{"WSGATE_NATS_PASSWORD=not-" + natsPassword}, pub, 1, "Authorization Violation"},
		{"no client certificate", []string{"WSGATE_NATS_PASSWORD=" + natsPassword},
			[]string{"publish", "--nats-url", url, "--nats-user", "pub", "--nats-tls-ca", pki.CA}, 1, noClientCert},
		{"password file and variable", []string{"WSGATE_NATS_PASSWORD=" + natsPassword},
			append(append([]string{}, pub...), "--nats-password-file", passwordFile), 2, "--nats-password and --nats-password-file exclude each other"},
		{"missing CA file", []string{"WSGATE_NATS_PASSWORD=" + natsPassword},
			[]string{"publish", "--nats-url", url, "--nats-user", "pub", "--nats-tls-ca", filepath.Join(dir, "nope.pem")}, 1, "--nats-tls-ca .*nope.pem: open: no such file"},
		{"two ways", []string{"WSGATE_NATS_PASSWORD=" + natsPassword},
			append(append([]string{}, pub...), "--nats-nkey", seedFile), 2, "--nats-nkey, --nats-user"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			r := runBinary(t, bin, tt.env, append(tt.args, "--user", "42", "x")...)
			if r.code != tt.code || !regexp.MustCompile(tt.want).MatchString(r.stderr) {
				t.Errorf("status %d, stderr %q; want %d and %q", r.code, r.stderr, tt.code, tt.want)
			}
			noSecrets(t, "stderr", r.stdout+r.stderr, secrets)
		})
	}

	// A gateway whose credentials or certificate the server refuses stops
	// at once, and says why; so does one given credentials without a
	// server to use them with.
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	otherFile := filepath.Join(dir, "other.nk")
	if err := os.WriteFile(otherFile, otherSeed, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"unknown nkey", nil, append([]string{"--nats-url", url, "--nats-nkey", otherFile}, tlsFlags...), 1, "Authorization Violation"},
		{"no client certificate", nil, []string{"--nats-url", url, "--nats-nkey", seedFile, "--nats-tls-ca", pki.CA}, 1, noClientCert},
		{"wrong CA", nil, []string{"--nats-url", url, "--nats-nkey", seedFile, "--nats-tls-ca", pki.Other,
			"--nats-tls-cert", pki.ClientCert, "--nats-tls-key", pki.ClientKey}, 1, "certificate signed by unknown authority"},
		{"embedded server", []string{"WSGATE_NATS_TOKEN=" + natsPassword}, []string{"--embedded-nats-listen", "127.0.0.1:0"}, 2, "--nats-token: need --nats-url"},
	} {
		t.Run("gateway "+tt.name, func(t *testing.T) {
			r := runBinary(t, bin, tt.env, append(append([]string{}, gatewayFlags...), tt.args...)...)
			if r.code != tt.code || !regexp.MustCompile(tt.want).MatchString(r.stderr) {
				t.Errorf("status %d, stderr %q; want %d and %q", r.code, r.stderr, tt.code, tt.want)
			}
			noSecrets(t, "output", r.stdout+r.stderr, append(secrets, string(otherSeed)))
		})
	}

	noSecrets(t, "the gateway's log", g.log.String(), secrets)
}

// noSecrets fails when text holds one of secrets.
func noSecrets(t *testing.T, what, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s holds a secret (%.6s…):\n%s", what, s, text)
		}
	}
}
