package netpoll

// Event is a set of readiness conditions reported to a callback.
type Event uint8

// Readiness conditions. A callback receives one or more of them OR-ed
// together, except EventClosed, which always comes alone. EventRead is set
// exactly when armed read interest fired and EventWrite exactly when armed
// write interest fired, so a caller can run one reader and one writer per
// Desc; EventHup and EventErr only add detail to them.
const (
	EventRead   Event = 1 << iota // read interest fired: a read will not block (data, EOF or error)
	EventWrite                    // write interest fired: a write will not block (room, or an error)
	EventHup                      // peer hung up (EPOLLHUP or EPOLLRDHUP)
	EventErr                      // socket error (EPOLLERR)
	EventClosed                   // the Poller was closed; no more events will come
)

var eventNames = [...]string{"read", "write", "hup", "err", "closed"}

// String returns the names of the conditions in e joined by "|", for
// example "read|hup". The zero Event is "none"; unknown bits are printed
// in hex.
func (e Event) String() string {
	if e == 0 {
		return "none"
	}
	var b []byte
	for i, name := range eventNames {
		if e&(1<<i) == 0 {
			continue
		}
		if len(b) > 0 {
			b = append(b, '|')
		}
		b = append(b, name...)
	}
	if rest := e &^ (1<<len(eventNames) - 1); rest != 0 {
		if len(b) > 0 {
			b = append(b, '|')
		}
		const hex = "0123456789abcdef"
		b = append(b, '0', 'x', hex[rest>>4], hex[rest&0xf])
	}
	return string(b)
}

// Config configures a Poller. The zero value is a valid configuration.
type Config struct {
	// OnError is called with errors of the wait loop, of re-arming a socket
	// after an event and of deferred closes (see Poller.CloseSocket). It is
	// called from the poller goroutine, or from the goroutine calling Close
	// for closes run by Close. It must not block. Nil means ignore: netpoll
	// never logs.
	OnError func(error)
}

func (c Config) onError(err error) {
	if c.OnError != nil && err != nil {
		c.OnError(err)
	}
}
