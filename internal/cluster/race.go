//go:build race

package cluster

// raceEnabled is set when the test binary runs under the race detector;
// the bookhub children are then built with -race too, so a data race that
// only real faults provoke fails the test that provoked it.
const raceEnabled = true
