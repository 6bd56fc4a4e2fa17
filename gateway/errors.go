package gateway

import "errors"

// Errors returned by the gateway.
var (
	// ErrServerClosed is returned by Serve after Shutdown or Close.
	ErrServerClosed = errors.New("gateway: server closed")
	// ErrNoBus is returned by New when Config.Bus is nil.
	ErrNoBus = errors.New("gateway: no bus")
	// ErrNoAuth is returned by New when Config.Auth is nil.
	ErrNoAuth = errors.New("gateway: no authenticator")
	// ErrUnauthorized is returned by an Authenticator for missing or invalid credentials.
	ErrUnauthorized = errors.New("gateway: unauthorized")

	// The reasons of refused upgrades, for the debug log.
	errHandshakeTooLarge = errors.New("gateway: handshake request too large")
	errHandshakeTimeout  = errors.New("gateway: handshake timed out")
	errUserLimit         = errors.New("gateway: too many connections for the user")
	errRevoked           = errors.New("gateway: the token is revoked")
)
