//go:build !unix

package loadtest

import "errors"

// readUsage is unavailable where getrusage does not exist; the report then
// leaves the generator's cost out rather than print zeros.
func readUsage() (processUsage, error) {
	return processUsage{}, errors.New("getrusage: not supported on this platform")
}
