// Package soak holds bookhub's soak test (soak_test.go): three instances
// behind a real nginx, a crowd of WebSocket subscribers connected through
// it that reconnect and resume whenever their socket drops or their stream
// says it is incomplete, REST writes spread over nginx and every instance,
// and faults during the run: Redis killed and restarted twice, one instance
// SIGKILLed and restarted. At the end every subscriber must hold every
// committed event exactly once, in offset order. It prints one summary
// line.
//
//	make soak         # 1,000 subscribers, 10,000 writes
//	make soak-short   # 100 subscribers, 1,000 writes (CI)
//
// The test is skipped unless BOOKHUB_SOAK=1, so `go test ./...` does not
// run it; flags (-soak.subscribers, -soak.writes, -soak.rate, ...) size it.
package soak
