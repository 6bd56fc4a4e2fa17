package gateway

import (
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves the admin endpoints, for a listener of their own:
//
//	GET /healthz      200 while the process works; 503 with the reason when it is wedged
//	GET /readyz       200 when the gateway takes new clients; 503 with the reason otherwise;
//	                  with durable notifications, a second line says JetStream's state
//	                  (which never makes the gateway unready)
//	GET /metrics      Prometheus text format
//	/debug/pprof/     when Config.EnablePprof
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", check(s.unhealthy, "ok\n", nil))
	mux.HandleFunc("GET /readyz", check(s.notReady, "ready\n", s.durableState))
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	if s.cfg.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// check answers 200 with ok while failing returns "", and 503 with its
// reason otherwise. Both are plain text, one line, followed by the line
// detail returns when it is not nil and returns one.
func check(failing func() string, ok string, detail func() string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		body := ok
		if reason := failing(); reason != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			body = reason + "\n"
		}
		if detail != nil {
			if line := detail(); line != "" {
				body += line + "\n"
			}
		}
		w.Write([]byte(body))
	}
}
