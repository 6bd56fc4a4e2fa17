// Package token signs the JSON Web Tokens wsbench's clients present at
// upgrade: HS256 with a shared secret (the gateway's --jwt-secret), or,
// with a PEM private key, RS256 (RSA), ES256 (EC P-256) or EdDSA
// (Ed25519), with a kid header when one is given, as an identity provider
// signs for a gateway that verifies against its JWKS (--jwks-file,
// --jwks-url) or one public key (--jwt-public-key).
//
//	s, err := token.New(nil, "rsa.pem", "k1")
//	if err != nil {
//		return err
//	}
//	tok, err := s.Sign("u42", time.Now().Add(24*time.Hour))
//
// A Signer is immutable; Sign may be called from any goroutine.
package token
