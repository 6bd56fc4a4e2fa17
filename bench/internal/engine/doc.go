// Package engine is wsbench's client side: one worker's connections, from
// the dial and the upgrade to every server frame they read, with the
// delivery accounting of each. It speaks RFC 6455 as a client (masked
// frames out, unmasked frames in), offers permessage-deflate as Chromium
// does when Config.Deflate is set, and checks the sequence numbers of each
// connection's one channel.
//
//	e, err := engine.New(engine.Spec{Config: cfg, Index: 0, Workers: 1})
//	if err != nil {
//		return err
//	}
//	e.Start()
//	e.Ramp()              // every connection welcomed or failed
//	// ... publish x ...
//	n := e.SetExpect(x)   // deliveries the open connections should get
//	// ... until e.Progress().Delivered reaches n ...
//	totals := e.Finish(x) // closes everything
//
// # Inside
//
// Dialers goroutines take connection indices at the paced rate, dial,
// write the upgrade request from a template, read the 101 and the welcome
// with a deadline, and register the socket with a netpoll.Poller
// (one-shot read interest). After that a connection has no goroutine: it
// is a conn struct in a slice (ConnStructBytes) plus its netpoll.Desc. The
// poller callback only puts the connection's index on a channel;
// GOMAXPROCS reader goroutines read non-blocking with
// syscall.RawConn.Read into their own buffer, parse server frames (a
// partial frame is kept per connection only while incomplete; a compressed
// one is inflated with a decompressor from a sync.Pool), answer pings with
// masked pongs, record latencies in their own HDR histogram (one lock per
// read task, not per message), and re-arm.
//
// The control and upstream scenarios (upstream.go) add two things: the
// readers note when each connection reads a close frame from the server
// (control: a disconnect's arrival), and Upstream writes request ops on
// the open connections at a paced rate, under each connection's mutex,
// while the readers count the replies (as deliveries, with their latency)
// and the error frames by code.
//
// # Concurrency
//
// Start, Ramp, Churn, SetExpect, Upstream and Finish are called by one
// goroutine, one at a time, Finish last; Progress may be called from any goroutine
// until Finish. Inside, a connection's mutex serializes its reader with
// churn and finish.
package engine
