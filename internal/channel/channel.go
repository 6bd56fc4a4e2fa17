// Package channel holds the naming rules of wsgate channels, shared by the
// gateway (which checks what clients ask for) and the bus (which maps
// channels to NATS subjects and checks what publishers send).
//
// A channel name is one or more dot-separated tokens of [A-Za-z0-9_-], at most
// MaxLen bytes long: "user.42", "topic.sports", "broadcast". Names never hold
// wildcards. Patterns, used only in the JWT "channels" claim, may also hold
// the NATS wildcards "*" (exactly one token) and ">" (one or more tokens, last
// only).
//
// Every function here is pure and safe for concurrent use.
package channel

import "strings"

// MaxLen is the longest channel name in bytes.
const MaxLen = 128

// MaxUserLen is the longest user id in bytes: its channel "user.<id>" is at
// most MaxLen bytes long.
const MaxUserLen = MaxLen - len(UserKind) - len(".")

// The three kinds of channel, as the first token of the name.
const (
	Broadcast = "broadcast"
	UserKind  = "user"
	TopicKind = "topic"
)

// Valid reports whether name is a well-formed channel name: non-empty tokens
// of [A-Za-z0-9_-] separated by single dots, at most MaxLen bytes.
func Valid(name string) bool {
	if len(name) == 0 || len(name) > MaxLen {
		return false
	}
	tokenLen := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			if tokenLen == 0 {
				return false
			}
			tokenLen = 0
		case tokenChar(c):
			tokenLen++
		default:
			return false
		}
	}
	return tokenLen > 0
}

// ValidToken reports whether s is a single token: a non-empty run of
// [A-Za-z0-9_-] of at most MaxLen bytes. User ids and topic names given to
// the publisher API must be valid tokens or dotted names; user ids must be
// single tokens so that "user.<id>" has exactly two tokens.
func ValidToken(s string) bool {
	return Valid(s) && !strings.Contains(s, ".")
}

// ValidUser reports whether id can be a user id: a single token of at most
// MaxUserLen bytes, so that "user.<id>" is a valid channel name.
func ValidUser(id string) bool {
	return ValidToken(id) && len(id) <= MaxUserLen
}

func tokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// User returns the channel of user id: "user.<id>".
func User(id string) string { return UserKind + "." + id }

// Topic returns the channel of topic name: "topic.<name>".
func Topic(name string) string { return TopicKind + "." + name }

// IsTopic reports whether name is a topic channel ("topic.<one or more tokens>").
func IsTopic(name string) bool {
	return strings.HasPrefix(name, TopicKind+".") && Valid(name)
}

// ValidPattern reports whether p is a well-formed pattern: like a name, but a
// token may be "*", and the last token may be ">".
func ValidPattern(p string) bool {
	if len(p) == 0 || len(p) > MaxLen {
		return false
	}
	for i, tok := range strings.Split(p, ".") {
		switch {
		case tok == "*":
		case tok == ">":
			if i != strings.Count(p, ".") {
				return false
			}
		case !Valid(tok):
			return false
		}
	}
	return true
}

// Match reports whether the channel name matches pattern p, with NATS
// wildcard semantics: "*" matches exactly one token, a final ">" matches one
// or more tokens. A malformed pattern matches nothing.
func Match(p, name string) bool {
	if !ValidPattern(p) || !Valid(name) {
		return false
	}
	for {
		pt, prest, pmore := strings.Cut(p, ".")
		nt, nrest, nmore := strings.Cut(name, ".")
		switch {
		case pt == ">":
			return true
		case pt != "*" && pt != nt:
			return false
		}
		if !pmore || !nmore {
			return pmore == nmore
		}
		p, name = prest, nrest
	}
}
