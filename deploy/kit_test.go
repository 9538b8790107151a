package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/bookhub/bookhub/deploy"
)

// kit is every deployment file, parsed. Checks read it; the mutation tests
// load a fresh one and break it on purpose.
type kit struct {
	root       string
	compose    composeFile
	nginx      []*directive
	prometheus promConfig
	dockerfile []instruction
	dashboard  dashboard
	datasource grafanaDatasources
	providers  grafanaProviders
	k6         map[string]string // file name -> contents
	gitignore  string
	raw        map[string]string // path -> contents, for the mutation tests
}

type composeFile struct {
	Services map[string]*service `yaml:"services"`
	Volumes  map[string]any      `yaml:"volumes"`
}

type service struct {
	Image         string            `yaml:"image"`
	Build         *build            `yaml:"build"`
	Command       []string          `yaml:"command"`
	Profiles      []string          `yaml:"profiles"`
	ContainerName string            `yaml:"container_name"`
	Environment   map[string]string `yaml:"environment"`
	DependsOn     dependsOn         `yaml:"depends_on"`
	Healthcheck   *healthcheck      `yaml:"healthcheck"`
	Ports         []string          `yaml:"ports"`
	Volumes       []string          `yaml:"volumes"`
}

type build struct {
	Context    string            `yaml:"context"`
	Dockerfile string            `yaml:"dockerfile"`
	Args       map[string]string `yaml:"args"`
}

type healthcheck struct {
	Test    []string `yaml:"test"`
	Disable bool     `yaml:"disable"`
}

// dependsOn accepts both compose forms: a list of names (condition
// service_started) and a map of name -> {condition}.
type dependsOn map[string]string

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = dependsOn{}
	switch n.Kind {
	case yaml.SequenceNode:
		var names []string
		if err := n.Decode(&names); err != nil {
			return fmt.Errorf("depends_on list: %w", err)
		}
		for _, name := range names {
			(*d)[name] = "service_started"
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := n.Decode(&m); err != nil {
			return fmt.Errorf("depends_on map: %w", err)
		}
		for name, v := range m {
			(*d)[name] = v.Condition
		}
	default:
		return fmt.Errorf("line %d: depends_on must be a list or a map", n.Line)
	}
	return nil
}

type promConfig struct {
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Datasource *dsRef          `json:"datasource"`
			Query      json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int     `json:"id"`
	Type       string  `json:"type"`
	Title      string  `json:"title"`
	Datasource *dsRef  `json:"datasource"`
	Panels     []panel `json:"panels"` // collapsed rows
	Targets    []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaDatasources struct {
	Datasources []struct {
		Name string `yaml:"name"`
		UID  string `yaml:"uid"`
		Type string `yaml:"type"`
		URL  string `yaml:"url"`
	} `yaml:"datasources"`
}

type grafanaProviders struct {
	Providers []grafanaProvider `yaml:"providers"`
}

type grafanaProvider struct {
	Name    string `yaml:"name"`
	Type    string `yaml:"type"`
	Options struct {
		Path string `yaml:"path"`
	} `yaml:"options"`
}

// k6Scripts are the load tests every checkout must carry.
var k6Scripts = []string{"rest_crud.js", "ws_fanout.js", "scaling.js"}

// Paths of the kit, relative to the repository root.
const (
	composePath       = "docker-compose.yml"
	dockerfilePath    = "Dockerfile"
	nginxPath         = deploy.NginxPath
	nginxTemplatePath = "deploy/nginx.conf.tmpl"
	prometheusPath    = "deploy/prometheus.yml"
	dashboardPath     = "deploy/grafana/dashboards/bookhub.json"
	datasourcePath    = "deploy/grafana/provisioning/datasources/prometheus.yml"
	providersPath     = "deploy/grafana/provisioning/dashboards/bookhub.yml"
	k6Dir             = "loadtest/k6"
)

// loadKit reads and parses every file of the kit; a file that does not
// parse fails the test at once, since no check could run on it.
func loadKit(t *testing.T) *kit {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	k := &kit{root: root, k6: map[string]string{}, raw: map[string]string{}}
	read := func(rel string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatalf("read %s: %v", rel, err)
		}
		k.raw[rel] = string(b)
		return string(b)
	}
	decodeYAML := func(rel string, v any) {
		t.Helper()
		if err := yaml.Unmarshal([]byte(read(rel)), v); err != nil {
			t.Fatalf("parse %s: %v", rel, err)
		}
	}
	decodeYAML(composePath, &k.compose)
	decodeYAML(prometheusPath, &k.prometheus)
	decodeYAML(datasourcePath, &k.datasource)
	decodeYAML(providersPath, &k.providers)
	if k.nginx, err = parseNginx(read(nginxPath)); err != nil {
		t.Fatalf("parse %s: %v", nginxPath, err)
	}
	if k.dockerfile, err = parseDockerfile(read(dockerfilePath)); err != nil {
		t.Fatalf("parse %s: %v", dockerfilePath, err)
	}
	if err := json.Unmarshal([]byte(read(dashboardPath)), &k.dashboard); err != nil {
		t.Fatalf("parse %s: %v", dashboardPath, err)
	}
	for _, name := range append([]string{"package.json", "tsconfig.json"}, k6Scripts...) {
		b, err := os.ReadFile(filepath.Join(root, k6Dir, name))
		if err == nil {
			k.k6[name] = string(b)
		} // a missing file is reported by its check, by name
	}
	if b, err := os.ReadFile(filepath.Join(root, ".gitignore")); err == nil {
		k.gitignore = string(b)
	}
	return k
}

// bookhubServices returns the compose services that run the bookhub image
// (built from this repository), sorted by name.
func (k *kit) bookhubServices() []string {
	var out []string
	for name, s := range k.compose.Services {
		if s.Build != nil && (s.Build.Context == "." || s.Build.Context == "./") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// replicas are the bookhub services `docker compose up` starts (no profile):
// each one is a fixed replica with its own instance name.
func (k *kit) replicas() []string {
	var out []string
	for _, name := range k.bookhubServices() {
		if len(k.compose.Services[name].Profiles) == 0 {
			out = append(out, name)
		}
	}
	return out
}

// env returns a service's variable with compose defaults applied.
func (k *kit) env(svc, key string) (string, bool, error) {
	s := k.compose.Services[svc]
	if s == nil {
		return "", false, fmt.Errorf("no service %q", svc)
	}
	raw, ok := s.Environment[key]
	if !ok {
		return "", false, nil
	}
	v, err := interpolate(raw)
	return v, true, err
}

// serviceNames lists compose services, sorted, for failure messages.
func (k *kit) serviceNames() []string {
	var out []string
	for name := range k.compose.Services {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
