package deploy_test

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/config"
	"github.com/bookhub/bookhub/store"
)

// pingInterval is how often bookhub pings an idle WebSocket (hub's
// DefaultPingInterval); the load balancer must not time out a socket that
// only sees pings.
const pingInterval = 30 * time.Second

// exportedMetrics are the metric names bookhub exports. The dashboard may
// query only these (plus _bucket/_sum/_count of the histograms) and should
// show each of them.
var exportedMetrics = map[string]string{
	"bookhub_ws_connections":                     "gauge",
	"bookhub_ws_subscriptions":                   "gauge",
	"bookhub_events_published_total":             "counter",
	"bookhub_events_received_total":              "counter",
	"bookhub_ws_frames_delivered_total":          "counter",
	"bookhub_ws_slow_consumer_disconnects_total": "counter",
	"bookhub_ws_fanout_seconds":                  "histogram",
	"bookhub_http_request_duration_seconds":      "histogram",
	"bookhub_store_errors_total":                 "counter",
	"bookhub_bus_errors_total":                   "counter",
}

// requiredEnv must be set on every fixed replica.
var requiredEnv = []string{config.EnvDatabaseURL, config.EnvRedisURL, config.EnvJWTSecret, config.EnvInstance}

// sharedEnv must be equal on every bookhub service: replicas that disagree
// on the database, the bus or the token key are not one cluster.
var sharedEnv = []string{config.EnvDatabaseURL, config.EnvRedisURL, config.EnvRedisPrefix, config.EnvRedisSharded, config.EnvJWTSecret}

// check is one named rule over the kit; it returns every problem found.
type check struct {
	name string
	run  func(k *kit) []string
}

var checks = []check{
	{"compose/services exist", checkServicesExist},
	{"compose/health checks", checkHealthchecks},
	{"compose/bookhub waits for healthy mysql and redis", checkDependsOn},
	{"compose/bookhub env names are known to config", checkEnvKnown},
	{"compose/bookhub env is complete and consistent", checkEnvValues},
	{"compose/mysql matches the database url", checkMySQL},
	{"compose/lb publishes 8080 with deploy/nginx.conf", checkLB},
	{"compose/bind mounts exist", checkBindMounts},
	{"compose/k6 runs the scripts in profile loadtest", checkK6Service},
	// Upgrades, request ids, the 413 body, balancing and failover are
	// proven by a real nginx running the template (internal/cluster).
	{"nginx/deploy/nginx.conf is the template rendered for compose", checkNginxRendered},
	{"nginx/upstream lists every replica on the published port", checkNginxUpstream},
	{"nginx/idle sockets outlive the ping interval", checkNginxIdleTimeout},
	{"prometheus/scrapes every replica", checkPrometheus},
	{"dockerfile/builds a static non-root image with a health check", checkDockerfile},
	{"grafana/dashboard queries only exported metrics", checkDashboardMetrics},
	{"grafana/dashboard shows every exported metric", checkDashboardCoverage},
	{"grafana/provisioning matches compose", checkGrafanaProvisioning},
	{"k6/scripts exist with a run command", checkK6Scripts},
	{"k6/type-check setup is pinned", checkK6Packages},
}

// TestKit runs every check on the files in the repository.
func TestKit(t *testing.T) {
	k := loadKit(t)
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			for _, p := range c.run(k) {
				t.Error(p)
			}
		})
	}
}

func checkServicesExist(k *kit) []string {
	var out []string
	for _, name := range []string{"mysql", "redis", "bookhub-1", "bookhub-2", "bookhub-3", "lb", "prometheus", "grafana", "k6"} {
		if k.compose.Services[name] == nil {
			out = append(out, fmt.Sprintf("%s: no service %q (have %v)", composePath, name, k.serviceNames()))
		}
	}
	if len(k.replicas()) < 2 {
		out = append(out, fmt.Sprintf("%s: %d bookhub replicas without a profile (%v); a scaling kit needs at least 2", composePath, len(k.replicas()), k.replicas()))
	}
	return out
}

