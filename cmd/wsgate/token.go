package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signToken prints an HS256 token, so that JWT mode can be tried without an
// identity provider. Production tokens come from the application's own
// auth service.
func signToken(args []string) error {
	fs := flag.NewFlagSet("wsgate token --user ID [--channels topic.a,topic.b.*] [--ttl 1h]", flag.ContinueOnError)
	secret := fs.String("jwt-secret", "", "HS256 shared secret, the gateway's --jwt-secret (WSGATE_JWT_SECRET)")
	user := fs.String("user", "", "user id (the sub claim)")
	channels := fs.String("channels", "", "comma-separated topic patterns the user may subscribe to")
	ttl := fs.Duration("ttl", time.Hour, "lifetime (the exp claim)")
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *secret == "" || *user == "" {
		fs.Usage()
		return errors.New("token needs --jwt-secret and --user")
	}
	claims := jwt.MapClaims{"sub": *user, "exp": time.Now().Add(*ttl).Unix(), "iat": time.Now().Unix()}
	if list := splitList(*channels); len(list) > 0 {
		claims["channels"] = list
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(*secret))
	if err != nil {
		return err
	}
	fmt.Println(s)
	return nil
}
