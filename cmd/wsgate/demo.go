package main

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
)

// demoFiles are the demo page and the JavaScript client's bundle. The
// bundle is a copy of clients/js/dist/wsgate.min.js (and its source map)
// committed with the page, so that a fresh clone's `make run` serves it
// without Node or npm; `make js-bundle` refreshes it, and TestDemoBundle
// fails while it differs from what the client's sources build.
//
//go:embed demo
var demoFiles embed.FS

// demoConfig is what the demo page learns from /demo/config.json: where the
// gateway's WebSocket endpoint is, how to publish to it from a shell, and
// where the HTTP API is.
type demoConfig struct {
	// WS is the endpoint without a query, "ws://127.0.0.1:8080/ws"; the
	// page adds ?user=.
	WS string `json:"ws"`
	// Publish is the publish command without its target and payload,
	// "./wsgate publish" with --nats-url and --subject-prefix when they
	// differ from its defaults, as the try: line prints it.
	Publish string `json:"publish"`
	// API is the path of the HTTP API on the page's own origin, the admin
	// listener: "/api/v1/". In development mode it takes calls without a
	// key, so the page's form publishes with a plain fetch.
	API string `json:"api"`
}

// withDemo serves the demo page at /demo/ beside admin's endpoints. The
// page connects with ?user=, which only development mode (--auth=none)
// trusts, so serve mounts it in that mode only: under JWT it would be a
// page that cannot connect, and /demo/ answers 404 like any unknown path.
func withDemo(admin http.Handler, cfg demoConfig) http.Handler {
	page, err := fs.Sub(demoFiles, "demo")
	if err != nil {
		panic(err) // the embed pattern names the directory: it is there
	}
	conf, err := json.Marshal(cfg)
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /demo/config.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(conf)
	})
	mux.Handle("GET /demo/", http.StripPrefix("/demo/", http.FileServerFS(page)))
	mux.Handle("/", admin)
	return mux
}
