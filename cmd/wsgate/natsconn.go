package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/bus"
)

// natsFlags are the flags of every command that connects to NATS: the
// URL, and the credentials and TLS files of a secured server. Secrets come
// from the environment (WSGATE_NATS_PASSWORD, WSGATE_NATS_TOKEN) or from
// files, read once at start; the command line shows them to every user of
// the host, so the help says so.
type natsFlags struct {
	url                    string
	creds, nkey            string
	user, password         string
	passwordFile           string
	token, tokenFile       string
	tlsCA, tlsCert, tlsKey string
}

// natsSecurityFlags are the flags natsFlags registers besides --nats-url.
var natsSecurityFlags = []string{
	"nats-creds", "nats-nkey", "nats-user", "nats-password", "nats-password-file",
	"nats-token", "nats-token-file", "nats-tls-ca", "nats-tls-cert", "nats-tls-key",
}

// register adds --nats-url, with def and usage, and the security flags.
func (n *natsFlags) register(fs *flag.FlagSet, def, usage string) {
	fs.StringVar(&n.url, "nats-url", def, usage)
	fs.StringVar(&n.creds, "nats-creds", "", "NATS credentials file (user JWT and nkey seed), for a server in operator mode")
	fs.StringVar(&n.nkey, "nats-nkey", "", "file of a NATS user nkey seed (SU…)")
	fs.StringVar(&n.user, "nats-user", "", "NATS user name, with --nats-password or --nats-password-file")
	fs.StringVar(&n.password, "nats-password", "", "NATS password (set WSGATE_NATS_PASSWORD or use --nats-password-file rather than the command line)")
	fs.StringVar(&n.passwordFile, "nats-password-file", "", "file holding the NATS password, read once at start")
	fs.StringVar(&n.token, "nats-token", "", "NATS authentication token (set WSGATE_NATS_TOKEN or use --nats-token-file rather than the command line)")
	fs.StringVar(&n.tokenFile, "nats-token-file", "", "file holding the NATS token, read once at start")
	fs.StringVar(&n.tlsCA, "nats-tls-ca", "", "PEM file of the CA that signed the NATS server's certificate; any --nats-tls-* flag requires TLS")
	fs.StringVar(&n.tlsCert, "nats-tls-cert", "", "PEM file of the client certificate, for a NATS server that verifies clients; with --nats-tls-key")
	fs.StringVar(&n.tlsKey, "nats-tls-key", "", "PEM file of the client certificate's private key")
}

// secured names the security flags given, on the command line or from the
// environment.
func (n *natsFlags) secured(fs *flag.FlagSet) []string {
	var out []string
	for _, name := range natsSecurityFlags {
		if fs.Lookup(name).Value.String() != "" {
			out = append(out, "--"+name)
		}
	}
	return out
}

// options checks the flags, reads the password and token files, and
// returns the connection options. Its errors are usage errors that name the
// flags, and never hold a secret.
func (n *natsFlags) options() (bus.ConnectOptions, error) {
	password, err := secretFlag("nats-password", n.password, n.passwordFile)
	if err != nil {
		return bus.ConnectOptions{}, err
	}
	token, err := secretFlag("nats-token", n.token, n.tokenFile)
	if err != nil {
		return bus.ConnectOptions{}, err
	}
	var ways []string
	for _, w := range []struct {
		flag string
		set  bool
	}{
		{"--nats-creds", n.creds != ""},
		{"--nats-nkey", n.nkey != ""},
		{"--nats-user", n.user != "" || password != ""},
		{"--nats-token", token != ""},
	} {
		if w.set {
			ways = append(ways, w.flag)
		}
	}
	switch {
	case len(ways) > 1:
		return bus.ConnectOptions{}, usagef("%s: NATS authenticates one way: give one of them", strings.Join(ways, ", "))
	case n.user != "" && password == "":
		return bus.ConnectOptions{}, usagef("--nats-user needs --nats-password-file or WSGATE_NATS_PASSWORD")
	case n.user == "" && password != "":
		return bus.ConnectOptions{}, usagef("--nats-password needs --nats-user")
	case (n.tlsCert == "") != (n.tlsKey == ""):
		return bus.ConnectOptions{}, usagef("--nats-tls-cert and --nats-tls-key go together")
	}
	return bus.ConnectOptions{
		CredsFile:    n.creds,
		NKeySeedFile: n.nkey,
		User:         n.user,
		Password:     password,
		Token:        token,
		TLSCA:        n.tlsCA,
		TLSCert:      n.tlsCert,
		TLSKey:       n.tlsKey,
	}, nil
}

// secretFlag returns the secret of --name, given as value or in file, not
// both. A file's trailing newline is not part of it; an empty file is an
// error, so that a missing secret is not mistaken for none.
func secretFlag(name, value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	if value != "" {
		return "", usagef("--%s and --%s-file exclude each other", name, name)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--%s-file: %w", name, err) // the path, never the content
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", usagef("--%s-file %s is empty", name, file)
	}
	return s, nil
}

// dial connects a command's client (wsgate-<name>) with the flags.
func (n *natsFlags) dial(name string) (*nats.Conn, error) {
	opts, err := n.options()
	if err != nil {
		return nil, err
	}
	nc, err := bus.DialWith(n.url, "wsgate-"+name, opts)
	if err != nil {
		if err := natsFileError(err); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("connect %s: %w", bus.RedactURL(n.url), err) // redacted, never a secret
	}
	return nc, nil
}

// natsFileFlags are the flags of the ConnectOptions file fields.
var natsFileFlags = map[string]string{
	"CredsFile":    "--nats-creds",
	"NKeySeedFile": "--nats-nkey",
	"TLSCA":        "--nats-tls-ca",
	"TLSCert":      "--nats-tls-cert, --nats-tls-key",
}

// natsFileError returns a bus.FileError in the flags' terms, or nil for
// any other error.
func natsFileError(err error) error {
	fe, ok := errors.AsType[*bus.FileError](err)
	if !ok {
		return nil
	}
	flags := natsFileFlags[fe.Field]
	if flags == "" {
		flags = fe.Field
	}
	return fmt.Errorf("%s %s: %w", flags, fe.Path, fe.Err)
}
