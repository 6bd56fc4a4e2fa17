package bus

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// The subscription connection's handshake: the server's URL, INFO, TLS,
// CONNECT with the credentials, and the first PONG; and what later INFOs
// teach it.

// parseServerURL accepts what nats.go accepts: nats://host:port,
// tls://host:port, host:port, host; the port defaults to 4222.
func parseServerURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Hostname() == "" {
		return nil, errors.New("no host")
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), "4222")
	}
	return u, nil
}

// serverInfo is the part of INFO the connection uses.
type serverInfo struct {
	TLSRequired  bool     `json:"tls_required"`
	TLSAvailable bool     `json:"tls_available"`
	Headers      bool     `json:"headers"`
	MaxPayload   int      `json:"max_payload"`
	Nonce        string   `json:"nonce"`
	ConnectURLs  []string `json:"connect_urls"`
	LameDuckMode bool     `json:"ldm"`
}

// connect dials u and makes the handshake: INFO, TLS when either side
// wants it, CONNECT with the credentials, and a PING whose PONG says the
// server accepted them.
func (c *subConn) connect(u *url.URL) (_ net.Conn, br *bufio.Reader, info serverInfo, err error) {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(c.ctx, "tcp", u.Host)
	if err != nil {
		return nil, nil, info, err
	}
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
	defer func() {
		if err != nil {
			conn.Close() // the TLS connection, once there is one: it closes the socket too
			c.mu.Lock()
			c.conn = nil
			c.mu.Unlock()
		}
	}()
	if c.ctx.Err() != nil { // Close came before c.conn was set
		return nil, nil, info, ErrClosed
	}
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	br = bufio.NewReaderSize(conn, readBufferSize)
	line, err := readLine(br)
	if err != nil {
		return nil, nil, info, err
	}
	first, err := parseOp(line, 0)
	if err != nil || first.kind != opInfo {
		return nil, nil, info, fmt.Errorf("%w: the server's first line is not INFO: %q", errProto, clip(line))
	}
	if err := json.Unmarshal(first.arg, &info); err != nil {
		return nil, nil, info, fmt.Errorf("%w: INFO: %w", errProto, err)
	}
	c.learnInfo(info)
	secure := c.opts.Secure || u.Scheme == "tls"
	if secure && !info.TLSRequired && !info.TLSAvailable {
		return nil, nil, info, nats.ErrSecureConnWanted
	}
	if secure || info.TLSRequired {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.opts.TLSConfig != nil {
			cfg = c.opts.TLSConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		tc := tls.Client(conn, cfg)
		if err := tc.Handshake(); err != nil {
			return nil, nil, info, fmt.Errorf("%w: %w", nats.ErrTLS, err)
		}
		conn = tc
		c.mu.Lock()
		c.conn = conn
		c.mu.Unlock()
		br = bufio.NewReaderSize(conn, readBufferSize)
	}
	connect, err := c.connectLine(u, info, secure || info.TLSRequired)
	if err != nil {
		return nil, nil, info, err
	}
	if _, err := conn.Write(append(connect, "PING\r\n"...)); err != nil {
		return nil, nil, info, err
	}
	for {
		line, err := readLine(br)
		if err != nil {
			return nil, nil, info, err
		}
		o, err := parseOp(line, 0)
		if err != nil {
			return nil, nil, info, err
		}
		switch o.kind {
		case opPong:
			conn.SetDeadline(time.Time{})
			return conn, br, info, nil
		case opErr:
			return nil, nil, info, fmt.Errorf("%w: %s", refusal(string(o.arg)), o.arg)
		case opPing:
			if _, err := conn.Write([]byte("PONG\r\n")); err != nil {
				return nil, nil, info, err
			}
		case opInfo:
			c.learn(o.arg)
		}
	}
}

// refusal maps the server's -ERR at CONNECT to nats.go's error, so that
// refused (auth.go) recognizes it.
func refusal(msg string) error {
	lower := strings.ToLower(msg)
	switch {
	case strings.Contains(lower, "authorization violation"):
		return nats.ErrAuthorization
	case strings.Contains(lower, "authentication expired"):
		return nats.ErrAuthExpired
	case strings.Contains(lower, "authentication revoked"):
		return nats.ErrAuthRevoked
	case strings.Contains(lower, "secure connection"):
		return nats.ErrSecureConnRequired
	}
	return errProto
}

// connectLine builds CONNECT as nats.go does: credentials of the URL,
// else of the options; a user JWT (creds file) or an nkey signs the
// server's nonce.
func (c *subConn) connectLine(u *url.URL, info serverInfo, secure bool) ([]byte, error) {
	o := c.opts
	ci := struct {
		Verbose      bool   `json:"verbose"`
		Pedantic     bool   `json:"pedantic"`
		JWT          string `json:"jwt,omitempty"`
		Nkey         string `json:"nkey,omitempty"`
		Sig          string `json:"sig,omitempty"`
		User         string `json:"user,omitempty"`
		Pass         string `json:"pass,omitempty"`
		Token        string `json:"auth_token,omitempty"`
		TLS          bool   `json:"tls_required"`
		Name         string `json:"name"`
		Lang         string `json:"lang"`
		Version      string `json:"version"`
		Protocol     int    `json:"protocol"`
		Echo         bool   `json:"echo"`
		Headers      bool   `json:"headers"`
		NoResponders bool   `json:"no_responders"`
	}{TLS: secure, Name: o.Name, Lang: nats.LangString, Version: nats.Version, Protocol: 1, Echo: true, Headers: info.Headers}
	if ui := u.User; ui != nil {
		if p, ok := ui.Password(); ok {
			ci.User, ci.Pass = ui.Username(), p
		} else {
			ci.Token = ui.Username()
		}
	} else {
		ci.User, ci.Pass, ci.Token, ci.Nkey = o.User, o.Password, o.Token, o.Nkey
	}
	if o.UserJWT != nil {
		jwt, err := o.UserJWT()
		if err != nil {
			return nil, err
		}
		ci.JWT = jwt
	}
	if ci.JWT != "" || ci.Nkey != "" {
		if o.SignatureCB == nil {
			return nil, fmt.Errorf("%w: a user JWT or nkey without a signer", ErrInvalidConfig)
		}
		sig, err := o.SignatureCB([]byte(info.Nonce))
		if err != nil {
			return nil, fmt.Errorf("bus: sign the server's nonce: %w", err)
		}
		ci.Sig = base64.RawURLEncoding.EncodeToString(sig)
	}
	if o.TokenHandler != nil && ci.Token == "" {
		ci.Token = o.TokenHandler()
	}
	j, err := json.Marshal(ci)
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, "CONNECT %s\r\n", j), nil
}

// learn adds the servers an INFO announces (connect_urls, host:port) to
// the ones to try, so that a gateway given one seed URL finds the others
// when that one is gone. Announced servers inherit nothing of the seed's
// URL but its scheme: credentials come from the options.
func (c *subConn) learn(infoJSON []byte) {
	var info serverInfo
	if json.Unmarshal(infoJSON, &info) == nil {
		c.learnInfo(info)
	}
}

func (c *subConn) learnInfo(info serverInfo) {
	if info.LameDuckMode {
		c.log.Info("nats server of the subscription connection entering lame duck mode")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	scheme := c.servers[0].url.Scheme
next:
	for _, hp := range info.ConnectURLs {
		u, err := parseServerURL(scheme + "://" + hp)
		if err != nil {
			continue
		}
		for _, s := range c.servers {
			if s.url.Host == u.Host {
				continue next
			}
		}
		c.servers = append(c.servers, &natsServer{url: u})
	}
}
