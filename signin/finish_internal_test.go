package signin

import (
	"encoding/json"
	"testing"
)

// Some providers send email_verified as a string; only "true" counts.
func TestTruthy(t *testing.T) {
	cases := map[string]bool{
		`true`: true, `"true"`: true, ` true `: true,
		`false`: false, `"false"`: false, `1`: false, `"yes"`: false, `null`: false, ``: false,
	}
	for raw, want := range cases {
		if got := truthy(json.RawMessage(raw)); got != want {
			t.Errorf("truthy(%q) = %v, want %v", raw, got, want)
		}
	}
}
