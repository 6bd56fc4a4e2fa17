package gateway

import (
	"strconv"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/wire"
)

// Server frames are unmasked, final, and built once: the same bytes go to
// every recipient of a notification and are never modified afterwards (write
// queues keep references to them).

// textFrame frames a JSON body built by fill into one allocation; size is
// an upper bound of the body's length.
func textFrame(size int, fill func([]byte) []byte) []byte {
	frame, _ := wire.Build(ws.OpText, size, fill)
	return frame
}

// welcomeFrame builds the welcome frame. conn and user are tokens of
// [A-Za-z0-9_-] and need no escaping.
func welcomeFrame(conn, user string, pingSeconds int64) []byte {
	return textFrame(80+len(conn)+len(user), func(b []byte) []byte {
		b = append(b, `{"type":"welcome","conn":"`...)
		b = append(b, conn...)
		b = append(b, `","user":"`...)
		b = append(b, user...)
		b = append(b, `","ping_interval":`...)
		b = strconv.AppendInt(b, pingSeconds, 10)
		return append(b, '}')
	})
}

// replyFrame builds {"type":<typ>,"channel":<ch>,"ref":<ref>}, leaving out
// the channel when ch is empty. ch must be a valid channel name.
func replyFrame(typ, ch string, ref int64) []byte {
	return textFrame(64+len(typ)+len(ch), func(b []byte) []byte {
		b = append(b, `{"type":"`...)
		b = append(b, typ...)
		b = append(b, '"')
		if ch != "" {
			b = append(b, `,"channel":"`...)
			b = append(b, ch...)
			b = append(b, '"')
		}
		b = append(b, `,"ref":`...)
		b = strconv.AppendInt(b, ref, 10)
		return append(b, '}')
	})
}

// serverReplyFrame builds {"type":<typ>,"channel":<ch>,"server":true}: a
// change the server made to a connection's channels unasked. ch must be a
// valid channel name.
func serverReplyFrame(typ, ch string) []byte {
	return textFrame(48+len(typ)+len(ch), func(b []byte) []byte {
		b = append(b, `{"type":"`...)
		b = append(b, typ...)
		b = append(b, `","channel":"`...)
		b = append(b, ch...)
		return append(b, `","server":true}`...)
	})
}

// dataFrame builds {"type":<typ>,"channel":<ch>,"ref":<ref>,"data":<data>}.
// ch must be a valid channel name and data valid JSON.
func dataFrame(typ, ch string, ref int64, data []byte) []byte {
	return textFrame(72+len(typ)+len(ch)+len(data), func(b []byte) []byte {
		b = append(b, `{"type":"`...)
		b = append(b, typ...)
		b = append(b, `","channel":"`...)
		b = append(b, ch...)
		b = append(b, `","ref":`...)
		b = strconv.AppendInt(b, ref, 10)
		b = append(b, `,"data":`...)
		b = append(b, data...)
		return append(b, '}')
	})
}

// errorFrame builds {"type":"error","ref":<ref>,"code":<code>,"message":<msg>}.
func errorFrame(ref int64, code, msg string) []byte {
	return textFrame(64+len(code)+2*len(msg), func(b []byte) []byte {
		b = append(b, `{"type":"error","ref":`...)
		b = strconv.AppendInt(b, ref, 10)
		b = append(b, `,"code":"`...)
		b = append(b, code...)
		b = append(b, `","message":`...)
		b = wire.AppendJSONString(b, []byte(msg))
		return append(b, '}')
	})
}

// channelErrorFrame builds {"type":"error","ref":0,"channel":<ch>,
// "code":<code>,"message":<msg>}: the failure of something the client
// asked for without a ref (a resume of ?resume=). ch must be a valid
// channel name.
func channelErrorFrame(ch, code, msg string) []byte {
	return textFrame(80+len(ch)+len(code)+2*len(msg), func(b []byte) []byte {
		b = append(b, `{"type":"error","ref":0,"channel":"`...)
		b = append(b, ch...)
		b = append(b, `","code":"`...)
		b = append(b, code...)
		b = append(b, `","message":`...)
		b = wire.AppendJSONString(b, []byte(msg))
		return append(b, '}')
	})
}

// controlFrame builds a control frame (ping, pong, close) with payload p,
// which must be at most 125 bytes. It builds any unfragmented frame: the
// conformance echo uses it for data frames.
func controlFrame(op ws.OpCode, p []byte) []byte {
	return wire.AppendFrame(make([]byte, 0, wire.HeaderLen(len(p))+len(p)), op, p)
}

// closeFrame builds a close frame with code and reason.
func closeFrame(code ws.StatusCode, reason string) []byte {
	return controlFrame(ws.OpClose, ws.NewCloseFrameBody(code, reason))
}

// pingFrame is the server's RFC 6455 ping, shared by every connection.
var pingFrame = controlFrame(ws.OpPing, nil)