func checkHealthchecks(k *kit) []string {
	want := map[string]string{"mysql": "mysqladmin", "redis": "redis-cli"}
	for _, name := range k.bookhubServices() {
		want[name] = "healthcheck"
	}
	var out []string
	for name, cmd := range want {
		s := k.compose.Services[name]
		if s == nil {
			continue // reported by checkServicesExist
		}
		hc := s.Healthcheck
		switch {
		case hc == nil || hc.Disable || len(hc.Test) == 0:
			out = append(out, fmt.Sprintf("%s: service %s has no healthcheck", composePath, name))
		case hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL":
			out = append(out, fmt.Sprintf("%s: service %s healthcheck test starts with %q, want CMD or CMD-SHELL", composePath, name, hc.Test[0]))
		case !strings.Contains(strings.Join(hc.Test, " "), cmd):
			out = append(out, fmt.Sprintf("%s: service %s healthcheck %q does not run %s", composePath, name, hc.Test, cmd))
		}
		if cmd == "healthcheck" && hc != nil {
			// The image has no shell: CMD-SHELL cannot work there.
			if len(hc.Test) > 0 && hc.Test[0] != "CMD" {
				out = append(out, fmt.Sprintf("%s: service %s must use the exec form [\"CMD\", \"/bookhub\", ...]: the image has no shell", composePath, name))
			}
			if !strings.Contains(strings.Join(hc.Test, " "), "/readyz") {
				out = append(out, fmt.Sprintf("%s: service %s healthcheck %q should probe /readyz", composePath, name, hc.Test))
			}
		}
	}
	return out
}

func checkDependsOn(k *kit) []string {
	var out []string
	for _, name := range k.bookhubServices() {
		deps := k.compose.Services[name].DependsOn
		for _, dep := range []string{"mysql", "redis"} {
			if cond := deps[dep]; cond != "service_healthy" {
				out = append(out, fmt.Sprintf("%s: %s depends_on %s with condition %q, want service_healthy", composePath, name, dep, cond))
			}
		}
	}
	return out
}

func checkEnvKnown(k *kit) []string {
	known := config.EnvNames()
	var out []string
	for _, name := range k.bookhubServices() {
		for key := range k.compose.Services[name].Environment {
			if strings.HasPrefix(key, "BOOKHUB_") && !slices.Contains(known, key) {
				out = append(out, fmt.Sprintf("%s: %s sets %s, which bookhub does not read (config.EnvNames: %v)", composePath, name, key, known))
			}
		}
	}
	return out
}

func checkEnvValues(k *kit) []string {
	var out []string
	instances := map[string]string{}
	for _, name := range k.replicas() {
		for _, key := range requiredEnv {
			if v, ok, err := k.env(name, key); err != nil {
				out = append(out, fmt.Sprintf("%s: %s %s: %v", composePath, name, key, err))
			} else if !ok || v == "" {
				out = append(out, fmt.Sprintf("%s: replica %s does not set %s", composePath, name, key))
			}
		}
		if inst, _, _ := k.env(name, config.EnvInstance); inst != "" {
			if other, dup := instances[inst]; dup {
				out = append(out, fmt.Sprintf("%s: %s and %s share %s=%q; instance names must be distinct", composePath, other, name, config.EnvInstance, inst))
			}
			instances[inst] = name
		}
	}
	for _, name := range k.bookhubServices() {
		s := k.compose.Services[name]
		if len(s.Profiles) > 0 {
			if _, ok := s.Environment[config.EnvInstance]; ok || s.ContainerName != "" {
				out = append(out, fmt.Sprintf("%s: %s can be scaled (profile %v) so it must leave %s unset and have no container_name: each container then names itself by hostname", composePath, name, s.Profiles, config.EnvInstance))
			}
		}
		out = append(out, checkEnvSyntax(k, name)...)
	}
	services := k.bookhubServices()
	if len(services) == 0 {
		return append(out, fmt.Sprintf("%s: no service builds bookhub (build.context \".\")", composePath))
	}
	for _, key := range sharedEnv {
		for _, name := range services[1:] {
			a, _, _ := k.env(services[0], key)
			if b, _, _ := k.env(name, key); a != b {
				out = append(out, fmt.Sprintf("%s: %s differs between %s and %s; every replica must share it", composePath, key, services[0], name))
			}
		}
	}
	return out
}

