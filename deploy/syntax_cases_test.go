package deploy_test

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestInterpolate(t *testing.T) {
	tests := []struct {
		name, in, want, wantErr string
	}{
		{name: "OK default with colon", in: "a-${X:-dev}-b", want: "a-dev-b"},
		{name: "OK default without colon", in: "${X-dev}", want: "dev"},
		{name: "OK unset braced is empty", in: "x${X}y", want: "xy"},
		{name: "OK unset bare is empty", in: "x$X_1/y", want: "x/y"},
		{name: "OK escaped dollar", in: "$$HOME", want: "$HOME"},
		{name: "OK nothing to expand", in: "mysql://u:p@h/db", want: "mysql://u:p@h/db"},
		{name: "ErrRequired", in: "${X:?set X}", wantErr: "required"},
		{name: "ErrRequiredNoColon", in: "${X?}", wantErr: "required"},
		{name: "ErrUnterminated", in: "${X:-dev", wantErr: "unterminated"},
		{name: "ErrNoName", in: "${:-x}", wantErr: "no variable name"},
		{name: "ErrUnknownModifier", in: "${X:+x}", wantErr: "unsupported modifier"},
		{name: "ErrLoneDollar", in: "cost$", wantErr: "lone $"},
		{name: "ErrBadCharacter", in: "$-x", wantErr: "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := interpolate(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("interpolate(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("interpolate(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseNginx(t *testing.T) {
	t.Run("OK nested blocks, quotes and comments", func(t *testing.T) {
		ds, err := parseNginx(`# top
events { worker_connections 10; }
http {
    map $a $b { default x; '' ''; }
    server { location / { return 200 "a;b { }"; } }  # trailing
}`)
		if err != nil {
			t.Fatal(err)
		}
		http := children(ds, "http")
		if len(http) != 1 {
			t.Fatalf("got %d http blocks, want 1", len(http))
		}
		m := children(http[0].Block, "map")[0]
		if !slices.Equal(m.Args, []string{"$a", "$b"}) || len(m.Block) != 2 || !slices.Equal(m.Block[1].Args, []string{""}) {
			t.Fatalf("map parsed as %+v (block %+v)", m, m.Block)
		}
		loc := children(children(http[0].Block, "server")[0].Block, "location")[0]
		if ret := loc.Block[0]; !slices.Equal(ret.Args, []string{"200", "a;b { }"}) || ret.Line != 5 {
			t.Fatalf("return parsed as %+v at line %d", ret.Args, ret.Line)
		}
	})
	for _, tt := range []struct{ name, src, wantErr string }{
		{"ErrMissingSemicolonAtEOF", "worker_processes 1", "no terminating"},
		{"ErrMissingSemicolonBeforeBrace", "http { sendfile on }", "missing its"},
		{"ErrUnclosedBlock", "http { sendfile on;", "missing }"},
		{"ErrStrayBrace", "sendfile on; }", "unexpected }"},
		{"ErrStraySemicolon", "http { ; }", "without a directive name"},
		{"ErrUnterminatedString", `return 200 "ok;`, "unterminated"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseNginx(tt.src); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("parseNginx(%q) error = %v, want one containing %q", tt.src, err, tt.wantErr)
			}
		})
	}
}

func TestNginxDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 120 * time.Second, true},
		{"120s", 120 * time.Second, true},
		{"2m", 2 * time.Minute, true},
		{"1m30s", 90 * time.Second, true},
		{"500ms", 500 * time.Millisecond, true},
		{"1d", 24 * time.Hour, true},
		{"", 0, false},
		{"-5", 0, false},
		{"2x", 0, false},
		{"s", 0, false},
		{"1.5s", 0, false},
	} {
		name := "OK " + tt.in
		if !tt.ok {
			name = "Err " + tt.in
		}
		t.Run(name, func(t *testing.T) {
			got, err := nginxDuration(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("nginxDuration(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseDockerfile(t *testing.T) {
	t.Run("OK continuations and comments", func(t *testing.T) {
		ins, err := parseDockerfile("# syntax=docker/dockerfile:1\nARG V=1\nFROM golang:${V} AS build\nRUN a \\\n    # inside\n    && b\n\nfrom scratch\n")
		if err != nil {
			t.Fatal(err)
		}
		var cmds []string
		for _, in := range ins {
			cmds = append(cmds, in.Cmd)
		}
		if !slices.Equal(cmds, []string{"ARG", "FROM", "RUN", "FROM"}) {
			t.Fatalf("instructions %v", cmds)
		}
		if !strings.HasPrefix(ins[2].Args, "a ") || !strings.HasSuffix(ins[2].Args, "&& b") || ins[2].Line != 4 {
			t.Fatalf("RUN = %q at line %d", ins[2].Args, ins[2].Line)
		}
	})
	for _, tt := range []struct{ name, src, wantErr string }{
		{"ErrEndsInContinuation", "FROM scratch\nRUN a \\\n", "ends inside"},
		{"ErrMixedCaseInstruction", "From scratch\n", "not an instruction"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseDockerfile(tt.src); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("parseDockerfile(%q) error = %v, want one containing %q", tt.src, err, tt.wantErr)
			}
		})
	}
}

func TestPromQLMetrics(t *testing.T) {
	for _, tt := range []struct {
		name, expr string
		want       []string
		wantErr    string
	}{
		{name: "OK aggregation with grouping first", expr: `sum by (le, route) (rate(a_bucket{x="}{", y=~"$v"}[$__rate_interval]))`, want: []string{"a_bucket"}},
		{name: "OK aggregation with grouping after", expr: `sum(rate(a_total[5m])) without (instance)`, want: []string{"a_total"}},
		{name: "OK binary op and numbers", expr: `histogram_quantile(0.99, b) / on (job) group_left c * 1e3 > bool 0.5`, want: []string{"b", "c"}},
		{name: "OK strings outside matchers", expr: `label_replace(d, "dst", "$1", "src", "(.*)")`, want: []string{"d"}},
		{name: "OK grafana label_values", expr: `label_values(e{job="x"}, instance)`, want: []string{"e"}},
		{name: "OK offset keyword", expr: `f offset 5m`, want: []string{"f"}},
		{name: "ErrUnbalancedMatcher", expr: `g{job="x"`, wantErr: "unbalanced"},
		{name: "ErrUnbalancedRange", expr: `rate(h[5m)`, wantErr: "unbalanced"},
		{name: "ErrUnterminatedString", expr: `label_replace(i, "dst)`, wantErr: "unterminated"},
		{name: "ErrUnterminatedGrouping", expr: `sum by (le j`, wantErr: "unterminated"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := promQLMetrics(tt.expr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("promQLMetrics(%q) = %v, %v; want an error containing %q", tt.expr, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("promQLMetrics(%q) = %v, %v; want %v", tt.expr, got, err, tt.want)
			}
		})
	}
}
