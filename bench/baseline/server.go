package main

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const (
	writeWait        = 10 * time.Second // time allowed to write one message
	pongWait         = 60 * time.Second // read deadline, refreshed by pongs and messages
	pingPeriod       = 25 * time.Second // must be less than pongWait
	maxMessageSize   = 4096             // largest client message
	sendQueueSize    = 64               // messages queued per connection
	maxSubscriptions = 100              // topics per connection
	flushTimeout     = 5 * time.Second  // wait for NATS to confirm a subscription
	closeTimeout     = 3 * time.Second  // wait for clients to answer the 1001 at shutdown
)

var (
	validUser    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,123}$`)
	validChannel = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
	validTopic   = regexp.MustCompile(`^topic(\.[A-Za-z0-9_-]+)+$`)
)

type config struct {
	NATSURL string
	Prefix  string
}

// server holds every connection and the process-wide broadcast subscription.
type server struct {
	cfg      config
	nc       *nats.Conn
	bcast    *nats.Subscription
	upgrader websocket.Upgrader
	nextID   atomic.Uint64

	mu      sync.RWMutex
	conns   map[*conn]struct{}
	closing bool
	wg      sync.WaitGroup // readPump and writePump goroutines

	registry    *prometheus.Registry
	connections prometheus.Gauge
	delivered   prometheus.Counter
}

func newServer(cfg config) (*server, error) {
	s := &server{
		cfg:   cfg,
		conns: make(map[*conn]struct{}),
		upgrader: websocket.Upgrader{
			ReadBufferSize:  4096,
			WriteBufferSize: 4096,
			CheckOrigin:     func(*http.Request) bool { return true },
		},
		registry: prometheus.NewRegistry(),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "baseline_connections", Help: "Open WebSocket connections.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "baseline_messages_delivered_total", Help: "Message frames queued to clients, one per recipient.",
		}),
	}
	s.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		s.connections, s.delivered,
	)
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("wsgate-baseline"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, err
	}
	s.nc = nc
	s.bcast, err = nc.Subscribe(cfg.Prefix+".broadcast", s.broadcast)
	if err == nil {
		err = nc.FlushTimeout(flushTimeout)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return s, nil
}

// broadcast builds the frame once and queues the same bytes to everyone.
func (s *server) broadcast(m *nats.Msg) {
	frame := messageFrame(s.channelOf(m.Subject), m.Data)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for c := range s.conns {
		if c.enqueue(frame) {
			s.delivered.Inc()
		}
	}
}

func (s *server) channelOf(subject string) string {
	return strings.TrimPrefix(subject, s.cfg.Prefix+".")
}

func (s *server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.Handle("/metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	return mux
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", s.serveWS)
	return mux
}

func (s *server) serveWS(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	if !validUser.MatchString(user) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if !s.nc.IsConnected() {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil) // answers the client itself on error
	if err != nil {
		return
	}
	c := &conn{
		srv:  s,
		ws:   ws,
		id:   strconv.FormatUint(s.nextID.Add(1), 10),
		user: user,
		send: make(chan []byte, sendQueueSize),
		subs: make(map[string]*nats.Subscription),
	}
	// Subscribe the user's subject and wait for NATS to confirm it, so that
	// nothing published after the welcome is lost.
	userSub, err := s.nc.Subscribe(s.cfg.Prefix+".user."+user, c.deliver)
	if err == nil {
		c.subs["user."+user] = userSub
		err = s.nc.FlushTimeout(flushTimeout)
	}
	if err != nil || !s.add(c) {
		code, text := websocket.CloseTryAgainLater, "try again later"
		if err == nil {
			code, text = websocket.CloseGoingAway, "server going away"
		}
		c.unsubscribeAll()
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(writeWait))
		_ = ws.Close()
		return
	}
	// The pumps do not run yet, so the welcome is the first frame; whatever
	// NATS delivered meanwhile waits in c.send.
	_ = ws.SetWriteDeadline(time.Now().Add(writeWait))
	welcome, _ := json.Marshal(welcomeMsg{Type: "welcome", Conn: c.id, User: user, PingInterval: int(pingPeriod / time.Second)})
	if err := ws.WriteMessage(websocket.TextMessage, welcome); err != nil {
		_ = ws.Close() // readPump fails at once and cleans up
	}
	go c.writePump()
	go c.readPump()
}

// add registers c for broadcasts and accounts for its two goroutines.
func (s *server) add(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(2)
	s.connections.Inc()
	return true
}

func (s *server) remove(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; ok {
		delete(s.conns, c)
		s.connections.Dec()
	}
}

// Close sends 1001 to every connection, waits up to closeTimeout for the
// clients to answer, drops the rest, and closes the NATS connection. Stop the
// http.Server first so that no new connection arrives.
func (s *server) Close() {
	s.mu.Lock()
	s.closing = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server going away")
	for _, c := range conns {
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeTimeout):
		for _, c := range conns {
			_ = c.ws.Close()
		}
		<-done
	}
	_ = s.bcast.Unsubscribe()
	s.nc.Close()
}

// conn is one WebSocket client with its reader and writer goroutines.
type conn struct {
	srv  *server
	ws   *websocket.Conn
	id   string
	user string

	mu     sync.Mutex
	send   chan []byte // closed by readPump on exit, under mu
	closed bool        // under mu

	// subs maps channel → subscription. Only serveWS, then readPump, use it.
	subs map[string]*nats.Subscription
}

// enqueue queues frame without blocking. A full queue drops the connection as
// a slow consumer; readPump then cleans up.
func (c *conn) enqueue(frame []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	select {
	case c.send <- frame:
		return true
	default:
		_ = c.ws.Close()
		return false
	}
}

// deliver is the NATS callback of the connection's own subscriptions.
func (c *conn) deliver(m *nats.Msg) {
	if c.enqueue(messageFrame(c.srv.channelOf(m.Subject), m.Data)) {
		c.srv.delivered.Inc()
	}
}

func (c *conn) reply(r reply) {
	b, _ := json.Marshal(r)
	c.enqueue(b)
}

func (c *conn) readPump() {
	defer c.srv.wg.Done()
	defer func() {
		c.srv.remove(c)
		c.unsubscribeAll()
		c.mu.Lock()
		c.closed = true
		close(c.send)
		c.mu.Unlock()
		_ = c.ws.Close()
	}()
	c.ws.SetReadLimit(maxMessageSize)
	_ = c.ws.SetReadDeadline(time.Now().Add(pongWait))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		typ, msg, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(pongWait))
		if typ != websocket.TextMessage {
			_ = c.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseUnsupportedData, "binary messages are not supported"),
				time.Now().Add(writeWait))
			return
		}
		c.handle(msg)
	}
}

func (c *conn) writePump() {
	ticker := time.NewTicker(pingPeriod)
	defer func() {
		ticker.Stop()
		_ = c.ws.Close()
		c.srv.wg.Done()
	}()
	for {
		select {
		case b, ok := <-c.send:
			if !ok {
				return
			}
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				return
			}
		case <-ticker.C:
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.ws.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

type clientOp struct {
	Op      string `json:"op"`
	Channel string `json:"channel"`
	Ref     int64  `json:"ref"`
}

// reply is every answer to an op; the field order gives wsgate's bytes.
type reply struct {
	Type    string `json:"type"`
	Channel string `json:"channel,omitempty"`
	Ref     int64  `json:"ref"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

