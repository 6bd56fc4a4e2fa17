package gateway

import (
	"bytes"
	"strings"
)

// Origin is a browser's protection: a request without one (a service, a
// mobile app) is never refused for it. Config.AllowedOrigins is parsed once
// into rules; a request's Origin is matched without allocating.

// originRule is one entry of Config.AllowedOrigins, parsed once.
type originRule struct {
	any    bool   // "*"
	exact  []byte // "https://app.example.com"
	scheme []byte // "https://" of "https://*.example.com"
	domain []byte // ".example.com" of "https://*.example.com"
}

func parseOrigins(allowed []string) []originRule {
	rules := make([]originRule, 0, len(allowed))
	for _, a := range allowed {
		r := originRule{any: a == "*", exact: []byte(a)}
		if scheme, domain, ok := strings.Cut(a, "://*."); ok {
			r.scheme, r.domain = []byte(scheme+"://"), []byte("."+domain)
		}
		rules = append(rules, r)
	}
	return rules
}

// originAllowed reports whether origin matches a rule; no rules allow all.
func originAllowed(rules []originRule, origin []byte) bool {
	if len(rules) == 0 {
		return true
	}
	for _, r := range rules {
		switch {
		case r.any, bytes.EqualFold(r.exact, origin):
			return true
		case r.domain != nil && len(origin) > len(r.scheme)+len(r.domain) &&
			bytes.EqualFold(origin[:len(r.scheme)], r.scheme) &&
			bytes.EqualFold(origin[len(origin)-len(r.domain):], r.domain) &&
			isHostLabels(origin[len(r.scheme):len(origin)-len(r.domain)]):
			return true
		}
	}
	return false
}

// isHostLabels reports whether b, the part of an origin a wildcard stands
// for, is dot-separated host labels: nothing else may precede the rule's
// domain, or "https://evil.com/.example.com" (a path), "?", "#", "@" or a
// second origin would pass as a subdomain.
func isHostLabels(b []byte) bool {
	if len(b) == 0 || b[0] == '.' || b[len(b)-1] == '.' {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
		case c == '.':
		default:
			return false
		}
	}
	return !bytes.Contains(b, []byte(".."))
}
