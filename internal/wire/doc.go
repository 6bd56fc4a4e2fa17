// Package wire owns what both ends of a wsgate connection share on the
// wire: the RFC 6455 frame header (encode and parse), the JSON message
// envelope, and the permessage-deflate (RFC 7692) pieces — window bits,
// the removed tail, the RSV1 bit, compressing a message once and a pooled
// inflater. The gateway writes with it and the bench clients read with it,
// so the two cannot drift apart.
//
// Usage:
//
//	frame, body := wire.MessageFrame(ch, payload, pos) // validated once, one allocation; pos zero for a volatile notification
//	zframe := wire.Compress(ws.OpText, body) // nil when it would not shrink
//
//	h, n, err := wire.ParseHeader(buf) // ErrIncomplete: read more
//
//	f := wire.GetInflater()
//	out, err := f.Inflate(msg, limit) // ErrTooBig past limit
//	...
//	f.Recycle() // out is invalid from here on
//
// # Concurrency
//
// Every function may be called from any goroutine. An Inflater belongs to
// the goroutine that took it until Recycle. Frames returned by Build and
// Compress are never modified afterwards, so one frame may be written to
// many connections at once.
package wire
