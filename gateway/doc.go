// Package gateway is wsgate's WebSocket server: it accepts TCP connections,
// upgrades them without net/http, authenticates them, keeps them in a
// sharded hub with no goroutine and no buffer of their own, and delivers
// bus notifications to them.
//
// Usage (Example runs it, with a client):
//
//	b, _ := bus.New(bus.Config{})
//	s, _ := gateway.New(gateway.Config{Bus: b, Auth: auth, Logger: log})
//	b.Start(s.Deliver)
//	go s.Serve(ln)
//	http.Serve(adminLn, s.AdminHandler())
//	...
//	s.Shutdown(ctx) // 1001 to every client, then Close
//
// Every Config field has a default (the DefaultX constants); the zero
// Config with a Bus and an Authenticator is a working gateway.
//
// # Concurrency
//
// Serve runs the accept loop of one listener; several listeners may be
// served at once. Upgrades, reads, write flushes and fan-out chunks run as
// tasks on one bounded gopool.Pool; the netpoll callbacks only schedule
// them. A connection has at most one read task at a time (one-shot
// readiness). Writes to a connection come from any goroutine and are
// ordered by Conn.wmu. Deliver may be called from many goroutines; one
// caller's notifications for a channel reach each recipient in order.
//
// Lock order: Conn.wmu, then hub shard locks. Nothing writes to a socket or
// blocks while holding a shard lock.
//
// Every goroutine the server starts (the sweeper, the pool workers, the
// poller) ends in Close; Serve returns ErrServerClosed.
package gateway
