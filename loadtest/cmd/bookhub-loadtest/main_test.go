package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const secret = "0123456789abcdef0123456789abcdef-cli"

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseFlags(t *testing.T) {
	t.Run("Defaults", func(t *testing.T) {
		o, err := parseFlags(nil, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(o.cfg.Targets, ",") != "http://127.0.0.1:8080" || o.cfg.Subscribers != 100 || o.cfg.Writes != 100 ||
			o.cfg.DrainTimeout != 10*time.Second || o.timeout != 15*time.Minute || o.allowMissing || o.cfg.SourceAddrs != nil {
			t.Errorf("defaults = %+v", o)
		}
	})
	t.Run("AllFlags", func(t *testing.T) {
		o, err := parseFlags([]string{
			"-targets", "http://a:1, http://b:2", "-token", "sub-tok", "-writer-token", "w-tok",
			"-subscribers", "5000", "-writes", "200", "-rate", "50.5", "-write-concurrency", "3",
			"-source-addrs", "127.0.0.1-127.0.0.3,127.0.0.9", "-connect-concurrency", "16", "-drain", "3s",
			"-json", "r.json", "-html", "r.html", "-svg", "r.svg", "-timeout", "1m", "-allow-missing",
			"-idle", "20s", "-metrics-urls", "http://127.0.0.1:19091, http://127.0.0.1:19092", "-metrics-gc",
		}, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		c := o.cfg
		if strings.Join(c.Targets, " ") != "http://a:1 http://b:2" || c.SubscriberToken != "sub-tok" || c.WriterToken != "w-tok" ||
			c.Subscribers != 5000 || c.Writes != 200 || c.Rate != 50.5 || c.WriteConcurrency != 3 || c.ConnectConcurrency != 16 ||
			c.DrainTimeout != 3*time.Second || o.jsonPath != "r.json" || o.htmlPath != "r.html" || o.svgPath != "r.svg" ||
			o.timeout != time.Minute || !o.allowMissing || c.Idle != 20*time.Second || !c.MetricsGC || c.NoWrites ||
			strings.Join(c.MetricsURLs, " ") != "http://127.0.0.1:19091 http://127.0.0.1:19092" {
			t.Errorf("parsed %+v", o)
		}
		if got := strings.Join(c.SourceAddrs, ","); got != "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.9" {
			t.Errorf("source addrs = %s", got)
		}
	})
	t.Run("SecretFromEnvironment", func(t *testing.T) {
		o, err := parseFlags(nil, env(map[string]string{"BOOKHUB_JWT_SECRET": secret}), io.Discard)
		if err != nil || o.cfg.JWTSecret != secret {
			t.Fatalf("secret = %q, %v; want it from BOOKHUB_JWT_SECRET", o.cfg.JWTSecret, err)
		}
	})
	t.Run("FlagSecretWinsOverEnvironment", func(t *testing.T) {
		o, err := parseFlags([]string{"-jwt-secret", "flag-secret"}, env(map[string]string{"BOOKHUB_JWT_SECRET": secret}), io.Discard)
		if err != nil || o.cfg.JWTSecret != "flag-secret" {
			t.Fatalf("secret = %q, %v; want the flag's", o.cfg.JWTSecret, err)
		}
	})
	t.Run("ZeroWritesMeansNone", func(t *testing.T) {
		o, err := parseFlags([]string{"-writes", "0", "-idle", "5s"}, env(nil), io.Discard)
		if err != nil || !o.cfg.NoWrites || o.cfg.Idle != 5*time.Second {
			t.Fatalf("parsed %+v, %v; want NoWrites and a 5 s idle", o.cfg, err)
		}
	})
	t.Run("WriterTokenDefaultsToToken", func(t *testing.T) {
		o, err := parseFlags([]string{"-token", "admin-tok"}, env(nil), io.Discard)
		if err != nil || o.cfg.WriterToken != "admin-tok" {
			t.Fatalf("writer token = %q, %v", o.cfg.WriterToken, err)
		}
	})
	refusals := []struct {
		name string
		args []string
		want string
	}{
		{"BadRange", []string{"-source-addrs", "127.0.0.9-127.0.0.1"}, "downwards"},
		{"BadAddress", []string{"-source-addrs", "127.0.0.x"}, "-source-addrs"},
		{"NotANumber", []string{"-subscribers", "many"}, "invalid value"},
		{"UnknownFlag", []string{"-bogus"}, "not defined"},
		{"PositionalArgument", []string{"extra"}, "unexpected arguments"},
		{"NegativeTimeout", []string{"-timeout", "-1s"}, "negative"},
		{"MetricsGCWithoutURLs", []string{"-metrics-gc"}, "needs -metrics-urls"},
		{"BadIdle", []string{"-idle", "soon"}, "invalid value"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, env(nil), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("parseFlags(%q) error = %v, want one containing %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestRunExitStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	t.Run("UsageErrorIs2", func(t *testing.T) {
		var stderr bytes.Buffer
		if code := run(ctx, []string{"-subscribers", "-3"}, env(nil), io.Discard, &stderr); code != exitUsage {
			t.Fatalf("exit = %d, want %d; stderr %s", code, exitUsage, stderr.String())
		}
	})
	t.Run("NoSecretIs2", func(t *testing.T) {
		if code := run(ctx, nil, env(nil), io.Discard, io.Discard); code != exitUsage {
			t.Fatalf("exit = %d, want %d", code, exitUsage)
		}
	})
	t.Run("UnreachableTargetIs1AndWritesReports", func(t *testing.T) {
		dir := t.TempDir()
		// Reports may name a folder that does not exist yet.
		jsonPath, htmlPath, svgPath := filepath.Join(dir, "out", "r.json"), filepath.Join(dir, "r.html"), filepath.Join(dir, "r.svg")
		var stdout, stderr bytes.Buffer
		// Port 1 on loopback refuses connections at once.
		code := run(ctx, []string{"-targets", "http://127.0.0.1:1", "-subscribers", "3", "-writes", "2",
			"-drain", "100ms", "-json", jsonPath, "-html", htmlPath, "-svg", svgPath, "-allow-missing"},
			env(map[string]string{"BOOKHUB_JWT_SECRET": secret}), &stdout, &stderr)
		if code != exitFailed {
			t.Fatalf("exit = %d, want %d (failed connections are not relaxed by -allow-missing)\n%s", code, exitFailed, stdout.String())
		}
		if !strings.Contains(stdout.String(), "failed 3") {
			t.Errorf("summary lacks the 3 failed connections:\n%s", stdout.String())
		}
		if !strings.Contains(stderr.String(), "connected 0/3") {
			t.Errorf("no live progress on stderr: %q", stderr.String())
		}
		data, err := os.ReadFile(jsonPath)
		if err != nil {
			t.Fatal(err)
		}
		var rep struct {
			Connections struct{ Failed int } `json:"connections"`
		}
		if err := json.Unmarshal(data, &rep); err != nil || rep.Connections.Failed != 3 {
			t.Errorf("JSON report = %s, %v; want 3 failed connections", data, err)
		}
		for _, p := range []string{htmlPath, svgPath} {
			if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
				t.Errorf("report %s not written: %v", p, err)
			}
		}
	})
}

func TestCompareCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldPath := write("old.json", `{"run_id":"r-old","connections":{"established":10,"establish_s":2},"latency":{"count":5,"p99_ms":100},
		"cost":{"server":{"metrics_urls":["m"],"write_frames":1000,"cpu_s_per_1000_deliveries":0.02}}}`)
	newPath := write("new.json", `{"run_id":"r-new","connections":{"established":10,"establish_s":1},"latency":{"count":5,"p99_ms":80},
		"cost":{"server":{"metrics_urls":["m"],"write_frames":1000,"cpu_s_per_1000_deliveries":0.01}}}`)
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run(ctx, []string{"compare", oldPath, newPath}, env(nil), &stdout, &stderr); code != exitOK {
			t.Fatalf("exit = %d; stderr %s", code, stderr.String())
		}
		for _, want := range []string{"r-old", "r-new", "connect time (s)", "-50.0%", "latency p99 (ms)", "-20.0%",
			"server CPU-s per 1,000 deliveries"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, stdout.String())
			}
		}
	})
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"OneFile", []string{"compare", oldPath}, "usage"},
		{"ThreeFiles", []string{"compare", oldPath, newPath, newPath}, "usage"},
		{"MissingFile", []string{"compare", oldPath, filepath.Join(dir, "nope.json")}, "open report"},
		{"NotAReport", []string{"compare", oldPath, write("bad.json", "not json")}, "bad.json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(ctx, tt.args, env(nil), io.Discard, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("exit = %d, stderr %q; want %d and %q", code, stderr.String(), exitUsage, tt.want)
			}
		})
	}
}
