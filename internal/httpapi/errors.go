package httpapi

import "errors"

var (
	// ErrNoKeys is returned by LoadKeys when a key source was given but
	// held no key.
	ErrNoKeys = errors.New("httpapi: no API key")

	// ErrInvalidKey is returned by LoadKeys and New for a key shorter than
	// MinKeyLen bytes or holding a byte that is not printable ASCII (a
	// space, a control character): such a key is either guessable or
	// cannot be sent in a header. The error never contains the key.
	ErrInvalidKey = errors.New("httpapi: invalid API key")

	// ErrInvalidConfig is returned by New for a nil Publisher or Control,
	// or a negative MaxBody or Timeout.
	ErrInvalidConfig = errors.New("httpapi: invalid config")
)
