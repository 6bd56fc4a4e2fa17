// Package control is wsgate's control plane: what services ask of the
// gateways besides delivering notifications, over NATS request/reply, so
// that it works the same for one gateway or a hundred. The gateways keep no
// shared state: a request goes to every gateway at once and the caller
// gathers the answers.
//
//	presence     is user 42 online, on how many sockets, on which gateways;
//	             how many sockets joined topic.team-7; fleet totals
//	disconnect   close every socket of a user (or one by id), with a
//	             reason that tells the client whether to reconnect; a
//	             revocation also refuses the user's current tokens
//	subscribe    add or remove a topic for every socket of a user
//	stats        each gateway's connections, users and topics
//	upstream     what clients send up, published by the gateway on
//	             "<prefix>.up.<channel>" with the user, connection and
//	             gateway stamped in headers
//
// A service uses a Client:
//
//	nc, _ := bus.Dial("nats://nats-1:4222", "accounts")
//	c := control.NewClient(nc, "")
//	p, err := c.Presence(ctx, control.PresenceQuery{User: "42"})
//	fmt.Println(p.Online, p.Sockets, len(p.Gateways))
//	_, err = c.Disconnect(ctx, control.Disconnect{User: "42", Reason: control.ReasonRevoked})
//
// A gateway serves the requests with Serve, keeps the denylist with
// OpenDenylist, and forwards upstream messages with an Upstream:
//
//	deny, _ := control.OpenDenylist(ctx, nc, control.DenylistConfig{Manage: true})
//	resp, _ := control.Serve(nc, srv, control.ServeConfig{Denylist: deny})
//	up, _ := control.NewUpstream(nc, "", srv.ID())
//	defer up.Close(); defer resp.Close(); defer deny.Close()
//
// # The denylist
//
// Revocations live in a JetStream KV bucket (NOTIFY_REVOKED), one key per
// user ("user.<id>") and per token id ("token.<jti>", or "token.=<sha256
// hex>" for a jti with other characters than [A-Za-z0-9_-]), each stored
// with a per-message TTL that ends at its Until. Client.Revoke writes them
// (merging with what is stored: the later Before, the later Until); every
// gateway's Denylist watches the bucket and answers Revoked from memory.
// A Disconnect with ReasonRevoked carries its revocation too, so the
// gateways apply it even before their watch delivers it, and even when it
// could not be stored (ErrNoDenylist).
//
// # Concurrency
//
// Client, Responder, Denylist and Upstream are safe for concurrent use.
// A Client's fields must be set before its first request.
//
// Responder calls its Gateway from the NATS subscription's goroutine, one
// request at a time per subject.
//
// OpenDenylist starts one goroutine, the watcher, which Close ends; Revoked
// takes a read lock only, and Add a write lock.
//
// Upstream calls a request's done from the reply subscription's goroutine
// or from the request's timer, or, for the requests still pending, from
// Close before it returns; never from within Request, so that a gateway may
// call Request holding a lock done takes.
package control
