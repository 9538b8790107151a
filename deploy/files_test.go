package deploy_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/bookhub/bookhub/deploy"
)

// httpBlock returns the directives inside nginx's http {} block.
func httpBlock(k *kit) []*directive {
	if hs := children(k.nginx, "http"); len(hs) == 1 {
		return hs[0].Block
	}
	return nil
}

// bookhubUpstream finds the upstream block the proxy_pass directives use.
func bookhubUpstream(k *kit) (*directive, []string) {
	http := httpBlock(k)
	if http == nil {
		return nil, []string{fmt.Sprintf("%s: want exactly one http {} block", nginxPath)}
	}
	ups := children(http, "upstream")
	if len(ups) != 1 || len(ups[0].Args) != 1 {
		return nil, []string{fmt.Sprintf("%s: want exactly one named upstream block, found %d", nginxPath, len(ups))}
	}
	return ups[0], nil
}

// checkNginxRendered keeps the compose rendering generated: whatever the
// fault and soak tests prove about the template holds for compose only if
// deploy/nginx.conf is that template, rendered.
func checkNginxRendered(k *kit) []string {
	want, err := deploy.RenderNginx(deploy.ComposeNginx())
	if err != nil {
		return []string{fmt.Sprintf("render %s for compose: %v", nginxTemplatePath, err)}
	}
	got := k.raw[nginxPath]
	if got == string(want) {
		return nil
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
	line := 0
	for line < len(gl) && line < len(wl) && gl[line] == wl[line] {
		line++
	}
	have := "(end of file)"
	if line < len(gl) {
		have = strconv.Quote(gl[line])
	}
	return []string{fmt.Sprintf("%s:%d is %s, but %s renders %q there: edit the template, never the generated file, and run `make nginx-conf`",
		nginxPath, line+1, have, nginxTemplatePath, wl[min(line, len(wl)-1)])}
}

// checkNginxUpstream checks what only the compose rendering has: its
// servers are the compose replicas and it listens on the port the lb
// service publishes. It also wants upstream keepalive, which a test run
// cannot observe from outside.
func checkNginxUpstream(k *kit) []string {
	up, out := bookhubUpstream(k)
	if up == nil {
		return out
	}
	servers := map[string]bool{}
	for _, s := range children(up.Block, "server") {
		if len(s.Args) > 0 {
			servers[s.Args[0]] = true
		}
	}
	for _, name := range k.bookhubServices() {
		if !servers[name+":8080"] {
			out = append(out, fmt.Sprintf("%s: upstream %s has no \"server %s:8080\" (compose service %s); add it to deploy.ComposeNginx", nginxPath, up.Args[0], name, name))
		}
	}
	for addr := range servers {
		host, _, _ := strings.Cut(addr, ":")
		if k.compose.Services[host] == nil {
			out = append(out, fmt.Sprintf("%s: upstream server %s is not a compose service", nginxPath, addr))
		}
	}
	if len(children(up.Block, "keepalive")) == 0 {
		out = append(out, fmt.Sprintf("%s: upstream has no keepalive; every REST request would open a new connection to a replica", nginxPath))
	}
	if srv := children(httpBlock(k), "server"); len(srv) == 0 {
		out = append(out, fmt.Sprintf("%s: no server block", nginxPath))
	} else if l := nginxValue("listen", srv[0].Block); len(l) == 0 || l[0] != "8080" {
		out = append(out, fmt.Sprintf("%s: server listens on %v, want 8080 (the port compose publishes)", nginxPath, l))
	}
	return out
}

// nginxValue returns the arguments of the last name directive in block,
// falling back to the enclosing blocks as nginx inherits settings.
func nginxValue(name string, blocks ...[]*directive) []string {
	for i := len(blocks) - 1; i >= 0; i-- {
		if ds := children(blocks[i], name); len(ds) > 0 {
			return ds[len(ds)-1].Args
		}
	}
	return nil
}

// checkNginxIdleTimeout covers the one promise a test run cannot show
// quickly: a socket that only sees bookhub's pings is never cut by nginx.
func checkNginxIdleTimeout(k *kit) []string {
	up, out := bookhubUpstream(k)
	if up == nil {
		return out
	}
	http := httpBlock(k)
	servers := children(http, "server")
	if len(servers) == 0 {
		return []string{fmt.Sprintf("%s: no server block", nginxPath)}
	}
	srv := servers[0].Block
	proxied := 0
	for _, loc := range children(srv, "location") {
		pass := nginxValue("proxy_pass", loc.Block)
		if len(pass) == 0 || pass[0] != "http://"+up.Args[0] {
			continue
		}
		proxied++
		where := fmt.Sprintf("%s: location %s", nginxPath, strings.Join(loc.Args, " "))
		if v := nginxValue("proxy_read_timeout", http, srv, loc.Block); len(v) != 1 {
			out = append(out, fmt.Sprintf("%s: proxy_read_timeout unset (60s default); set it well above bookhub's %s ping interval", where, pingInterval))
		} else if d, err := nginxDuration(v[0]); err != nil || d <= pingInterval {
			out = append(out, fmt.Sprintf("%s: proxy_read_timeout %s must exceed bookhub's %s ping interval, or idle sockets are cut", where, v[0], pingInterval))
		}
	}
	if proxied == 0 {
		out = append(out, fmt.Sprintf("%s: no location proxies to http://%s", nginxPath, up.Args[0]))
	}
	return out
}

func checkPrometheus(k *kit) []string {
	var out []string
	targets := map[string]bool{}
	jobs := map[string]bool{}
	for _, sc := range k.prometheus.ScrapeConfigs {
		if jobs[sc.JobName] {
			out = append(out, fmt.Sprintf("%s: job_name %q appears twice; Prometheus refuses to start", prometheusPath, sc.JobName))
		}
		jobs[sc.JobName] = true
		for _, st := range sc.StaticConfigs {
			for _, t := range st.Targets {
				targets[t] = true
			}
		}
	}
	for _, name := range k.replicas() {
		port, err := metricsPort(k, name)
		if err != nil {
			continue // reported by checkEnvValues
		}
		if want := name + ":" + port; !targets[want] {
			out = append(out, fmt.Sprintf("%s: no static target %s (compose %s serves metrics on :%s)", prometheusPath, want, name, port))
		}
	}
	return out
}

// stages splits Dockerfile instructions at each FROM.
func stages(ins []instruction) [][]instruction {
	var out [][]instruction
	for _, in := range ins {
		if in.Cmd == "FROM" {
			out = append(out, nil)
		}
		if len(out) > 0 {
			out[len(out)-1] = append(out[len(out)-1], in)
		}
	}
	return out
}

func checkDockerfile(k *kit) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, dockerfilePath+": "+fmt.Sprintf(format, args...)) }
	st := stages(k.dockerfile)
	if len(st) < 2 {
		return []string{fmt.Sprintf("%s: %d stages, want a build stage and a runtime stage", dockerfilePath, len(st))}
	}
	args := map[string]string{}
	for _, in := range k.dockerfile {
		if in.Cmd == "FROM" {
			break
		}
		if in.Cmd == "ARG" {
			name, def, _ := strings.Cut(in.Args, "=")
			args[name] = def
		}
	}
	from := st[0][0].Args
	for name, def := range args {
		from = strings.ReplaceAll(from, "${"+name+"}", def)
	}
	if !strings.HasPrefix(from, "golang:1.26") {
		bad("build stage is FROM %s, want golang:1.26", from)
	}
	var build string
	for _, in := range st[0] {
		if in.Cmd == "RUN" && strings.Contains(in.Args, "go build") {
			build = in.Args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.version=", "./cmd/bookhub"} {
		if !strings.Contains(build, want) {
			bad("the go build step lacks %q (have %q)", want, build)
		}
	}
	final := st[len(st)-1]
	base := final[0].Args
	user := ""
	var expose []string
	var healthcheck, entrypoint string
	for _, in := range final {
		switch in.Cmd {
		case "USER":
			user = in.Args
		case "EXPOSE":
			expose = append(expose, strings.Fields(in.Args)...)
		case "HEALTHCHECK":
			healthcheck = in.Args
		case "ENTRYPOINT":
			entrypoint = in.Args
		}
	}
	if user == "" && strings.HasSuffix(base, ":nonroot") {
		user = "nonroot"
	}
	if name, _, _ := strings.Cut(user, ":"); name == "" || name == "root" || name == "0" {
		bad("the final stage (FROM %s) runs as %q; want a non-root USER", base, user)
	}
	if !strings.Contains(base, "distroless") && !strings.HasPrefix(base, "scratch") {
		bad("the final stage is FROM %s; want distroless static or scratch", base)
	}
	for _, port := range []string{"8080", "9090"} {
		if !slices.Contains(expose, port) {
			bad("EXPOSE %v lacks %s", expose, port)
		}
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || len(ep) == 0 || ep[0] != "/bookhub" {
		bad("ENTRYPOINT %q; want the exec form [\"/bookhub\"] (there is no shell)", entrypoint)
	}
	_, cmd, found := strings.Cut(healthcheck, "CMD ")
	var hc []string
	if !found || json.Unmarshal([]byte(strings.TrimSpace(cmd)), &hc) != nil {
		bad("HEALTHCHECK %q; want CMD in exec form [\"/bookhub\", \"healthcheck\", ...] (there is no shell)", healthcheck)
	} else if len(hc) < 2 || hc[0] != "/bookhub" || hc[1] != "healthcheck" || !strings.Contains(strings.Join(hc, " "), "/readyz") {
		bad("HEALTHCHECK runs %q; want /bookhub healthcheck --url http://127.0.0.1:8080/readyz", hc)
	}
	return out
}

// dashboardExprs lists every PromQL query of the dashboard with where it is.
func dashboardExprs(d dashboard) map[string]string {
	exprs := map[string]string{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				exprs[fmt.Sprintf("panel %q target %s", p.Title, t.RefID)] = t.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		var q struct {
			Query string `json:"query"`
		}
		var s string
		if json.Unmarshal(v.Query, &q) == nil && q.Query != "" {
			exprs["variable "+v.Name] = q.Query
		} else if json.Unmarshal(v.Query, &s) == nil {
			exprs["variable "+v.Name] = s
		}
	}
	return exprs
}

// allowedMetric reports whether name is an exported metric or a series of
// an exported histogram.
func allowedMetric(name string) (base string, ok bool) {
	if _, ok := exportedMetrics[name]; ok {
		return name, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if b, found := strings.CutSuffix(name, suffix); found && exportedMetrics[b] == "histogram" {
			return b, true
		}
	}
	return "", false
}

func checkDashboardMetrics(k *kit) []string {
	var out []string
	if k.dashboard.UID == "" || k.dashboard.Title == "" {
		out = append(out, fmt.Sprintf("%s: the dashboard needs a uid and a title so provisioning is stable", dashboardPath))
	}
	exprs := dashboardExprs(k.dashboard)
	if len(exprs) == 0 {
		out = append(out, fmt.Sprintf("%s: no queries", dashboardPath))
	}
	for where, expr := range exprs {
		if strings.TrimSpace(expr) == "" {
			out = append(out, fmt.Sprintf("%s: %s has an empty query", dashboardPath, where))
			continue
		}
		names, err := promQLMetrics(expr)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %s: %v", dashboardPath, where, err))
			continue
		}
		for _, n := range names {
			if _, ok := allowedMetric(n); !ok {
				out = append(out, fmt.Sprintf("%s: %s queries %q, which bookhub does not export (query %q)", dashboardPath, where, n, expr))
			}
		}
	}
	return out
}

