package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Target is one parsed --url.
type Target struct {
	Host       string // host:port to dial
	Path       string // path with the query, without the identity parameter
	Query      bool   // Path already has a query
	HostHeader string // Host header value
}

// ParseTarget parses a --url value: ws:// only.
func ParseTarget(s string) (Target, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Target{}, fmt.Errorf("--url %q: %w", s, err)
	}
	if u.Scheme != "ws" {
		return Target{}, fmt.Errorf("--url %q: only ws:// is supported (terminate TLS in front of the gateway, or bench it without)", s)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	return Target{Host: host, Path: path, Query: u.RawQuery != "", HostHeader: u.Host}, nil
}

// Loopback reports whether t dials a loopback address.
func (t Target) Loopback() bool {
	h, _, err := net.SplitHostPort(t.Host)
	if err != nil {
		return false
	}
	ip := net.ParseIP(h)
	return h == "localhost" || (ip != nil && ip.IsLoopback())
}

// ParseSources parses a --source-addrs value, "a.b.c.d-a.b.c.e,f.g.h.i",
// into IPs. Ranges must stay within the last octet for IPv4.
func ParseSources(s string) ([]net.IP, error) {
	var out []net.IP
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a := net.ParseIP(lo).To4()
		if !isRange {
			ip := net.ParseIP(part)
			if ip == nil {
				return nil, fmt.Errorf("--source-addrs: bad IP %q", part)
			}
			out = append(out, ip)
			continue
		}
		b := net.ParseIP(hi).To4()
		if a == nil || b == nil || a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || a[3] > b[3] {
			return nil, fmt.Errorf("--source-addrs: bad range %q (IPv4, last octet only, low-high)", part)
		}
		for x := int(a[3]); x <= int(b[3]); x++ {
			out = append(out, net.IPv4(a[0], a[1], a[2], byte(x)))
		}
	}
	return out, nil
}
