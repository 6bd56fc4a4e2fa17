package main

import (
	"encoding/binary"
	"encoding/json"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
)

// floor is the floor server: the least a server can do for the same client
// and the same broadcasts. It answers the handshake with gorilla's
// Upgrader, sends a welcome as the gateway does, and then only writes: for
// each message on <prefix>.broadcast it builds one frame, the gateway's
// envelope around the payload, and writes those bytes to every connection
// from GOMAXPROCS goroutines, each with its share of the connections. There
// is no goroutine, queue or buffer per connection, and nothing is read, so
// its CPU per delivery is close to the kernel's cost of the writes.
type floor struct {
	upgrader websocket.Upgrader
	nc       *nats.Conn
	sub      *nats.Subscription
	nextID   atomic.Uint64

	mu     sync.Mutex // protects conns and closed
	conns  []net.Conn // only appended to, so that broadcast can share its prefix
	closed bool
}

// newFloor connects to NATS and subscribes to prefix.broadcast.
func newFloor(natsURL, prefix string) (*floor, error) {
	f := &floor{upgrader: websocket.Upgrader{
		ReadBufferSize:  256, // nothing is read after the request
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     func(*http.Request) bool { return true },
	}}
	nc, err := nats.Connect(natsURL, nats.Name("crosscheck-floor"))
	if err != nil {
		return nil, err
	}
	f.nc = nc
	if f.sub, err = nc.Subscribe(prefix+".broadcast", f.broadcast); err == nil {
		err = nc.Flush() // subscribed before the first client is welcomed
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return f, nil
}

// ServeHTTP upgrades, welcomes and keeps the connection's socket.
func (f *floor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := f.upgrader.Upgrade(w, r, nil) // answers the client itself on error
	if err != nil {
		return
	}
	welcome, _ := json.Marshal(struct {
		Type         string `json:"type"`
		Conn         string `json:"conn"`
		User         string `json:"user"`
		PingInterval int    `json:"ping_interval"` // the floor sends no pings
	}{"welcome", "floor-" + strconv.FormatUint(f.nextID.Add(1), 10), r.URL.Query().Get("user"), 0})
	if err := ws.WriteMessage(websocket.TextMessage, welcome); err != nil {
		ws.Close()
		return
	}
	// From here on the socket gets raw frames; gorilla's Conn and its
	// buffers are dropped.
	c := ws.NetConn()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return
	}
	f.conns = append(f.conns, c)
}

// broadcast writes one frame to every connection. NATS calls it for one
// message at a time.
func (f *floor) broadcast(m *nats.Msg) {
	frame := appendTextFrame(nil, appendEnvelope(nil, "broadcast", m.Data))
	f.mu.Lock()
	conns := f.conns // what is appended later lies beyond len(conns)
	f.mu.Unlock()
	p := runtime.GOMAXPROCS(0)
	share := (len(conns) + p - 1) / p
	var wg sync.WaitGroup
	for lo := 0; lo < len(conns); lo += share {
		wg.Go(func() {
			for _, c := range conns[lo:min(lo+share, len(conns))] {
				if _, err := c.Write(frame); err != nil {
					c.Close() // later writes fail at once, without a system call
				}
			}
		})
	}
	wg.Wait()
}

// Close closes every connection and the NATS connection. Stop the HTTP
// server first so that no connection arrives after it.
func (f *floor) Close() {
	f.mu.Lock()
	f.closed = true
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	_ = f.sub.Unsubscribe()
	f.nc.Close()
}

// appendEnvelope appends the gateway's message frame for payload on
// channel ch (docs/protocol.md): a payload that is valid JSON in valid
// UTF-8 verbatim as data, anything else as a JSON string.
func appendEnvelope(dst []byte, ch string, payload []byte) []byte {
	dst = append(dst, `{"type":"message","channel":"`...)
	dst = append(dst, ch...)
	dst = append(dst, `","data":`...)
	if json.Valid(payload) && utf8.Valid(payload) {
		dst = append(dst, payload...)
	} else {
		q, _ := json.Marshal(string(payload))
		dst = append(dst, q...)
	}
	return append(dst, '}')
}

// appendTextFrame appends payload as one unmasked text frame, as a server
// sends it (RFC 6455, section 5.2).
func appendTextFrame(dst, payload []byte) []byte {
	const finText = 0x81
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, finText, byte(n))
	case n <= 0xffff:
		dst = append(dst, finText, 126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, finText, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}
