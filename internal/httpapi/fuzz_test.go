package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// Fuzz targets for the request decoders: whatever the body, they must not
// panic; what they accept must pass validation again, survive a round trip
// through encoding/json unchanged, and every refusal must be a bad request
// (a 400), never something the handler would answer 500.

func FuzzDecodePublish(f *testing.F) {
	for _, s := range []string{
		`{"channel":"user.42","data":{"new_mail":1}}`,
		`{"channel":"topic.news","data":"breaking","durable":false}`,
		`{"channel":"broadcast","data":[1,2,3],"durable":true,"id":"deploy-2026-12-02","ttl":"10m"}`,
		`{"channel":"user.42","data":null,"durable":true,"ttl":"1h30m"}`,
		`{"channel":"user.42","data":{"a":"\u00e9\ud83d\ude00"}}`,
		`{"channel":"user.42","data":1,"id":"x"}`,
		`{"channel":"user.*","data":1}`,
		`{"channel":"user.42","data":1} {}`,
		`{"channel":"user.42","data":1,"extra":0}`,
		`{"channel":"user.42","data":"` + "\xff" + `"}`,
		`{"CHANNEL":"user.42","Data":1}`,
		` {"channel":"topic.a.b.c","data":-0.5e10}	`,
		`[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePublish(b)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("refusal %v is not a bad request", err)
			}
			return
		}
		again := p
		if err := again.validate(); err != nil {
			t.Fatalf("accepted %q, then refused it: %v", b, err)
		}
		if _, _, err := splitChannel(p.Channel); err != nil {
			t.Fatalf("accepted channel %q: %v", p.Channel, err)
		}
		if !json.Valid(p.Data) || bytes.TrimSpace(p.Data) == nil {
			t.Fatalf("accepted data %q", p.Data)
		}
		// Encoding compacts data: compare with the compacted original.
		var compact bytes.Buffer
		if err := json.Compact(&compact, p.Data); err != nil {
			t.Fatal(err)
		}
		p.Data = compact.Bytes()
		roundTrip(t, p, decodePublish)
	})
}

func FuzzDecodeDisconnect(f *testing.F) {
	for _, s := range []string{
		`{"user":"42","reason":"logout"}`,
		`{"user":"42","reason":"revoked"}`,
		`{"conn":"a1b2c3-1z","reason":"reconnect"}`,
		`{"user":"42","conn":"a1b2c3-1z","reason":"logout"}`,
		`{"user":"42","reason":"bored"}`,
		`{"user":"4.2","reason":"logout"}`,
		`{"reason":"logout"}`,
		`{"user":"42","reason":"logout","revocation":{}}`,
		`{"user":42}`, `{}`, `x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDisconnect(b)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("refusal %v is not a bad request", err)
			}
			return
		}
		if err := d.validate(); err != nil {
			t.Fatalf("accepted %q, then refused it: %v", b, err)
		}
		roundTrip(t, d, decodeDisconnect)
	})
}

func FuzzDecodeSubscription(f *testing.F) {
	for _, s := range []string{
		`{"user":"42","topic":"topic.team-7"}`,
		`{"user":"42","topic":"topic.a.b"}`,
		`{"user":"42","topic":"team-7"}`,
		`{"user":"42","topic":"topic.>"}`,
		`{"user":"","topic":"topic.x"}`,
		`{"user":"42","topic":"topic.x","extra":1}`,
		`{"user":"42","topic":"topic.x"}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSubscription(b)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("refusal %v is not a bad request", err)
			}
			return
		}
		if err := s.validate(); err != nil {
			t.Fatalf("accepted %q, then refused it: %v", b, err)
		}
		roundTrip(t, s, decodeSubscription)
	})
}

// roundTrip encodes v and decodes it again with decode, and fails unless
// the result equals v.
func roundTrip[T any](t *testing.T, v T, decode func([]byte) (T, error)) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("marshal %+v: %v", v, err)
	}
	b := buf.Bytes()
	got, err := decode(b)
	if err != nil {
		t.Fatalf("re-encoded %s refused: %v", b, err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Fatalf("round trip: %+v, want %+v", got, v)
	}
}