func checkDashboardCoverage(k *kit) []string {
	used := map[string]bool{}
	for _, expr := range dashboardExprs(k.dashboard) {
		names, _ := promQLMetrics(expr)
		for _, n := range names {
			if b, ok := allowedMetric(n); ok {
				used[b] = true
			}
		}
	}
	var out []string
	for name := range exportedMetrics {
		if !used[name] {
			out = append(out, fmt.Sprintf("%s: no panel shows %s", dashboardPath, name))
		}
	}
	slices.Sort(out)
	return out
}

// grafanaMount is where compose mounts the dashboards folder.
func grafanaMount(k *kit, hostDir string) string {
	g := k.compose.Services["grafana"]
	if g == nil {
		return ""
	}
	for _, v := range g.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.TrimSuffix(parts[0], "/") == "./"+hostDir {
			return parts[1]
		}
	}
	return ""
}

func checkGrafanaProvisioning(k *kit) []string {
	var out []string
	dsUIDs := map[string]bool{}
	for _, ds := range k.datasource.Datasources {
		dsUIDs[ds.UID] = true
		if u, err := url.Parse(ds.URL); err != nil || k.compose.Services[u.Hostname()] == nil {
			out = append(out, fmt.Sprintf("%s: datasource %q url %q is not a compose service", datasourcePath, ds.Name, ds.URL))
		}
	}
	if len(dsUIDs) == 0 {
		out = append(out, fmt.Sprintf("%s: no datasources", datasourcePath))
	}
	mount := grafanaMount(k, filepath.Dir(dashboardPath))
	if mount == "" {
		out = append(out, fmt.Sprintf("%s: grafana does not mount ./%s", composePath, filepath.Dir(dashboardPath)))
	}
	if !slices.ContainsFunc(k.providers.Providers, func(p grafanaProvider) bool {
		return p.Type == "file" && strings.TrimSuffix(p.Options.Path, "/") == mount
	}) {
		out = append(out, fmt.Sprintf("%s: no file provider reads %q, where compose mounts the dashboards", providersPath, mount))
	}
	if grafanaMount(k, "deploy/grafana/provisioning") != "/etc/grafana/provisioning" {
		out = append(out, fmt.Sprintf("%s: grafana should mount ./deploy/grafana/provisioning at /etc/grafana/provisioning", composePath))
	}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" && (p.Datasource == nil || !dsUIDs[p.Datasource.UID]) {
				out = append(out, fmt.Sprintf("%s: panel %q uses a datasource that is not provisioned (want one of %v)", dashboardPath, p.Title, dsUIDs))
			}
			walk(p.Panels)
		}
	}
	walk(k.dashboard.Panels)
	return out
}

