package control

import (
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// requestSubjects are the subjects a Responder answers, indexed by the
// fuzz target's first argument.
var requestSubjects = []string{SubjectPresence, SubjectDisconnect, SubjectSubscribe, SubjectUnsubscribe, SubjectStats}

// FuzzRequestDecode feeds a Responder's decoding any body on any request
// subject: it never panics, always answers with JSON naming the gateway,
// and calls the Gateway only with a request that passes the checks. Seeds
// are in f.Add and testdata/fuzz/FuzzRequestDecode (requests as the Client
// sends them).
func FuzzRequestDecode(f *testing.F) {
	f.Add(uint8(0), []byte(`{"user":"42"}`))
	f.Add(uint8(0), []byte(`{"topic":"topic.team-7"}`))
	f.Add(uint8(1), []byte(`{"user":"42","reason":"revoked","revocation":{"user":"42","before":"2026-12-02T10:00:00Z","until":"2026-12-03T10:00:00Z"}}`))
	f.Add(uint8(1), []byte(`{"conn":"gw-a-42-0","reason":"reconnect"}`))
	f.Add(uint8(2), []byte(`{"user":"42","topic":"topic.news"}`))
	f.Add(uint8(3), []byte(`{"user":"42","topic":"topic.news"}`))
	f.Add(uint8(4), []byte(nil))
	f.Add(uint8(1), []byte("\xff\x00{"))
	f.Fuzz(func(t *testing.T, subject uint8, body []byte) {
		g := fleet()[0]
		r := &Responder{g: g, deny: NewDenylist(), log: zap.NewNop()}
		subj := requestSubjects[int(subject)%len(requestSubjects)]
		data, err := json.Marshal(r.answer(subj, body))
		if err != nil {
			t.Fatalf("answer does not marshal: %v", err)
		}
		var a struct{ Gateway, Error string }
		if err := json.Unmarshal(data, &a); err != nil || a.Gateway != g.id {
			t.Fatalf("answer %s: %v", data, err)
		}
		calls := g.requests()
		if a.Error != "" {
			if !strings.HasPrefix(a.Error, "invalid: ") || len(calls) != 0 {
				t.Fatalf("refused with %q after %d gateway calls", a.Error, len(calls))
			}
			return
		}
		if len(calls) != 1 {
			t.Fatalf("%d gateway calls for an accepted request", len(calls))
		}
		bad := ""
		switch req := calls[0].(type) {
		case PresenceQuery:
			bad = req.check()
		case Disconnect:
			bad = req.check()
		case Subscription:
			bad = req.check()
		}
		if bad != "" {
			t.Fatalf("the gateway got a request that fails its check: %s", bad)
		}
	})
}
