package deploy_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestChecksCatchMistakes breaks a freshly loaded kit in one way per case and
// expects the named check to report it, so a check that silently passes
// everything cannot go unnoticed.
func TestChecksCatchMistakes(t *testing.T) {
	env := func(svc, key, value string) func(*testing.T, *kit) {
		return func(t *testing.T, k *kit) {
			t.Helper()
			if value == "" {
				delete(k.compose.Services[svc].Environment, key)
			} else {
				k.compose.Services[svc].Environment[key] = value
			}
		}
	}
	tests := []struct {
		name   string
		check  string
		mutate func(*testing.T, *kit)
		want   string
	}{
		{"ErrMissingService", "compose/services exist", func(_ *testing.T, k *kit) { delete(k.compose.Services, "redis") }, `no service "redis"`},
		{"ErrMissingHealthcheck", "compose/health checks", func(_ *testing.T, k *kit) { k.compose.Services["redis"].Healthcheck = nil }, "redis has no healthcheck"},
		{"ErrShellHealthcheckOnBookhub", "compose/health checks", func(_ *testing.T, k *kit) {
			k.compose.Services["bookhub-2"].Healthcheck.Test = []string{"CMD-SHELL", "curl -f http://127.0.0.1:8080/readyz"}
		}, "exec form"},
		{"ErrDependsOnStarted", "compose/bookhub waits for healthy mysql and redis", func(_ *testing.T, k *kit) {
			k.compose.Services["bookhub-1"].DependsOn["mysql"] = "service_started"
		}, "want service_healthy"},
		{"ErrUnknownEnv", "compose/bookhub env names are known to config", env("bookhub-3", "BOOKHUB_DB_URL", "x"), "BOOKHUB_DB_URL, which bookhub does not read"},
		{"ErrDuplicateInstance", "compose/bookhub env is complete and consistent", env("bookhub-2", "BOOKHUB_INSTANCE", "bookhub-1"), "must be distinct"},
		{"ErrMissingRequired", "compose/bookhub env is complete and consistent", env("bookhub-1", "BOOKHUB_REDIS_URL", ""), "does not set BOOKHUB_REDIS_URL"},
		{"ErrShortSecret", "compose/bookhub env is complete and consistent", env("bookhub-1", "BOOKHUB_JWT_SECRET", "${BOOKHUB_JWT_SECRET:-dev-only-short}"), "at least 32"},
		{"ErrSecretNotOverridable", "compose/bookhub env is complete and consistent", env("bookhub-1", "BOOKHUB_JWT_SECRET", "dev-only-0123456789012345678901234567890123"), "must come from"},
		{"ErrSQLiteURL", "compose/bookhub env is complete and consistent", env("bookhub-1", "BOOKHUB_DATABASE_URL", "sqlite:///data/bookhub.db"), "want mysql://"},
		{"ErrBadMySQLURL", "compose/bookhub env is complete and consistent", env("bookhub-1", "BOOKHUB_DATABASE_URL", "mysql://bookhub@mysql:3306/"), "does not parse"},
		{"ErrReplicasDisagree", "compose/bookhub env is complete and consistent", env("bookhub-2", "BOOKHUB_REDIS_URL", "redis://redis:6379/1"), "BOOKHUB_REDIS_URL differs between"},
		{"ErrMetricsOff", "compose/bookhub env is complete and consistent", env("bookhub-2", "BOOKHUB_METRICS_ADDR", ""), "Prometheus could not scrape"},
		{"ErrScaledServiceWithInstance", "compose/bookhub env is complete and consistent", env("bookhub-extra", "BOOKHUB_INSTANCE", "extra"), "leave BOOKHUB_INSTANCE unset"},
		{"ErrMySQLPasswordMismatch", "compose/mysql matches the database url", env("mysql", "MYSQL_PASSWORD", "other"), "differs from mysql's MYSQL_PASSWORD"},
		{"ErrMySQLNoVolume", "compose/mysql matches the database url", func(_ *testing.T, k *kit) { k.compose.Services["mysql"].Volumes = nil }, "no named volume"},
		{"ErrLBPort", "compose/lb publishes 8080 with deploy/nginx.conf", func(_ *testing.T, k *kit) { k.compose.Services["lb"].Ports = []string{"8081:8080"} }, "want host port 8080"},
		{"ErrMissingBindMount", "compose/bind mounts exist", func(_ *testing.T, k *kit) {
			k.compose.Services["grafana"].Volumes = append(k.compose.Services["grafana"].Volumes, "./deploy/nope:/x:ro")
		}, "./deploy/nope, which does not exist"},
		{"ErrK6NotInProfile", "compose/k6 runs the scripts in profile loadtest", func(_ *testing.T, k *kit) { k.compose.Services["k6"].Profiles = nil }, `want "loadtest"`},
		{"ErrK6BypassesLB", "compose/k6 runs the scripts in profile loadtest", env("k6", "BASE_URL", "http://bookhub-1:8080"), "through the balancer"},
		{"ErrHandEditedNginxConf", "nginx/deploy/nginx.conf is the template rendered for compose", nginx("proxy_read_timeout 120s;", "proxy_read_timeout 600s;"), "make nginx-conf"},
		{"ErrNginxConfTruncated", "nginx/deploy/nginx.conf is the template rendered for compose", nginx("        keepalive_timeout 60s;\n    }", "    }"), `renders "        keepalive_timeout 60s;" there`},
		{"ErrUpstreamMissesReplica", "nginx/upstream lists every replica on the published port", nginx("server bookhub-2:8080 resolve max_fails=3 fail_timeout=10s;", ""), `no "server bookhub-2:8080"`},
		{"ErrUpstreamNotInCompose", "nginx/upstream lists every replica on the published port", nginx("server bookhub-3:8080 resolve", "server bookhub-4:8080 resolve"), "bookhub-4:8080 is not a compose service"},
		{"ErrNoUpstreamKeepalive", "nginx/upstream lists every replica on the published port", nginx("keepalive 64;", ""), "no keepalive"},
		{"ErrListenNotPublished", "nginx/upstream lists every replica on the published port", nginx("listen 8080;", "listen 80;"), "want 8080"},
		{"ErrReadTimeoutAtPingInterval", "nginx/idle sockets outlive the ping interval", nginx("proxy_read_timeout 120s;", "proxy_read_timeout 30s;"), "must exceed"},
		{"ErrReadTimeoutDefault", "nginx/idle sockets outlive the ping interval", nginx("proxy_read_timeout 120s;", ""), "proxy_read_timeout unset"},
		{"ErrPrometheusMissesReplica", "prometheus/scrapes every replica", func(_ *testing.T, k *kit) {
			k.prometheus.ScrapeConfigs[0].StaticConfigs[0].Targets = k.prometheus.ScrapeConfigs[0].StaticConfigs[0].Targets[:2]
		}, "bookhub-3:9090"},
		{"ErrPrometheusDuplicateJob", "prometheus/scrapes every replica", func(_ *testing.T, k *kit) {
			k.prometheus.ScrapeConfigs = append(k.prometheus.ScrapeConfigs, k.prometheus.ScrapeConfigs[0])
		}, "appears twice"},
		{"ErrRootUser", "dockerfile/builds a static non-root image with a health check", dockerfile("USER 65532:65532", "USER root"), "non-root"},
		{"ErrShellHealthcheck", "dockerfile/builds a static non-root image with a health check", dockerfile(`CMD ["/bookhub", "healthcheck", "--url", "http://127.0.0.1:8080/readyz"]`, "CMD /bookhub healthcheck"), "exec form"},
		{"ErrWrongPackage", "dockerfile/builds a static non-root image with a health check", dockerfile("./cmd/bookhub", "./cmd/other"), "./cmd/bookhub"},
		{"ErrCGO", "dockerfile/builds a static non-root image with a health check", dockerfile("CGO_ENABLED=0", "CGO_ENABLED=1"), "CGO_ENABLED=0"},
		{"ErrNoExpose9090", "dockerfile/builds a static non-root image with a health check", dockerfile("EXPOSE 8080 9090", "EXPOSE 8080"), "lacks 9090"},
		{"ErrTypoMetric", "grafana/dashboard queries only exported metrics", func(_ *testing.T, k *kit) {
			k.dashboard.Panels[1].Targets[0].Expr = "sum(bookhub_ws_conections)"
		}, `"bookhub_ws_conections", which bookhub does not export`},
		{"ErrCounterAsHistogram", "grafana/dashboard queries only exported metrics", func(_ *testing.T, k *kit) {
			k.dashboard.Panels[1].Targets[0].Expr = "rate(bookhub_store_errors_total_bucket[1m])"
		}, "does not export"},
		{"ErrMetricNotShown", "grafana/dashboard shows every exported metric", func(_ *testing.T, k *kit) {
			for i := range k.dashboard.Panels {
				for j := range k.dashboard.Panels[i].Targets {
					k.dashboard.Panels[i].Targets[j].Expr = strings.ReplaceAll(k.dashboard.Panels[i].Targets[j].Expr, "bookhub_bus_errors_total", "bookhub_store_errors_total")
				}
			}
		}, "no panel shows bookhub_bus_errors_total"},
		{"ErrUnprovisionedDatasource", "grafana/provisioning matches compose", func(_ *testing.T, k *kit) {
			k.dashboard.Panels[1].Datasource = &dsRef{Type: "prometheus", UID: "other"}
		}, "not provisioned"},
		{"ErrMissingScript", "k6/scripts exist with a run command", func(_ *testing.T, k *kit) { delete(k.k6, "scaling.js") }, "scaling.js is missing"},
		{"ErrNoRunCommand", "k6/scripts exist with a run command", func(_ *testing.T, k *kit) {
			k.k6["ws_fanout.js"] = "// ws test\nimport http from 'k6/http';\n"
		}, "no `k6 run"},
		{"ErrUnpinnedTypes", "k6/type-check setup is pinned", func(t *testing.T, k *kit) {
			var pkg map[string]any
			if err := json.Unmarshal([]byte(k.k6["package.json"]), &pkg); err != nil {
				t.Fatal(err)
			}
			pkg["devDependencies"].(map[string]any)["@types/k6"] = "^2.3.0"
			b, _ := json.Marshal(pkg)
			k.k6["package.json"] = string(b)
		}, "pin an exact version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := loadKit(t)
			run := findCheck(t, tt.check)
			if problems := run(k); len(problems) != 0 {
				t.Fatalf("check %q fails before the mutation: %q", tt.check, problems)
			}
			tt.mutate(t, k)
			problems := run(k)
			for _, p := range problems {
				if strings.Contains(p, tt.want) {
					return
				}
			}
			t.Fatalf("check %q did not report %q after the mutation; it said %q", tt.check, tt.want, problems)
		})
	}
}

