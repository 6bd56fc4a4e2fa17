//go:build integration && linux

package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/wstest"
)

// TestHAProxyTLS is wss:// as a browser on an https page needs it: HAProxy
// terminates TLS with a certificate made here, as docs/operations.md
// shows, and passes the upgrade on to the gateway in plain HTTP. A client
// that trusts only that certificate connects through it over wss://, gets
// its welcome and receives a notification published with `wsgate publish`.
func TestHAProxyTLS(t *testing.T) {
	haproxy := needHAProxy(t)
	bin := buildBinary(t)
	natsURL := startNATS(t)
	g := startBackend(t, bin, natsURL, "tls")
	pemFile, roots := testCertificate(t)
	front, _ := startHAProxy(t, haproxy, pemFile, g)

	d := ws.Dialer{TLSConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	var c *wstest.Client
	// HAProxy may take a check or two to list the gateway as UP.
	wstest.CheckFor(t, 10*time.Second, pollEvery, func() error {
		var err error
		c, err = dialWelcome(t.Context(), d, "wss://"+front+"/ws?user=tls", time.Now().Add(5*time.Second))
		return err
	})
	defer c.Close()
	tc, ok := c.Conn.(*tls.Conn)
	if !ok {
		t.Fatalf("the wss:// connection is a %T, not TLS", c.Conn)
	}
	if st := tc.ConnectionState(); !st.HandshakeComplete || len(st.PeerCertificates) == 0 {
		t.Fatalf("TLS state %+v", st)
	}
	if gatewayOf(c) != g.prefix {
		t.Fatalf("welcome from gateway %q, want %q", gatewayOf(c), g.prefix)
	}
	if r := runBinary(t, bin, nil, "publish", "--nats-url", natsURL, "--user", "tls", `{"secure":true}`); r.code != 0 {
		t.Fatalf("publish: status %d\n%s", r.code, r.stderr)
	}
	m, err := c.Read(time.Now().Add(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if m["type"] != "message" || m["channel"] != "user.tls" || m["data"].(map[string]any)["secure"] != true {
		t.Fatalf("over wss:// the client got %v", m)
	}

	// A client that does not trust the certificate is refused by its own
	// TLS stack: the handshake really is HAProxy's, with this certificate.
	if c, err := dialWelcome(t.Context(), ws.Dialer{}, "wss://"+front+"/ws?user=x", time.Now().Add(5*time.Second)); err == nil {
		c.Close()
		t.Fatal("a client without the test certificate among its roots connected")
	}
}

// testCertificate writes a self-signed certificate for 127.0.0.1 and its
// key into one PEM file, the form HAProxy's crt takes, and returns the
// file and a pool that trusts the certificate.
func testCertificate(t *testing.T) (string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "wsgate test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "wsgate.pem")
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})...)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return file, roots
}

// The HAProxy configuration in deploy/ stays valid: haproxy -c accepts it.
func TestHAProxyDeployConfig(t *testing.T) {
	haproxy := needHAProxy(t)
	out, err := exec.Command(haproxy, "-c", "-f", "../../deploy/haproxy/wsgate.cfg").CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c -f deploy/haproxy/wsgate.cfg: %v\n%s", err, out)
	}
}
