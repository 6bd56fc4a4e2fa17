package httpapi

import "testing"

// BenchmarkDecode measures the decoders on typical bodies.
func BenchmarkDecode(b *testing.B) {
	cases := []struct {
		name string
		body []byte
		dec  func([]byte) error
	}{
		{"publish", []byte(`{"channel":"user.42","data":{"new_mail":1,"from":"ann@example.com"}}`),
			func(b []byte) error { _, err := decodePublish(b); return err }},
		{"publish_durable", []byte(`{"channel":"topic.news","data":{"title":"x"},"durable":true,"id":"news-17","ttl":"10m"}`),
			func(b []byte) error { _, err := decodePublish(b); return err }},
		{"disconnect", []byte(`{"user":"42","reason":"logout"}`),
			func(b []byte) error { _, err := decodeDisconnect(b); return err }},
		{"subscription", []byte(`{"user":"42","topic":"topic.team-7"}`),
			func(b []byte) error { _, err := decodeSubscription(b); return err }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.dec(c.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
