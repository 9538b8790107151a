package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/bookhub/bookhub/deploy"
	"github.com/bookhub/bookhub/internal/testenv"
)

// Nginx is the load balancer of a cluster: the repository's template
// (deploy/nginx.conf.tmpl) rendered for the instances' loopback ports and
// run by the nginx on this machine, with its pid file, temporary folders
// and logs in the test's own folder.
type Nginx struct {
	// Addr is the host:port nginx listens on.
	Addr string
	// Dir is nginx's prefix: nginx.conf, error.log, access.log and the
	// runtime files live there.
	Dir string
	// WorkerConnections is the rendered worker_connections: each proxied
	// socket takes two of one worker's.
	WorkerConnections int
	proc              *process
}

// nginxBinary finds nginx on PATH or where Debian installs it.
func nginxBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if fileExists("/usr/sbin/nginx") {
		return "/usr/sbin/nginx"
	}
	testenv.Unavailable(t, "this test runs the load balancer config under a real nginx: install it (apt-get install nginx-light)")
	return ""
}

// startNginx renders the template for servers and runs nginx in the
// foreground until stop.
func startNginx(bin, dir, listen string, servers []string) (*Nginx, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	nofile := openFileLimit()
	n := deploy.Nginx{
		Purpose:    "internal/cluster, for a test",
		Listen:     listen,
		RuntimeDir: dir,
		AccessLog:  filepath.Join(dir, "access.log"),
		ErrorLog:   filepath.Join(dir, "error.log"),
		// The limit nginx may raise itself to: its hard limit.
		WorkerRlimitNofile: nofile,
		WorkerConnections:  min(deploy.DefaultWorkerConnections, nofile),
	}
	if os.Geteuid() == 0 {
		// Workers would run as nobody, who cannot enter the test's
		// private folder to buffer a large request body.
		n.User = "root"
	}
	for _, s := range servers {
		n.Servers = append(n.Servers, deploy.NginxServer{Addr: s})
	}
	conf, err := deploy.RenderNginx(n)
	if err != nil {
		return nil, err
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return nil, err
	}
	lb := &Nginx{Addr: listen, Dir: dir, WorkerConnections: n.WorkerConnections}
	// -e: errors found before the config is read go to the same log.
	lb.proc, err = startProcess("nginx", filepath.Join(dir, "stderr.log"), os.Environ(), bin,
		"-p", dir+"/", "-c", confPath, "-e", lb.errorLog(), "-g", "daemon off;")
	if err != nil {
		return nil, err
	}
	if err := lb.proc.waitHTTP("http://"+listen+"/lb/healthz", 10*time.Second); err != nil {
		lb.proc.kill()
		return nil, fmt.Errorf("%w\nnginx error log:\n%s", err, tail(lb.errorLog(), 20))
	}
	return lb, nil
}

func (lb *Nginx) errorLog() string { return filepath.Join(lb.Dir, "error.log") }

// AccessLog is the path of nginx's access log (JSON lines, one per request
// or finished socket, naming the upstream that served it).
func (lb *Nginx) AccessLog() string { return filepath.Join(lb.Dir, "access.log") }

// stop ends nginx with SIGTERM (its fast shutdown).
func (lb *Nginx) stop() error {
	if err := lb.proc.terminate(syscall.SIGTERM, 10*time.Second); err != nil {
		return fmt.Errorf("%w\n%s", err, tail(lb.errorLog(), 20))
	}
	return nil
}

// openFileLimit is this process's hard RLIMIT_NOFILE, capped at the
// template's default: what nginx's workers may raise their own limit to.
func openFileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Max == 0 {
		return 1024
	}
	return int(min(rl.Max, deploy.DefaultWorkerRlimitNofile))
}
