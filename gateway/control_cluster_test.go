package gateway

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/control"
	"github.com/wsgate/wsgate/internal/natstest"
	"github.com/wsgate/wsgate/internal/wstest"
)

// TestControlCluster runs three gateways, each on its own node of a
// three-node NATS cluster, with the control plane as cmd/wsgate wires it,
// and asks the fleet from a fourth connection: presence is answered by all
// three, a server-side subscribe reaches the sockets on every gateway, a
// revocation closes them everywhere and refuses the token on every
// gateway afterwards, and an upstream request through one gateway is
// answered by a service on another node.
func TestControlCluster(t *testing.T) {
	srvs := natstest.Cluster(t, 3)
	ctx := t.Context()
	envs := make([]*env, len(srvs))
	for i, srv := range srvs {
		id := fmt.Sprint("g", i)
		var deny *control.Denylist
		envs[i] = newEnvBus(t, bus.Config{URL: srv.ClientURL()}, withUpstream(t, id, func(c *Config) {
			var err error
			deny, err = control.OpenDenylist(ctx, c.Bus.(*bus.Bus).Conn(), control.DenylistConfig{Manage: true, Replicas: 3})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { deny.Close() })
			c.Revocations = deny
		}))
		r, err := control.Serve(envs[i].bus.Conn(), envs[i].srv, control.ServeConfig{Denylist: deny})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
	}
	service, err := nats.Connect(srvs[2].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(service.Close)
	ask := control.NewClient(service, "")
	ask.Expect = len(envs)

	iat := time.Now().Add(-time.Minute)
	old := signed(t, "kim", func(c *jwtClaims) {
		c.IssuedAt = jwt.NewNumericDate(iat)
		c.Upstream = []string{"rpc.>"}
	})
	socks := make([]*client, len(envs))
	for i, e := range envs {
		socks[i] = e.connectToken("kim", old)
	}

	p, err := ask.Presence(ctx, control.PresenceQuery{User: "kim"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Gateways) != 3 || !p.Online || p.Sockets != 3 || p.Connections != 3 || p.Users != 3 {
		t.Fatalf("presence = %+v, want kim's 3 sockets on 3 gateways", p)
	}

	n, err := ask.Subscribe(ctx, control.Subscription{User: "kim", Topic: "topic.team"})
	if err != nil || n.Sockets != 3 || len(n.Gateways) != 3 {
		t.Fatalf("subscribe = %+v, %v; want 3 sockets on 3 gateways", n, err)
	}
	for _, c := range socks {
		if m := c.next(); m["type"] != "subscribed" || m["channel"] != "topic.team" || m["server"] != true {
			t.Fatalf("got %v, want the server's subscribed frame", m)
		}
	}
	if err := envs[0].pub.Topic("team", []byte(`"to the team"`)); err != nil {
		t.Fatal(err)
	}
	for i, c := range socks {
		if m := c.next(); m["channel"] != "topic.team" || m["data"] != "to the team" {
			t.Fatalf("socket on g%d got %v, want the topic's message", i, m)
		}
	}
	if p, err := ask.Presence(ctx, control.PresenceQuery{Topic: "topic.team"}); err != nil || p.Subscribers != 3 {
		t.Fatalf("presence of topic.team = %+v, %v; want 3 subscribers", p, err)
	}

	respond(t, service, "notify.up.rpc.echo", nil)
	socks[0].send(map[string]any{"op": "request", "channel": "rpc.echo", "data": "hi", "ref": 1})
	if m := socks[0].next(); m["type"] != "reply" || m["data"].(map[string]any)["gateway"] != "g0" || m["data"].(map[string]any)["user"] != "kim" {
		t.Fatalf("request through g0: %v, want the service's reply with g0's stamp", m)
	}

	revokedAt := time.Now()
	n, err = ask.Disconnect(ctx, control.Disconnect{User: "kim", Reason: control.ReasonRevoked})
	if err != nil || n.Sockets != 3 {
		t.Fatalf("disconnect = %+v, %v; want 3 sockets", n, err)
	}
	for i, c := range socks {
		if code := c.closeCode(); code != StatusRevoked {
			t.Errorf("socket on g%d closed with %d, want %d", i, code, StatusRevoked)
		}
	}
	for i, e := range envs {
		_, err := e.dialURL(e.url+"?token="+old, nil)
		if err == nil || rejectedStatus(t, err) != http.StatusUnauthorized {
			t.Errorf("g%d: the revoked token: %v, want 401", i, err)
		}
	}
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		for i, e := range envs {
			if v := gaugeValue(t, e, "wsgate_revocations"); v != 1 {
				return fmt.Errorf("g%d: wsgate_revocations = %v, want 1", i, v)
			}
		}
		return nil
	})
	fresh := signed(t, "kim", func(c *jwtClaims) { c.IssuedAt = jwt.NewNumericDate(revokedAt.Add(2 * time.Second)) })
	for _, e := range envs {
		e.connectToken("kim", fresh).Conn.Close()
	}

	// A gateway that starts after the revocation reads it from the bucket.
	late, err := control.OpenDenylist(ctx, service, control.DenylistConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		if !late.Revoked("kim", "", iat) {
			return fmt.Errorf("a new denylist does not hold kim's revocation")
		}
		return nil
	})
	if s, err := ask.Stats(context.Background()); err != nil || len(s.Gateways) != 3 {
		t.Fatalf("stats = %+v, %v; want 3 gateways", s, err)
	}
}

// gaugeValue reads the gauge name from e's metrics registry, failing when it
// is not registered.
func gaugeValue(t testing.TB, e *env, name string) float64 {
	t.Helper()
	families, err := e.srv.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
