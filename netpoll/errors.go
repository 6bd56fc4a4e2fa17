package netpoll

import "errors"

var (
	// ErrClosed is returned by Observe when the Poller has been closed.
	ErrClosed = errors.New("netpoll: poller closed")

	// ErrNotObserved is returned by Resume, WantWrite and Stop when the Desc
	// is no longer observed: it was stopped (by Stop or CloseSocket) or the
	// Poller was closed.
	ErrNotObserved = errors.New("netpoll: desc not observed")
)
