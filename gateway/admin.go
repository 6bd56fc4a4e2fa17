package gateway

import (
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves the admin endpoints, for a listener of their own:
//
//	GET /healthz      200 while the process serves
//	GET /readyz       200 when the gateway takes connections, 503 with the reason otherwise
//	GET /metrics      Prometheus text format
//	/debug/pprof/     when Config.EnablePprof
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if reason := s.notReady(); reason != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(reason + "\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
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

// notReady returns why the gateway does not take connections, or "".
func (s *Server) notReady() string {
	switch {
	case s.closed.Load():
		return "closed"
	case s.draining.Load():
		return "draining"
	case !s.bus.Connected():
		return "bus disconnected"
	}
	return ""
}
