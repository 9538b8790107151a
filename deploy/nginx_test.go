package deploy_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bookhub/bookhub/deploy"
)

var update = flag.Bool("update", false, "rewrite deploy/nginx.conf from deploy/nginx.conf.tmpl (make nginx-conf)")

// TestUpdateNginxConf regenerates the compose rendering; without -update
// it is skipped and TestKit checks that the file is up to date.
func TestUpdateNginxConf(t *testing.T) {
	if !*update {
		t.Skip("run with -update (make nginx-conf) to rewrite " + deploy.NginxPath)
	}
	conf, err := deploy.RenderNginx(deploy.ComposeNginx())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Base(deploy.NginxPath), conf, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRenderNginx(t *testing.T) {
	local := func() deploy.Nginx {
		return deploy.Nginx{Purpose: "test", Listen: "127.0.0.1:18080", Servers: []deploy.NginxServer{{Addr: "127.0.0.1:18081"}}}
	}
	t.Run("OK compose re-resolves every server", func(t *testing.T) {
		conf, err := deploy.RenderNginx(deploy.ComposeNginx())
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"resolver 127.0.0.11 ", "server bookhub-1:8080 resolve ", "server bookhub-extra:8080 resolve ", "listen 8080;"} {
			if !strings.Contains(string(conf), want) {
				t.Errorf("compose rendering lacks %q", want)
			}
		}
	})
	t.Run("OK without a resolver nothing needs nginx 1.27", func(t *testing.T) {
		conf, err := deploy.RenderNginx(local())
		if err != nil {
			t.Fatal(err)
		}
		for _, unwanted := range []string{"resolve ", "resolver "} {
			if strings.Contains(string(conf), unwanted) {
				t.Errorf("static rendering contains %q, which Debian's nginx 1.22 refuses", unwanted)
			}
		}
		for _, want := range []string{"listen 127.0.0.1:18080;", "server 127.0.0.1:18081 max_fails", "worker_connections 16384;", "access_log /dev/stdout bookhub;"} {
			if !strings.Contains(string(conf), want) {
				t.Errorf("static rendering lacks %q", want)
			}
		}
	})
	t.Run("OK runtime folder holds pid and temporary files", func(t *testing.T) {
		n := local()
		n.RuntimeDir = "/tmp/lb"
		conf, err := deploy.RenderNginx(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"pid /tmp/lb/nginx.pid;", "client_body_temp_path /tmp/lb/client_body;", "proxy_temp_path /tmp/lb/proxy;"} {
			if !strings.Contains(string(conf), want) {
				t.Errorf("rendering lacks %q", want)
			}
		}
	})
	for _, tc := range []struct {
		name   string
		mutate func(*deploy.Nginx)
		want   string
	}{
		{"ErrNoServers", func(n *deploy.Nginx) { n.Servers = nil }, "at least one server"},
		{"ErrNoListen", func(n *deploy.Nginx) { n.Listen = "" }, "Listen is required"},
		{"ErrDirectiveInListen", func(n *deploy.Nginx) { n.Listen = "8080; include /etc/passwd" }, "one nginx word"},
		{"ErrBlockInServer", func(n *deploy.Nginx) { n.Servers[0].Addr = "a:1;}server{" }, "one nginx word"},
		{"ErrVariableInPath", func(n *deploy.Nginx) { n.AccessLog = "/tmp/$host.log" }, "one nginx word"},
		{"ErrMultilineComment", func(n *deploy.Nginx) { n.Servers[0].Comment = "a\nserver evil:1;" }, "one line"},
		{"ErrNegativeConnections", func(n *deploy.Nginx) { n.WorkerConnections = -1 }, "must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := local()
			tc.mutate(&n)
			if _, err := deploy.RenderNginx(n); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("RenderNginx error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
