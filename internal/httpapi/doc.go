// Package httpapi is wsgate's HTTP API for services that do not speak NATS:
// publish a notification, ask who is online, disconnect a user, add or
// remove a topic for a user's sockets, read the fleet's stats. It is a thin
// layer over a *bus.Publisher and a *control.Client: every call is one
// publish or one scatter-gather request to the fleet, so any gateway's API
// answers for the whole fleet.
//
//	POST /api/v1/publish      {"channel":"user.42","data":{...},"durable":false}
//	GET  /api/v1/presence     ?user=42 | ?topic=topic.news | (fleet totals)
//	POST /api/v1/disconnect   {"user":"42","reason":"logout"}
//	POST /api/v1/subscribe    {"user":"42","topic":"topic.team-7"}
//	POST /api/v1/unsubscribe  {"user":"42","topic":"topic.team-7"}
//	GET  /api/v1/stats
//
// docs/api.yaml describes every route, its answers and its errors.
//
// # Usage
//
//	keys, err := httpapi.LoadKeys(os.Getenv("WSGATE_API_KEYS"), "/etc/wsgate/api-keys")
//	h, err := httpapi.New(httpapi.Config{
//		Keys:      keys,
//		Publisher: bus.NewPublisher(nc, ""),
//		Control:   control.NewClient(nc, ""),
//		Logger:    logger.Named("api"),
//	})
//	adminMux.Handle("/api/", h) // no StripPrefix: h matches the full path
//
// Callers authenticate with "Authorization: Bearer <key>" or
// "X-API-Key: <key>". Every key in Config.Keys is accepted; there are no
// scopes. Keys are compared as SHA-256 digests in constant time and never
// logged.
//
// # Concurrency
//
// The handler is safe for concurrent use and keeps no state between
// requests besides its Config. Each request runs under a context that ends
// after Config.Timeout; the handler starts no goroutines of its own.
package httpapi
