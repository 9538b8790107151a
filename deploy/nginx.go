package deploy

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"text/template"
)

//go:embed nginx.conf.tmpl
var nginxTemplateText string

// nginxTemplate is parsed once; executing a parsed template is safe for
// concurrent use.
var nginxTemplate = template.Must(template.New("nginx.conf.tmpl").Option("missingkey=error").Parse(nginxTemplateText))

// NginxPath is the compose rendering of the template, relative to the
// repository root; docker-compose.yml mounts it into the lb service.
const NginxPath = "deploy/nginx.conf"

// Nginx is everything that may differ between two renderings of the load
// balancer's configuration (deploy/nginx.conf.tmpl). The request-handling
// rules are not here on purpose: they are one text for compose and tests.
type Nginx struct {
	// Purpose names the rendering in the generated file's first line, e.g.
	// "docker-compose.yml".
	Purpose string
	// Listen is the listen directive's argument: "8080" or "127.0.0.1:18080".
	Listen string
	// Servers are the bookhub instances, in order. At least one.
	Servers []NginxServer
	// Resolver is a DNS server through which nginx re-resolves every server
	// name every 10s ("resolve", nginx 1.27.3 or later). Empty: servers are
	// resolved once at start, which every nginx version supports.
	Resolver string
	// User is the user worker processes run as; empty leaves nginx's
	// default (nobody when started as root).
	User string
	// WorkerProcesses defaults to "auto" (one per core).
	WorkerProcesses string
	// WorkerConnections defaults to 16384: a proxied socket takes two.
	WorkerConnections int
	// WorkerRlimitNofile defaults to 65536; it must not exceed what the
	// master may set (its hard limit unless it runs as root).
	WorkerRlimitNofile int
	// RuntimeDir holds the pid file and the temporary folders; empty keeps
	// nginx's built-in paths (the official image's).
	RuntimeDir string
	// AccessLog and ErrorLog default to /dev/stdout and /dev/stderr.
	AccessLog, ErrorLog string
}

// NginxServer is one upstream server.
type NginxServer struct {
	// Addr is host:port.
	Addr string
	// Comment, when set, is written above the server line.
	Comment string
}

// ComposeNginx is the rendering for docker-compose.yml: the three fixed
// replicas and the scalable bookhub-extra service, found through Docker's
// embedded DNS so that restarted and scaled containers join without a reload.
func ComposeNginx() Nginx {
	return Nginx{
		Purpose: "docker-compose.yml",
		Listen:  "8080",
		Servers: []NginxServer{
			{Addr: "bookhub-1:8080"},
			{Addr: "bookhub-2:8080"},
			{Addr: "bookhub-3:8080"},
			{Addr: "bookhub-extra:8080", Comment: "Present only with `--profile scale`; unresolvable names stay down."},
		},
		Resolver: "127.0.0.11", // Docker's embedded DNS
	}
}

// Defaults for zero Nginx fields.
const (
	DefaultWorkerProcesses    = "auto"
	DefaultWorkerConnections  = 16384
	DefaultWorkerRlimitNofile = 65536
	DefaultAccessLog          = "/dev/stdout"
	DefaultErrorLog           = "/dev/stderr"
)

// RenderNginx fills the zero fields of n with the defaults, checks that
// every value is one nginx word (so no setting can smuggle a directive in),
// and renders the template.
func RenderNginx(n Nginx) ([]byte, error) {
	if n.WorkerProcesses == "" {
		n.WorkerProcesses = DefaultWorkerProcesses
	}
	if n.WorkerConnections == 0 {
		n.WorkerConnections = DefaultWorkerConnections
	}
	if n.WorkerRlimitNofile == 0 {
		n.WorkerRlimitNofile = DefaultWorkerRlimitNofile
	}
	if n.AccessLog == "" {
		n.AccessLog = DefaultAccessLog
	}
	if n.ErrorLog == "" {
		n.ErrorLog = DefaultErrorLog
	}
	if err := n.validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := nginxTemplate.Execute(&b, n); err != nil {
		return nil, fmt.Errorf("render nginx.conf: %w", err)
	}
	return b.Bytes(), nil
}

func (n Nginx) validate() error {
	var errs []error
	word := func(field, v string, required bool) {
		switch {
		case v == "" && required:
			errs = append(errs, fmt.Errorf("nginx: %s is required", field))
		case strings.ContainsAny(v, " \t\r\n;{}#\"'$\\"):
			errs = append(errs, fmt.Errorf("nginx: %s %q must be one nginx word (no spaces, quotes, ;, {, }, #, $)", field, v))
		}
	}
	word("Listen", n.Listen, true)
	word("Resolver", n.Resolver, false)
	word("User", n.User, false)
	word("WorkerProcesses", n.WorkerProcesses, true)
	word("RuntimeDir", n.RuntimeDir, false)
	word("AccessLog", n.AccessLog, true)
	word("ErrorLog", n.ErrorLog, true)
	if len(n.Servers) == 0 {
		errs = append(errs, errors.New("nginx: at least one server is required"))
	}
	for i, s := range n.Servers {
		word(fmt.Sprintf("Servers[%d].Addr", i), s.Addr, true)
		if strings.ContainsAny(s.Comment, "\r\n") {
			errs = append(errs, fmt.Errorf("nginx: Servers[%d].Comment must be one line", i))
		}
	}
	if n.WorkerConnections < 1 || n.WorkerRlimitNofile < 1 {
		errs = append(errs, errors.New("nginx: WorkerConnections and WorkerRlimitNofile must be positive"))
	}
	if strings.ContainsAny(n.Purpose, "\r\n") {
		errs = append(errs, errors.New("nginx: Purpose must be one line"))
	}
	return errors.Join(errs...)
}
