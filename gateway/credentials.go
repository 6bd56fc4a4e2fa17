package gateway

import "bytes"

// The credentials a client may present at upgrade, decoded from the raw
// request bytes without net/http and without allocating: the ?token= and
// ?user= query parameters (URL-unescaped), "Authorization: Bearer", and
// the wsgate_token cookie. What they are worth is the Authenticator's to
// say (auth.go).

// tokenCookie is the cookie that may carry the token.
const tokenCookie = "wsgate_token"

// credentials returns what the request presented: the token of ?token=,
// "Authorization: Bearer" or the wsgate_token cookie, in that order of
// preference, and ?user=. The slices are the handshake's own: they are
// valid until it is reset.
func (u *upgrader) credentials() Credentials {
	token := u.token
	if len(token) == 0 {
		token = u.bearer
	}
	if len(token) == 0 {
		token = u.cookie
	}
	return Credentials{Token: token, User: u.user}
}

// bearerToken returns the token of an Authorization header value
// "Bearer <token>"; the scheme is case-insensitive.
func bearerToken(value []byte) ([]byte, bool) {
	const bearer = "bearer "
	if len(value) <= len(bearer) || !bytes.EqualFold(value[:len(bearer)], []byte(bearer)) {
		return nil, false
	}
	return bytes.TrimSpace(value[len(bearer):]), true
}

// cookieValue finds name=value in a Cookie header.
func cookieValue(header []byte, name string) ([]byte, bool) {
	for len(header) > 0 {
		var part []byte
		part, header, _ = bytes.Cut(header, []byte{';'})
		k, v, ok := bytes.Cut(bytes.TrimSpace(part), []byte{'='})
		if ok && string(k) == name {
			return bytes.Trim(v, `"`), true
		}
	}
	return nil, false
}

// appendUnescaped appends the URL query value v with %XX and + decoded.
// Malformed escapes are kept as they are; the authenticator rejects them.
func appendUnescaped(dst, v []byte) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '+':
			dst = append(dst, ' ')
		case c == '%' && i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]):
			dst = append(dst, unhex(v[i+1])<<4|unhex(v[i+2]))
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