// checkEnvSyntax validates the values bookhub would parse at start-up.
func checkEnvSyntax(k *kit, name string) []string {
	var out []string
	bad := func(key, format string, args ...any) {
		out = append(out, fmt.Sprintf("%s: %s %s: %s", composePath, name, key, fmt.Sprintf(format, args...)))
	}
	if dbURL, ok, _ := k.env(name, config.EnvDatabaseURL); ok {
		if driver, _, err := store.ParseURL(dbURL); err != nil {
			bad(config.EnvDatabaseURL, "does not parse: %v", err)
		} else if driver != store.DriverMySQL {
			bad(config.EnvDatabaseURL, "is a %s URL, want mysql://", driver)
		}
	}
	if r, ok, _ := k.env(name, config.EnvRedisURL); ok {
		if u, err := url.Parse(r); err != nil || u.Scheme != "redis" || u.Hostname() != "redis" {
			bad(config.EnvRedisURL, "%q is not redis://redis:6379/N (the compose redis service)", r)
		}
	}
	if secret, ok, _ := k.env(name, config.EnvJWTSecret); ok {
		if len(secret) < 32 {
			bad(config.EnvJWTSecret, "default is %d bytes; bookhub needs at least 32", len(secret))
		}
		if raw := k.compose.Services[name].Environment[config.EnvJWTSecret]; !strings.Contains(raw, "${"+config.EnvJWTSecret) || !strings.Contains(secret, "dev-only") {
			bad(config.EnvJWTSecret, "must come from ${%s:-...} with a default marked \"dev-only\"", config.EnvJWTSecret)
		}
	}
	for _, key := range []string{config.EnvAddr, config.EnvMetricsAddr} {
		if v, ok, _ := k.env(name, key); ok {
			if _, _, err := net.SplitHostPort(v); err != nil {
				bad(key, "%q is not host:port", v)
			}
		}
	}
	if v, ok, _ := k.env(name, config.EnvRedisSharded); ok && !slices.Contains([]string{"", "0", "1", "true", "false"}, v) {
		bad(config.EnvRedisSharded, "default %q is not true or false", v)
	}
	if _, err := metricsPort(k, name); err != nil {
		bad(config.EnvMetricsAddr, "%v", err)
	}
	return out
}

// metricsPort is the port a replica serves /metrics on.
func metricsPort(k *kit, name string) (string, error) {
	v, ok, err := k.env(name, config.EnvMetricsAddr)
	if err != nil || !ok || v == "" {
		return "", fmt.Errorf("unset: Prometheus could not scrape %s", name)
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port", v)
	}
	return port, nil
}

func checkMySQL(k *kit) []string {
	m := k.compose.Services["mysql"]
	replicas := k.replicas()
	if m == nil || len(replicas) == 0 {
		return nil
	}
	raw, _, err := k.env(replicas[0], config.EnvDatabaseURL)
	u, perr := url.Parse(raw)
	if err != nil || perr != nil {
		return nil // reported by checkEnvValues
	}
	var out []string
	env := func(key string) string {
		v, _, _ := k.env("mysql", key)
		return v
	}
	pass, _ := u.User.Password()
	for _, c := range []struct{ what, fromURL, key string }{
		{"database", strings.TrimPrefix(u.Path, "/"), "MYSQL_DATABASE"},
		{"user", u.User.Username(), "MYSQL_USER"},
		{"password", pass, "MYSQL_PASSWORD"},
	} {
		if c.fromURL != env(c.key) {
			out = append(out, fmt.Sprintf("%s: %s of %s (%q) differs from mysql's %s (%q)", composePath, c.what, config.EnvDatabaseURL, c.fromURL, c.key, env(c.key)))
		}
	}
	if u.Hostname() != "mysql" {
		out = append(out, fmt.Sprintf("%s: %s points at host %q, want the mysql service", composePath, config.EnvDatabaseURL, u.Hostname()))
	}
	named := false
	for _, v := range m.Volumes {
		src, dst, _ := strings.Cut(v, ":")
		if _, declared := k.compose.Volumes[src]; declared && strings.HasPrefix(dst, "/var/lib/mysql") {
			named = true
		}
	}
	if !named {
		out = append(out, fmt.Sprintf("%s: mysql keeps /var/lib/mysql in no named volume (have %v)", composePath, m.Volumes))
	}
	return out
}