var headerRun = regexp.MustCompile(`(?m)^\s*(//|\*)\s.*\bk6 run\b`)

func checkK6Scripts(k *kit) []string {
	var out []string
	for _, name := range k6Scripts {
		src, ok := k.k6[name]
		if !ok {
			out = append(out, fmt.Sprintf("%s/%s is missing", k6Dir, name))
			continue
		}
		header := src
		if i := strings.Index(src, "\nimport "); i >= 0 {
			header = src[:i]
		}
		if !headerRun.MatchString(header) {
			out = append(out, fmt.Sprintf("%s/%s: the header comment (before the imports) has no `k6 run ...` command", k6Dir, name))
		}
		if !strings.Contains(header, "docker compose") {
			out = append(out, fmt.Sprintf("%s/%s: the header comment has no `docker compose ...` command", k6Dir, name))
		}
		if !strings.Contains(src, "thresholds") {
			out = append(out, fmt.Sprintf("%s/%s: no thresholds, so the run cannot fail", k6Dir, name))
		}
	}
	return out
}

var exactVersion = regexp.MustCompile(`^\d+\.\d+\.\d+$`)

func checkK6Packages(k *kit) []string {
	var out []string
	var pkg struct {
		Scripts         map[string]string `json:"scripts"`
		DevDependencies map[string]string `json:"devDependencies"`
	}
	if err := json.Unmarshal([]byte(k.k6["package.json"]), &pkg); err != nil {
		return []string{fmt.Sprintf("%s/package.json: %v", k6Dir, err)}
	}
	for _, dep := range []string{"typescript", "@types/k6"} {
		if v := pkg.DevDependencies[dep]; !exactVersion.MatchString(v) {
			out = append(out, fmt.Sprintf("%s/package.json: devDependency %s is %q; pin an exact version", k6Dir, dep, v))
		}
	}
	if pkg.Scripts["check"] != "tsc -p ." {
		out = append(out, fmt.Sprintf("%s/package.json: script check is %q, want \"tsc -p .\"", k6Dir, pkg.Scripts["check"]))
	}
	var ts struct {
		CompilerOptions map[string]any `json:"compilerOptions"`
	}
	if err := json.Unmarshal([]byte(k.k6["tsconfig.json"]), &ts); err != nil {
		return append(out, fmt.Sprintf("%s/tsconfig.json: %v", k6Dir, err))
	}
	for _, opt := range []string{"checkJs", "allowJs", "noEmit", "strict"} {
		if ts.CompilerOptions[opt] != true {
			out = append(out, fmt.Sprintf("%s/tsconfig.json: compilerOptions.%s must be true", k6Dir, opt))
		}
	}
	if !strings.Contains(k.gitignore, k6Dir+"/node_modules") {
		out = append(out, fmt.Sprintf(".gitignore does not ignore %s/node_modules/", k6Dir))
	}
	return out
}
