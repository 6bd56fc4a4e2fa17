// Package bus is the gateway's link to NATS: it connects to a NATS server
// (or starts one embedded in the process), subscribes to the channels of the
// users and topics the gateway holds, hands their messages to one Handler,
// and offers the Publisher API that storage and app services use.
//
// # Subjects
//
// Channel X is NATS subject "<prefix>.X", prefix "notify" by default:
//
//	notify.user.42       every socket of user 42
//	notify.topic.sports  the sockets subscribed to topic "sports"
//	notify.broadcast     every socket
//
// Channel names follow internal/channel: dot-separated tokens of
// [A-Za-z0-9_-], at most 128 bytes, never a wildcard. The message body is
// the payload, passed through untouched.
//
// # Usage
//
//	b, err := bus.New(bus.Config{
//		URL:    "nats://nats-1:4222,nats://nats-2:4222", // "" starts an embedded server
//		Logger: logger.Named("bus"),
//	})
//	...
//	b.Start(hub.Deliver) // func(channel string, payload []byte, pos bus.Position), once the receiver exists
//	...
//	if err := b.Interest("user.42"); err != nil { ... } // first socket of user 42
//	...
//	b.DropInterest("user.42") // its last socket is gone
//	...
//	b.Close()
//
// A service publishes with
//
//	nc, err := bus.Dial("nats://nats-1:4222", "mail-storage")
//	p := bus.NewPublisher(nc, "")
//	err = p.User("42", []byte(`{"new_mail":1}`))
//
// # A secured NATS
//
// Config.Connect and DialWith take ConnectOptions: a credentials file, an
// nkey seed file, a user and password or a token, and TLS files (a CA, a
// client certificate and key):
//
//	b, err := bus.New(bus.Config{
//		URL:     "tls://nats-1:4222,tls://nats-2:4222",
//		Connect: bus.ConnectOptions{CredsFile: "/run/secrets/wsgate.creds", TLSCA: "/etc/nats/ca.pem"},
//	})
//
// New and DialWith fail at once when the server refuses the credentials or
// the certificate; the embedded server takes none of them. Log lines and
// errors never hold a secret: URLs go through RedactURL.
//
// # Durable notifications
//
// A durable notification is stored in a JetStream stream before anyone
// receives it. It is published on "durable.<prefix>.X" (durable.notify.user.42);
// one stream, NOTIFY by default, captures "durable.<prefix>.>" and, once a
// message is stored, republishes it on "<prefix>.X", the subject the
// gateways already subscribe to, so connected sockets receive it exactly
// like a volatile one:
//
//	b, err := bus.New(bus.Config{StoreDir: "/var/lib/wsgate/nats"}) // JetStream in the embedded server
//	info, err := bus.ApplyStream(ctx, b.Conn(), bus.StreamConfig{}) // create or update NOTIFY
//	...
//	st, err := p.DurableUser(ctx, "42", payload, bus.WithMsgID("order-7-shipped"))
//	// st.Sequence: where the stream stored it; st.Duplicate: a retry of an id already stored
//
// The stream republishes each message with the headers Nats-Sequence and
// Nats-Last-Sequence (the previous sequence on the same subject); the bus
// hands them to the Handler as a Position, with the stream's epoch (its
// creation time) once TrackStream has looked the stream up:
//
//	_, err = b.TrackStream(ctx, "") // now and after every reconnect; Epoch() is 0 until it succeeds
//
// A volatile message, or one whose headers make no position, gets the
// zero Position.
//
// A durable publish waits for the stream's ack and fails, never silently
// falls back to a volatile publish, when JetStream or the stream is missing
// (ErrJetStreamUnavailable, ErrNoStream).
//
// # History: resumes and acks
//
// A gateway serves resumes by reading the stream, never with a consumer:
// Bus.History returns a History whose Last asks for the last sequence of
// up to MaxLastBatch channels in one direct-get request, whose Read pages
// through one channel's notifications from a sequence on, and whose Marks
// and PutMark read and write the acked watermark of a user on a channel in
// the KV bucket that ApplyAckBucket creates (NOTIFY_ACKS by default).
// Every call is one request (Last and Marks, rarely, two), so the gateway
// batches and paces them itself.
//
// # Concurrency
//
// Every method of Bus and Publisher may be called from any goroutine.
// Interest and DropInterest are meant to be called by the goroutine that
// registers or closes a connection; they lock one of 64 shards of the
// channel map, and Interest then waits (outside any lock) for the server to
// confirm a new subscription. The Handler given to Start is called
// concurrently from Config.Dispatchers goroutines, never for the same message twice, in no
// particular order across channels; its payload is valid only until it
// returns. Close may race with anything: calls made after it fail with
// ErrClosed (Interest) or do nothing (DropInterest).
//
// The bus starts Dispatchers+3 goroutines (the flusher that confirms
// subscriptions, the subscription connection's reader and writer in New,
// the dispatchers in Start), one more while it looks up the tracked
// stream's epoch in the background (TrackStream), and nats.go starts three
// for its connection; the count does not grow with the number of
// subscriptions. Close ends them all.
//
// # Two connections, and why the subscriptions have their own
//
// The bus holds two connections to the same NATS servers, with the same
// credentials: nats.go's (Conn), for publishing, JetStream and the
// control plane, and a connection of the bus's own that carries only the
// subscriptions Interest makes and the messages they bring. A gateway
// subscribes once per connected user, so what a subscription costs is
// paid per connection: nats.go keeps a 240-byte Subscription and a map
// entry for each (about 300 bytes with the subject), while the bus's own
// connection keeps nothing beyond the bus's map slot (channel name, sid,
// interest count: 73 bytes, TestMemoryPerSubscription). It routes a
// message by its subject, which names the channel, so it needs no table
// from sid to subscription. It speaks the client protocol's subscribing
// half (INFO, CONNECT, SUB, UNSUB, PING/PONG, MSG, HMSG), authenticates
// as nats.go does with the same options, reconnects forever with the
// same pause and jitter, learns the cluster's servers from INFO, and
// sends every SUB again on each new connection before a confirmation can
// pass.
//
// # Why shared queues
//
// Every message is handed to one of a few dispatcher goroutines through a
// shared queue chosen by the hash of its channel, so one channel's
// messages keep their order and the number of goroutines does not grow
// with the number of subscriptions (nats.go's Subscribe with a callback
// starts one per subscription: 20,000 users would cost 20,000 goroutines,
// measured). The queues' capacity (QueueLen) is the bound: when one is
// full the message is dropped and counted (Dropped).
//
// The alternative, a few wildcard subscriptions ("notify.user.>") filtered
// locally, is cheaper in subscriptions but makes NATS send every gateway the
// messages of every user, including the ones it does not hold: with N
// gateways, N times the traffic and the decoding work, most of it thrown
// away. Interest-based routing lets the NATS server's subject index do the
// filtering, so each gateway receives only what its users need.
//
// # Confirming subscriptions
//
// A NATS SUB is fire-and-forget; the server has it once it answers a later
// PING on the same connection. Interest must not return before that, or a message published right
// after the welcome frame could be missed. Concurrent Interest calls share
// one PING/PONG: a single flusher goroutine takes every waiter queued so far,
// makes one round trip, and wakes them all, so a thousand sockets arriving
// at once cost a handful of round trips, not a thousand.
package bus
