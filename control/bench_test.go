package control

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/natstest"
)

// BenchmarkDenylistRevoked is the check every upgrade makes, against a
// denylist of 10,000 users and 10,000 token ids.
func BenchmarkDenylistRevoked(b *testing.B) {
	d := NewDenylist()
	until := time.Now().Add(time.Hour)
	for i := range 10000 {
		d.Add(Revocation{User: fmt.Sprintf("u%d", i), Before: until, Until: until})
		d.Add(Revocation{TokenID: fmt.Sprintf("jti-%d", i), Until: until})
	}
	issued := time.Now()
	for _, bb := range []struct {
		name          string
		user, tokenID string
		want          bool
	}{
		{"hit", "u5000", "jti-none", true},
		{"token", "nobody", "jti-5000", true},
		{"miss", "nobody", "jti-none", false},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d.Revoked(bb.user, bb.tokenID, issued) != bb.want {
					b.Fatal("wrong answer")
				}
			}
		})
	}
}

// BenchmarkPresence3 is one presence request gathered from three gateways
// on one embedded NATS server, with Expect 3 so that it ends with the
// third answer.
func BenchmarkPresence3(b *testing.B) {
	srv := natstest.Run(b, false)
	for _, g := range fleet() {
		serve(b, srv, g, ServeConfig{})
	}
	c := NewClient(dial(b, srv), "")
	c.Expect = 3
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := c.Presence(ctx, PresenceQuery{User: "42"})
		if err != nil || len(p.Gateways) != 3 {
			b.Fatalf("Presence = %+v, %v", p, err)
		}
	}
}
