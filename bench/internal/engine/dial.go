package engine

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/bench/internal/config"
	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/netpoll"
)

// A dialer goroutine takes connection indices from the engine's queue,
// dials, writes the upgrade request from a template, reads the 101 and
// the welcome (and, for topic, the subscribed answer) with a deadline,
// then hands the socket to the poller and moves on.

type dialer struct {
	e   *Engine
	buf []byte // handshake bytes; reused
	req []byte // request scratch
}

func (d *dialer) run() {
	defer d.e.dialWG.Done()
	for job := range d.e.dialq {
		d.connect(job)
	}
}

func (d *dialer) connect(job dialJob) {
	e := d.e
	start := time.Now()
	if !job.reconnect {
		atomicMin(&e.firstDial, start.UnixNano())
	} else {
		atomicMin(&e.reconnFirst, start.UnixNano())
	}
	tcp, rest, deflate, reason := d.handshake(e.global(job.k), start)
	if reason != "" {
		e.fail(job, reason)
		return
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		tcp.Close()
		e.fail(job, "poller")
		return
	}
	k := job.k
	c := &e.conns[k]
	c.mu.Lock()
	// c.seq is kept: churn resets it when it closes a connection, and a
	// resumed connection goes on counting its channel's seqs.
	c.tcp, c.rc, c.state, c.deflate = tcp, rc, stateOpen, deflate
	if c.dur != nil && job.reconnect && (e.cfg.NoResume || e.cfg.ResumeInURL) {
		// Welcomed is resumed: no op to send, and with ?resume= no
		// answer unless something is missing.
		now := time.Now().UnixNano()
		c.dur.cut, c.dur.resumed, c.dur.resumeAt = false, true, now
		if e.cfg.ResumeInURL {
			atomicMin(&e.firstResume, now)
			e.resumedN.Add(1)
		}
		e.checkDone(c.dur, c.dur.resumeAt)
	} else if c.dur != nil && job.reconnect {
		if _, err := tcp.Write(e.appendResume(d.req[:0], k, c.dur)); err != nil {
			c.state, c.tcp, c.rc = stateIdle, nil, nil
			c.mu.Unlock()
			tcp.Close()
			e.fail(job, "closed")
			return
		}
		c.dur.cut = false
	}
	if len(rest) > 0 {
		r := append([]byte(nil), rest...)
		c.rem = &r
	}
	// The callback may run before Observe returns; it only enqueues, and
	// the reader waits for c.mu, so it sees c.desc set.
	c.desc, err = e.poller.Observe(rc, func(ev netpoll.Event) {
		if ev&netpoll.EventClosed == 0 {
			e.enqueue(k)
		}
	})
	if err != nil {
		c.state, c.tcp, c.rc, c.rem, c.deflate = stateIdle, nil, nil, nil, false
		c.mu.Unlock()
		tcp.Close()
		e.fail(job, "poller")
		return
	}
	hasRest := c.rem != nil
	c.mu.Unlock()
	now := time.Now()
	e.open.Add(1)
	if job.reconnect {
		e.reconnHist.Record(now.Sub(job.since).Microseconds())
		atomicMax(&e.reconnLast, now.UnixNano())
		e.reconnects.Add(1)
		e.reconnWG.Done()
	} else {
		e.handshakes.Record(now.Sub(start).Microseconds())
		e.established.Add(1)
		if deflate {
			e.deflated.Add(1)
		}
		atomicMax(&e.lastWelcome, now.UnixNano())
		e.rampWG.Done()
	}
	if hasRest { // frames that came behind the welcome: the kernel will not report them again
		e.enqueue(k)
	}
}

// handshake dials conn g and returns it welcomed, with the bytes read past
// the awaited frame and whether its 101 accepted permessage-deflate, or the
// reason it failed: dial, timeout, closed, http_<status>, protocol,
// server_close_<code>, subscribe_error, deflate_context_takeover,
// deflate_bad_response.
func (d *dialer) handshake(g int, start time.Time) (*net.TCPConn, []byte, bool, string) {
	e := d.e
	cfg := e.cfg
	deadline := start.Add(cfg.HandshakeTimeout.D())
	// No TCP keep-alive probes: WebSocket pings do that job, and Go's
	// default (15 s) on a million client sockets is 66,000 probes a second
	// on the host under test.
	nd := net.Dialer{Deadline: deadline, KeepAlive: -1}
	if len(e.sources) > 0 {
		// A source address with port 0: bind picks the port. (With
		// IP_BIND_ADDRESS_NO_PORT connect picks it instead, checking the
		// 4-tuple of candidate ports against every established socket; at
		// 700,000 connections to one gateway address that search was half
		// of the host's CPU, against 3 % for bind's.)
		nd.LocalAddr = &net.TCPAddr{IP: e.sources[g%len(e.sources)]}
	}
	var addr string
	if cfg.Scenario == config.ScenarioFloor {
		addr = e.spec.FloorAddrs[g%len(e.spec.FloorAddrs)]
	} else {
		addr = e.targets[g%len(e.targets)].Host
	}
	nc, err := nd.Dial("tcp", addr)
	if err != nil {
		if isTimeout(err) {
			return nil, nil, false, "timeout"
		}
		return nil, nil, false, "dial"
	}
	tcp := nc.(*net.TCPConn)
	if cfg.Scenario == config.ScenarioFloor {
		return tcp, nil, false, "" // plain TCP: no handshake
	}
	rest, deflate, reason := d.upgrade(tcp, g, deadline)
	if reason != "" {
		tcp.Close()
		return nil, nil, false, reason
	}
	if err := tcp.SetDeadline(time.Time{}); err != nil {
		tcp.Close()
		return nil, nil, false, "closed"
	}
	return tcp, rest, deflate, ""
}