type welcomeMsg struct {
	Type         string `json:"type"`
	Conn         string `json:"conn"`
	User         string `json:"user"`
	PingInterval int    `json:"ping_interval"`
}

func errorReply(ref int64, code, msg string) reply {
	return reply{Type: "error", Ref: ref, Code: code, Message: msg}
}

func (c *conn) handle(msg []byte) {
	var op clientOp
	if err := json.Unmarshal(msg, &op); err != nil {
		c.reply(errorReply(0, "bad_request", "a message is a JSON object with op, channel and ref"))
		return
	}
	switch op.Op {
	case "ping":
		c.reply(reply{Type: "pong", Ref: op.Ref})
	case "subscribe", "unsubscribe":
		switch {
		case len(op.Channel) > 128 || !validChannel.MatchString(op.Channel):
			c.reply(errorReply(op.Ref, "invalid_channel", "a channel is dot-separated tokens of [A-Za-z0-9_-], at most 128 bytes, without wildcards"))
		case !validTopic.MatchString(op.Channel):
			c.reply(errorReply(op.Ref, "forbidden", "only topic.<name> channels can be subscribed"))
		case op.Op == "subscribe":
			c.subscribe(op.Channel, op.Ref)
		default:
			c.unsubscribe(op.Channel, op.Ref)
		}
	default:
		c.reply(errorReply(op.Ref, "unknown_op", "op must be subscribe, unsubscribe or ping"))
	}
}

// subscribe gives the connection its own NATS subscription of the topic and
// answers once NATS has confirmed it.
func (c *conn) subscribe(ch string, ref int64) {
	if _, held := c.subs[ch]; !held {
		if len(c.subs) > maxSubscriptions { // the user channel does not count
			c.reply(errorReply(ref, "too_many_subscriptions", "too many subscriptions on this connection"))
			return
		}
		sub, err := c.srv.nc.Subscribe(c.srv.cfg.Prefix+"."+ch, c.deliver)
		if err == nil {
			if err = c.srv.nc.FlushTimeout(flushTimeout); err != nil {
				_ = sub.Unsubscribe()
			}
		}
		if err != nil {
			c.reply(errorReply(ref, "unavailable", "the message bus is unavailable; try again"))
			return
		}
		c.subs[ch] = sub
	}
	c.reply(reply{Type: "subscribed", Channel: ch, Ref: ref})
}

func (c *conn) unsubscribe(ch string, ref int64) {
	if sub := c.subs[ch]; sub != nil {
		_ = sub.Unsubscribe()
		delete(c.subs, ch)
	}
	c.reply(reply{Type: "unsubscribed", Channel: ch, Ref: ref})
}

func (c *conn) unsubscribeAll() {
	for _, sub := range c.subs {
		_ = sub.Unsubscribe()
	}
	c.subs = nil
}

// messageFrame builds {"type":"message","channel":<ch>,"data":<payload>}:
// a valid JSON, valid UTF-8 payload verbatim, anything else as a JSON string.
func messageFrame(ch string, payload []byte) []byte {
	b := make([]byte, 0, 48+len(ch)+len(payload))
	b = append(b, `{"type":"message","channel":"`...)
	b = append(b, ch...)
	b = append(b, `","data":`...)
	if json.Valid(payload) && utf8.Valid(payload) {
		b = append(b, payload...)
	} else {
		q, _ := json.Marshal(string(payload))
		b = append(b, q...)
	}
	return append(b, '}')
}
