package httpapi

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
)

// MinKeyLen is the shortest API key accepted, in bytes: 16 random
// characters are far beyond guessing over HTTP.
const MinKeyLen = 16

// LoadKeys returns the API keys in value and in the file at path, in that
// order, without duplicates. value holds keys separated by commas or
// newlines (a flag or an environment variable); the file holds one key a
// line, with blank lines and lines starting with "#" skipped. Surrounding
// spaces are trimmed. Either source may be empty; with neither, LoadKeys
// returns no keys and no error. When a source was given but the result is
// empty, the error is ErrNoKeys: an API key file emptied by mistake must
// not leave the API open or silently off. A key that breaks the rules of
// ErrInvalidKey fails the whole load; the error names where it was, never
// the key.
func LoadKeys(value, path string) ([]string, error) {
	var keys []string
	seen := make(map[string]bool)
	add := func(key, where string) error {
		if err := checkKey(key); err != nil {
			return fmt.Errorf("%w (%s)", err, where)
		}
		if !seen[key] {
			seen[key] = true
			keys = append(keys, key)
		}
		return nil
	}
	n := 0
	for _, line := range strings.Split(value, "\n") {
		for _, k := range strings.Split(line, ",") {
			if k = strings.TrimSpace(k); k == "" {
				continue
			}
			n++
			if err := add(k, fmt.Sprintf("key %d of the value", n)); err != nil {
				return nil, err
			}
		}
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("httpapi: API key file: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for line := 1; sc.Scan(); line++ {
			k := strings.TrimSpace(sc.Text())
			if k == "" || strings.HasPrefix(k, "#") {
				continue
			}
			if err := add(k, fmt.Sprintf("%s line %d", path, line)); err != nil {
				return nil, err
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("httpapi: API key file %s: %w", path, err)
		}
	}
	if len(keys) == 0 && (value != "" || path != "") {
		return nil, ErrNoKeys
	}
	return keys, nil
}

// checkKey returns ErrInvalidKey, with a reason but without the key, when
// key is too short or holds a byte outside printable ASCII.
func checkKey(key string) error {
	if len(key) < MinKeyLen {
		return fmt.Errorf("%w: %d bytes, at least %d needed", ErrInvalidKey, len(key), MinKeyLen)
	}
	if !printable(key) {
		return fmt.Errorf("%w: holds a space or a byte that is not printable ASCII", ErrInvalidKey)
	}
	return nil
}

// keyring holds the SHA-256 digests of the accepted keys. Comparing
// digests of fixed length keeps the comparison's time independent of the
// keys' lengths and contents.
type keyring [][sha256.Size]byte

func newKeyring(keys []string) (keyring, error) {
	kr := make(keyring, 0, len(keys))
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("%w (Config.Keys[%d])", err, i)
		}
		kr = append(kr, sha256.Sum256([]byte(k)))
	}
	return kr, nil
}

// match reports whether key is one of the ring's keys. It compares against
// every key, without stopping at the first match, so that its time does not
// tell which key matched.
func (kr keyring) match(key string) bool {
	d := sha256.Sum256([]byte(key))
	ok := 0
	for i := range kr {
		ok |= subtle.ConstantTimeCompare(d[:], kr[i][:])
	}
	return ok == 1
}
