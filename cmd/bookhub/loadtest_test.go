package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/loadtest"
)

// TestLoadGeneratorAgainstCluster is the load generator's CI run: two
// instances on real MySQL and Redis, 500 subscribers spread over both and
// over several loopback source addresses, 200 writes. Any missing or
// duplicated delivery fails the build.
func TestLoadGeneratorAgainstCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("load run skipped in -short mode")
	}
	apps := startCluster(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress strings.Builder
	report, err := loadtest.Run(ctx, loadtest.Config{
		Targets:          []string{"http://" + apps[0].Addr(), "http://" + apps[1].Addr()},
		JWTSecret:        testSecret,
		Subscribers:      500,
		Writes:           200,
		Rate:             100,
		WriteConcurrency: 4,
		SourceAddrs:      []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"},
		DrainTimeout:     20 * time.Second,
		Progress:         &progress,
	})
	if err != nil {
		t.Fatalf("load run: %v", err)
	}
	var summary strings.Builder
	if err := report.WriteSummary(&summary); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + summary.String())
	if dir := os.Getenv("BOOKHUB_LOADTEST_OUT"); dir != "" {
		writeReports(t, report, dir)
	}
	if !report.OK() {
		t.Fatalf("load run not clean: %v", report.Problems())
	}
}

func writeReports(t *testing.T, r *loadtest.Report, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, write := range map[string]func(*os.File) error{
		"ci-report.json": func(f *os.File) error { return r.WriteJSON(f) },
		"ci-report.html": func(f *os.File) error { return r.WriteHTML(f) },
	} {
		f, err := os.Create(dir + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := write(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}
