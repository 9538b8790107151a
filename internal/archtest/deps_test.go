// Package archtest checks bookhub's dependency directions with `go list`,
// independently of the linter, so `go test ./...` alone guards the design.
package archtest

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const module = "github.com/bookhub/bookhub"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-deps=false", "-json=ImportPath,Imports,Deps", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// TestDependencyDirections fails when a package reaches (directly or
// transitively) something its layer must not know.
func TestDependencyDirections(t *testing.T) {
	rules := []struct {
		pkg       string // package path relative to the module, prefix match
		direct    bool   // check direct imports only (the layer may reach it through another)
		forbidden []string
		allowed   string // prefix exempt from forbidden
	}{
		{pkg: "hub", forbidden: []string{"github.com/gin-gonic/gin", "gorm.io/gorm", module + "/store", module + "/rest"}},
		{pkg: "store", direct: true, forbidden: []string{"net/http", "github.com/gin-gonic/gin"}},
		{pkg: "store", forbidden: []string{module + "/rest", module + "/hub"}},
		// rest uses store's plain types; gorm stays behind them.
		{pkg: "rest", direct: true, forbidden: []string{"gorm.io/gorm"}},
		{pkg: "rest", forbidden: []string{module + "/hub"}},
		{pkg: "events", forbidden: []string{"github.com/gin-gonic/gin", "gorm.io/gorm", module + "/hub", module + "/rest", module + "/store"}},
		// auth is a leaf: tokens and passwords, no transport or storage.
		{pkg: "auth", forbidden: []string{"github.com/gin-gonic/gin", "gorm.io/gorm", "github.com/redis/go-redis/v9", module + "/"}, allowed: module + "/auth"},
		{pkg: "loadtest", forbidden: []string{module + "/"}, allowed: module + "/loadtest"},
		{pkg: "", forbidden: []string{module + "/cmd/"}},
	}
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if strings.HasPrefix(rel, "cmd/") {
			continue
		}
		for _, r := range rules {
			if r.pkg != "" && rel != r.pkg && !strings.HasPrefix(rel, r.pkg+"/") {
				continue
			}
			deps := p.Deps
			if r.direct {
				deps = p.Imports
			}
			for _, dep := range deps {
				if r.allowed != "" && strings.HasPrefix(dep, r.allowed) {
					continue
				}
				for _, bad := range r.forbidden {
					if dep == bad || strings.HasPrefix(dep, strings.TrimSuffix(bad, "/")+"/") {
						t.Errorf("%s depends on %s, which its layer must not know", p.ImportPath, dep)
					}
				}
			}
		}
	}
}