func findCheck(t *testing.T, name string) func(*kit) []string {
	t.Helper()
	for _, c := range checks {
		if c.name == name {
			return c.run
		}
	}
	t.Fatalf("no check named %q", name)
	return nil
}

// nginx returns a mutation that edits deploy/nginx.conf's text, as a hand
// edit of the generated file would, and re-parses it.
func nginx(old, replacement string) func(*testing.T, *kit) {
	return func(t *testing.T, k *kit) {
		t.Helper()
		src := replaceOnce(t, k.raw[nginxPath], old, replacement)
		k.raw[nginxPath] = src
		var err error
		if k.nginx, err = parseNginx(src); err != nil {
			t.Fatalf("mutated nginx.conf does not parse: %v", err)
		}
	}
}

// dockerfile returns a mutation that edits the Dockerfile's text and re-parses it.
func dockerfile(old, replacement string) func(*testing.T, *kit) {
	return func(t *testing.T, k *kit) {
		t.Helper()
		src := replaceOnce(t, k.raw[dockerfilePath], old, replacement)
		var err error
		if k.dockerfile, err = parseDockerfile(src); err != nil {
			t.Fatalf("mutated Dockerfile does not parse: %v", err)
		}
	}
}

func replaceOnce(t *testing.T, src, old, replacement string) string {
	t.Helper()
	if strings.Count(src, old) != 1 {
		t.Fatalf("mutation target %q occurs %d times; want exactly once", old, strings.Count(src, old))
	}
	return strings.Replace(src, old, replacement, 1)
}
