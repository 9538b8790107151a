//go:build race

package auth

// raceEnabled is set under the race detector, whose sync.Pool drops
// entries at random: allocation counts mean nothing then.
const raceEnabled = true
