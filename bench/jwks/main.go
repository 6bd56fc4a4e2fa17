// Command jwks writes the public JSON Web Key Set of PEM private keys, each
// with its kid, the alg it signs with (RS256, ES256 or EdDSA) and use sig:
// the set a gateway's --jwks-file verifies wsbench's --jwt-key tokens
// against.
//
//	go run ./bench/jwks rsa=rsa.pem ec=ec.pem ed=ed.pem > jwks.json
package main

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/MicahParks/jwkset"

	"github.com/wsgate/wsgate/bench/internal/token"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "jwks:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: jwks KID=FILE [KID=FILE ...] (PEM private keys)")
	}
	var set jwkset.JWKSMarshal
	for _, a := range args {
		kid, file, ok := strings.Cut(a, "=")
		if !ok || kid == "" {
			return fmt.Errorf("%q: want KID=FILE", a)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		method, key, err := token.ParseKey(b)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		pub := key.(crypto.Signer).Public()
		jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			KID: kid, ALG: jwkset.ALG(method.Alg()), USE: jwkset.UseSig,
		}})
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(set)
}