func (d *dialer) upgrade(tcp *net.TCPConn, g int, deadline time.Time) (rest []byte, deflate bool, reason string) {
	e := d.e
	cfg := e.cfg
	if err := tcp.SetDeadline(deadline); err != nil {
		return nil, false, "closed"
	}
	t := e.targets[g%len(e.targets)]
	var keyRaw [16]byte
	_, _ = rand.Read(keyRaw[:])
	var key [24]byte
	base64.StdEncoding.Encode(key[:], keyRaw[:])

	req := append(d.req[:0], "GET "...)
	req = append(req, t.Path...)
	if t.Query {
		req = append(req, '&')
	} else {
		req = append(req, '?')
	}
	if e.tokens != nil {
		k := (g - e.spec.Index) / e.spec.Workers
		req = append(append(req, "token="...), e.tokens[k]...)
	} else {
		req = append(append(req, "user="...), cfg.UserPrefix...)
		req = strconv.AppendInt(req, int64(g), 10)
	}
	req = e.appendResumeParam(req, g)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, t.HostHeader...)
	req = append(req, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "...)
	req = append(req, key[:]...)
	req = append(req, "\r\n"...)
	if cfg.Deflate {
		req = append(req, deflateOffer...)
	}
	req = append(req, "\r\n"...)
	d.req = req
	if _, err := tcp.Write(req); err != nil {
		return nil, false, ioReason(err)
	}

	// The response head.
	buf := d.buf[:0]
	var head int
	for {
		if len(buf) == cap(buf) {
			return nil, false, "protocol" // a response head over 16 KiB
		}
		n, err := tcp.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			head = i + 4
			break
		}
		if err != nil {
			return nil, false, ioReason(err)
		}
	}
	status, ok := statusCode(buf[:head])
	if !ok {
		return nil, false, "protocol"
	}
	if status != 101 {
		return nil, false, "http_" + strconv.Itoa(status)
	}
	if !bytes.Contains(buf[:head], acceptValue(key[:])) {
		return nil, false, "protocol"
	}
	if cfg.Deflate {
		if deflate, reason = deflateAnswer(buf[:head]); reason != "" {
			return nil, false, reason
		}
	}
	buf = buf[:copy(buf, buf[head:])]

	buf, reason = d.await(tcp, buf, kindWelcome, deflate)
	if reason != "" {
		return nil, false, reason
	}
	if cfg.Scenario == config.ScenarioTopic {
		sub := strconv.AppendInt(append(d.req[:0], `{"op":"subscribe","channel":"topic.t`...), int64(g%cfg.Topics), 10)
		sub = append(sub, `","ref":1}`...)
		frame := appendClientFrame(nil, ws.OpText, sub)
		if _, err := tcp.Write(frame); err != nil {
			return nil, false, ioReason(err)
		}
		if buf, reason = d.await(tcp, buf, kindSubscribed, deflate); reason != "" {
			return nil, false, reason
		}
	}
	d.buf = buf[:0]
	return buf, deflate, ""
}

// await reads frames until a text frame of kind want, answering pings.
// It returns the bytes after that frame. Other text frames are skipped.
// deflate says the connection negotiated permessage-deflate.
func (d *dialer) await(tcp *net.TCPConn, buf []byte, want msgKind, deflate bool) ([]byte, string) {
	for {
		for {
			f, n, err := parseFrame(buf, maxFramePayload, deflate)
			if err != nil {
				return nil, "protocol"
			}
			if n == 0 {
				break
			}
			switch f.op {
			case ws.OpText:
				kind, ok := frameKind(f)
				if !ok {
					return nil, "inflate"
				}
				switch kind {
				case want:
					return buf[:copy(buf, buf[n:])], ""
				case kindError:
					if want == kindSubscribed {
						return nil, "subscribe_error"
					}
				}
			case ws.OpPing:
				if _, err := tcp.Write(appendClientFrame(nil, ws.OpPong, f.payload)); err != nil {
					return nil, ioReason(err)
				}
			case ws.OpClose:
				return nil, "server_close_" + strconv.Itoa(closeCode(f.payload))
			}
			buf = buf[:copy(buf, buf[n:])]
		}
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), 2*cap(buf)+maxFramePayload/16)
			copy(nb, buf)
			buf = nb
		}
		n, err := tcp.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil && n == 0 {
			return nil, ioReason(err)
		}
	}
}

// statusCode reads the status of "HTTP/1.1 101 Switching Protocols".
func statusCode(head []byte) (int, bool) {
	if !bytes.HasPrefix(head, []byte("HTTP/1.")) || len(head) < 12 || head[8] != ' ' {
		return 0, false
	}
	n, err := strconv.Atoi(string(head[9:12]))
	return n, err == nil
}

// acceptValue is the Sec-WebSocket-Accept a server must answer for key.
func acceptValue(key []byte) []byte {
	h := sha1.New()
	h.Write(key)
	h.Write([]byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	out := make([]byte, 28)
	base64.StdEncoding.Encode(out, h.Sum(nil))
	return out
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func ioReason(err error) string {
	if isTimeout(err) {
		return "timeout"
	}
	return "closed"
}

// frameKind is the kind of text frame f, inflated first when it is
// compressed; ok is false when it does not inflate.
func frameKind(f frame) (kind msgKind, ok bool) {
	if !f.compressed {
		return parseMessage(f.payload).kind, true
	}
	fl := wire.GetInflater()
	defer fl.Recycle()
	p, err := fl.Inflate(f.payload, maxFramePayload)
	if err != nil {
		return kindOther, false
	}
	return parseMessage(p).kind, true
}
