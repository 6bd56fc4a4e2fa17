package main

import (
	"bytes"
	"math"
	"strconv"
)

// A payload is a JSON string, "xc/<seq>/<unix ns>/xxx…", padded with x to
// the size asked. Both servers embed a valid JSON payload verbatim as the
// data of the frame they deliver, {"type":"message","channel":"broadcast",
// "data":"xc/…"}, so the receivers find it again by payloadMarker. A JSON
// string rather than wsbench's object keeps the two clients' code apart.
var payloadMarker = []byte(`"data":"xc/`)

// appendPayload appends the payload of broadcast seq, published at ts (unix
// ns), padded to size bytes (never shorter than its fields need).
func appendPayload(dst []byte, seq uint32, ts int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `"xc/`...)
	dst = strconv.AppendUint(dst, uint64(seq), 10)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, '/')
	for pad := size - (len(dst) - start) - 1; pad > 0; pad-- {
		dst = append(dst, 'x')
	}
	return append(dst, '"')
}

// parseDelivery returns the sequence number and publish time (unix ns) of
// the payload in a delivered frame, and false when the frame carries none.
// It reads bytes off the network: anything may come in.
func parseDelivery(frame []byte) (seq uint32, ts int64, ok bool) {
	i := bytes.Index(frame, payloadMarker)
	if i < 0 {
		return 0, 0, false
	}
	s, rest, ok := cutNumber(frame[i+len(payloadMarker):], '/')
	if !ok || s > math.MaxUint32 {
		return 0, 0, false
	}
	t, _, ok := cutNumber(rest, '/')
	if !ok || t > math.MaxInt64 {
		return 0, 0, false
	}
	return uint32(s), int64(t), true
}

// cutNumber parses the decimal digits of b before sep: at least one, at
// most 19, which cannot overflow a uint64.
func cutNumber(b []byte, sep byte) (n uint64, rest []byte, ok bool) {
	end := bytes.IndexByte(b, sep)
	if end < 1 || end > 19 {
		return 0, nil, false
	}
	for _, c := range b[:end] {
		if c < '0' || c > '9' {
			return 0, nil, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, b[end+1:], true
}
