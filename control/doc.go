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
// OpenDenylist, and forwards upstream messages with an Upstream.
//
// # Concurrency
//
// Client, Responder, Denylist and Upstream are safe for concurrent use.
// Responder calls its Gateway from the NATS subscription's goroutine, one
// request at a time per subject.
package control
