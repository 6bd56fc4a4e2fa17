package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/channel"
)

// signToken prints an HS256 token, so that JWT mode can be tried without an
// identity provider. Production tokens come from the application's own
// auth service. It refuses what the gateway would refuse, with the
// gateway's words: a token it signs is one the gateway accepts.
func signToken(args []string) error {
	fs := flag.NewFlagSet("wsgate token --user ID [--channels topic.a,topic.b.*] [--ttl 1h]", flag.ContinueOnError)
	secret := fs.String("jwt-secret", "", "HS256 shared secret of at least 32 bytes, the gateway's --jwt-secret (WSGATE_JWT_SECRET)")
	user := fs.String("user", "", fmt.Sprintf("user id (the sub claim): one token of [A-Za-z0-9_-], at most %d bytes", channel.MaxUserLen))
	channels := fs.String("channels", "", "comma-separated topic patterns the user may subscribe to: topic.sports, topic.news.*, topic.>")
	ttl := fs.Duration("ttl", time.Hour, "lifetime (the exp claim)")
	if err := parse(fs, args, 0, "ttl"); err != nil {
		return err
	}
	if *secret == "" || *user == "" {
		fs.Usage()
		return usagef("token needs --jwt-secret and --user")
	}
	if _, err := gateway.NewJWTAuth(gateway.JWTConfig{Secret: []byte(*secret)}); err != nil {
		return usagef("--jwt-secret: %w", err)
	}
	if !channel.ValidUser(*user) {
		return usagef("--user %q: sub must be a token of [A-Za-z0-9_-], at most %d bytes", *user, channel.MaxUserLen)
	}
	patterns := splitList(*channels)
	for _, p := range patterns {
		if err := checkPattern(p); err != nil {
			return usagef("--channels %q: %w", p, err)
		}
	}
	claims := jwt.MapClaims{"sub": *user, "exp": time.Now().Add(*ttl).Unix(), "iat": time.Now().Unix()}
	if len(patterns) > 0 {
		claims["channels"] = patterns
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(*secret))
	if err != nil {
		return err
	}
	fmt.Println(s)
	return nil
}

// checkPattern refuses a pattern of the channels claim that would allow
// nothing: a malformed one, which the gateway matches with nothing, or one
// that cannot match a topic, the only channels a client subscribes to.
func checkPattern(p string) error {
	if !channel.ValidPattern(p) {
		return errors.New("a pattern is dot-separated tokens of [A-Za-z0-9_-], at most 128 bytes, where a whole token may be * and the last one >; the gateway matches a malformed pattern with nothing")
	}
	first, _, _ := strings.Cut(p, ".")
	if first != channel.TopicKind && first != "*" && first != ">" {
		return fmt.Errorf("only topic.<name> channels can be subscribed; did you mean %s?", channel.Topic(p))
	}
	return nil
}
