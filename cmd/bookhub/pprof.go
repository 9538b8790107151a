package main

import (
	"net/http"
	"net/http/pprof"
)

// mountPprof serves Go's profiler under /debug/pprof/ on the metrics
// listener, and only there: a profile reveals memory contents and costs
// seconds of CPU, so it must never be reachable on the public port. The
// handlers are mounted explicitly on mux (not through net/http/pprof's
// registration on http.DefaultServeMux, which bookhub never serves).
//
//	go tool pprof http://127.0.0.1:9090/debug/pprof/profile?seconds=30
//	go tool pprof http://127.0.0.1:9090/debug/pprof/heap
func mountPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index) // heap, goroutine, allocs, block, mutex, ...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
