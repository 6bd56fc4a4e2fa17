package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// JSON1K is a notification as a product would send it: identifiers that
// do not repeat, URLs that share their prefix, a sentence of prose. With
// seq and ts in front it is about 1,035 bytes compact.
const JSON1K = `{
	"id": "ntf_01JDB7Q3W7K5M2X9RZC4T6YVB1",
	"type": "comment.created",
	"created_at": "2026-11-21T16:58:03.412Z",
	"recipient": "usr_7f3c21a9",
	"actor": {"id": "usr_2b81e4d0", "name": "Priya Raman", "avatar_url": "https://cdn.example.com/avatars/2b81e4d0/64.png"},
	"subject": {
		"type": "pull_request",
		"id": "pr_48213",
		"title": "Retry webhook deliveries with exponential backoff and jitter",
		"url": "https://app.example.com/acme/payments-api/pull/48213"
	},
	"comment": {
		"id": "cmt_9921734",
		"excerpt": "I think we should cap the retry window at 24 hours: after that the receiving endpoint is almost certainly gone, and we keep paying for the queue. Could you also add a metric for dropped deliveries so that on-call sees them?"
	},
	"repository": "acme/payments-api",
	"thread": {"participants": 4, "unread": 3},
	"actions": [
		{"id": "reply", "label": "Reply", "url": "https://app.example.com/acme/payments-api/pull/48213#comment-9921734"},
		{"id": "mute", "label": "Mute thread", "url": "https://app.example.com/notifications/threads/thr_55120/mute"}
	],
	"badge": 12
}`

// maxTemplate bounds a payload template: NATS max_payload with room for
// seq and ts.
const maxTemplate = 1<<20 - 64

// Append appends {"seq":N,"ts":T,"pad":"x…"} padded with x to size bytes
// (never shorter than the fields need).
func Append(dst []byte, seq uint32, ts int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, uint64(seq), 10)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"pad":"`...)
	for pad := size - (len(dst) - start) - 2; pad > 0; pad-- {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// Template checks that obj is a JSON object without top-level "seq" and
// "ts" members and returns it compact without its opening brace: what
// AppendTemplate puts after seq and ts.
func Template(obj []byte) ([]byte, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(obj, &members); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if members == nil {
		return nil, errors.New("not a JSON object: null")
	}
	for _, k := range []string{"seq", "ts"} {
		if _, ok := members[k]; ok {
			return nil, fmt.Errorf("it has a %q member: wsbench writes seq and ts itself", k)
		}
	}
	var b bytes.Buffer
	if err := json.Compact(&b, obj); err != nil {
		return nil, err
	}
	if b.Len() > maxTemplate {
		return nil, fmt.Errorf("%d bytes compact: more than NATS max_payload allows", b.Len())
	}
	return b.Bytes()[1:], nil
}

// AppendTemplate appends {"seq":N,"ts":T, and then body, an object without
// its opening brace from Template. seq and ts come first so that the
// clients' fast path finds them.
func AppendTemplate(dst []byte, seq uint32, ts int64, body []byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, uint64(seq), 10)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	if len(body) > 0 && body[0] != '}' {
		dst = append(dst, ',')
	}
	return append(dst, body...)
}

// TemplateSize is the size of a payload of body with a one-digit seq and a
// timestamp of today (19 digits): what Config.PayloadSize records for it.
func TemplateSize(body []byte) int {
	return len(AppendTemplate(nil, 1, 1_700_000_000_000_000_000, body))
}