func checkLB(k *kit) []string {
	lb := k.compose.Services["lb"]
	if lb == nil {
		return nil
	}
	var out []string
	published := false
	for _, p := range lb.Ports {
		expanded, err := interpolate(p)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: lb port %q: %v", composePath, p, err))
			continue
		}
		parts := strings.Split(expanded, ":")
		if len(parts) >= 2 && parts[len(parts)-1] == "8080" && parts[len(parts)-2] == "8080" {
			published = true
		}
	}
	if !published {
		out = append(out, fmt.Sprintf("%s: lb publishes %v; want host port 8080 -> container port 8080", composePath, lb.Ports))
	}
	if !slices.ContainsFunc(lb.Volumes, func(v string) bool { return strings.HasPrefix(v, "./"+nginxPath+":/etc/nginx/") }) {
		out = append(out, fmt.Sprintf("%s: lb does not mount ./%s into /etc/nginx/", composePath, nginxPath))
	}
	for _, name := range k.replicas() {
		if lb.DependsOn[name] != "service_healthy" {
			out = append(out, fmt.Sprintf("%s: lb should depend on %s being healthy, so the first requests find a ready replica", composePath, name))
		}
	}
	return out
}

func checkBindMounts(k *kit) []string {
	var out []string
	for _, name := range k.serviceNames() {
		for _, v := range k.compose.Services[name].Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, "./") {
				continue
			}
			if _, err := os.Stat(filepath.Join(k.root, src)); err != nil {
				out = append(out, fmt.Sprintf("%s: %s mounts %s, which does not exist", composePath, name, src))
			}
		}
	}
	return out
}

func checkK6Service(k *kit) []string {
	s := k.compose.Services["k6"]
	if s == nil {
		return nil
	}
	var out []string
	if !slices.Contains(s.Profiles, "loadtest") {
		out = append(out, fmt.Sprintf("%s: k6 has profiles %v; want \"loadtest\" so `docker compose up` does not start a load test", composePath, s.Profiles))
	}
	if !strings.HasPrefix(s.Image, "grafana/k6") {
		out = append(out, fmt.Sprintf("%s: k6 image %q, want grafana/k6", composePath, s.Image))
	}
	if !slices.Contains(s.Volumes, "./"+k6Dir+":/scripts:ro") {
		out = append(out, fmt.Sprintf("%s: k6 should mount ./%s:/scripts:ro (have %v)", composePath, k6Dir, s.Volumes))
	}
	for _, key := range []string{"BASE_URL", "BOOKHUB_TOKEN", "BOOKHUB_WRITER_TOKEN", "BOOKHUB_ADMIN_TOKEN"} {
		if _, ok := s.Environment[key]; !ok {
			out = append(out, fmt.Sprintf("%s: k6 does not pass %s", composePath, key))
		}
	}
	if base, _, _ := k.env("k6", "BASE_URL"); base != "http://lb:8080" {
		out = append(out, fmt.Sprintf("%s: k6 BASE_URL=%q; want http://lb:8080 so load goes through the balancer", composePath, base))
	}
	return out
}

// TestComposeSetsEveryClusterSetting keeps the kit honest in the other
// direction: a new setting in config should at least be considered here.
func TestComposeSetsEveryClusterSetting(t *testing.T) {
	k := loadKit(t)
	optional := map[string]bool{config.EnvDataDir: true, config.EnvOrigins: true, // embedded mode / browsers only
		config.EnvRedisCluster: true, // the compose stack runs a single Redis
		// Security settings with safe defaults that a cluster needs not set:
		// no OIDC provider, no EdDSA key or retired keys, no cross-site
		// dashboard, default token claims, grace and rate limits.
		config.EnvOIDCName: true, config.EnvOIDCIssuer: true, config.EnvOIDCClientID: true,
		config.EnvOIDCClientSecret: true, config.EnvOIDCRedirectURL: true,
		config.EnvJWTKeyFile: true, config.EnvJWTPreviousSecrets: true, config.EnvJWTPreviousKeyFiles: true,
		config.EnvCORSOrigins: true, config.EnvJWTIssuer: true, config.EnvJWTAudience: true,
		config.EnvRefreshGrace: true, config.EnvLoginRateAccount: true, config.EnvLoginRateAddress: true,
		config.EnvRefreshRate: true}
	for _, key := range config.EnvNames() {
		if optional[key] {
			continue
		}
		for _, name := range k.replicas() {
			if _, ok := k.compose.Services[name].Environment[key]; !ok {
				t.Errorf("%s: %s does not set %s; set it (or add it to the optional list here with a reason)", composePath, name, key)
			}
		}
	}
}
