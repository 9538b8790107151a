package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/config"
)

// TestUserCommands runs the operators' commands on an embedded data folder,
// then serves it: the accounts they made sign in, with their roles.
func TestUserCommands(t *testing.T) {
	dir := t.TempDir()
	env := func(k string) string {
		return map[string]string{config.EnvDataDir: dir, config.EnvJWTSecret: testSecret}[k]
	}
	run := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := cli(testCtx(t), append([]string{"user"}, args...), env, strings.NewReader(stdin), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, stderr := run(userPassword+"\n", "create", "--email", "Root@Example.com", "--role", "admin"); code != 0 || !strings.Contains(out, "created user 1") {
		t.Fatalf("create admin: exit %d, %q %q", code, out, stderr)
	}
	if code, _, stderr := run(userPassword+"\n", "create", "--email", "ed@example.com", "--role", "editor", "--name", "Ed"); code != 0 {
		t.Fatalf("create editor: exit %d, %q", code, stderr)
	}
	for name, tc := range map[string]struct {
		stdin string
		args  []string
		want  string
	}{
		"no password on stdin": {"", []string{"create", "--email", "x@example.com", "--role", "viewer"}, "no password"},
		"weak password":        {"password1\n", []string{"create", "--email", "x@example.com", "--role", "viewer"}, "password"},
		"no such flag":         {userPassword + "\n", []string{"create", "--email", "x@example.com", "--role", "viewer", "--password", "p"}, "not defined"},
		"taken email":          {userPassword + "\n", []string{"create", "--email", "ED@example.com", "--role", "viewer"}, "conflict"},
		"bad role":             {"", []string{"set-role", "--email", "ed@example.com", "--role", "god"}, "role"},
		"unknown account":      {"", []string{"disable", "--email", "nobody@example.com"}, "not found"},
		"unknown subcommand":   {"", []string{"explode"}, "unknown command"},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := run(tc.stdin, tc.args...)
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q, want it to mention %q", code, stderr, tc.want)
			}
		})
	}
	if code, out, _ := run("", "set-role", "--email", "ed@example.com", "--role", "viewer"); code != 0 || !strings.Contains(out, "role viewer") {
		t.Fatalf("set-role: exit %d %q", code, out)
	}
	if code, out, _ := run("", "disable", "--email", "ed@example.com"); code != 0 || !strings.Contains(out, "disabled true") {
		t.Fatalf("disable: exit %d %q", code, out)
	}
	code, out, _ := run("", "list")
	if code != 0 || !strings.Contains(out, "Root@Example.com") || !strings.Contains(out, "ed@example.com") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}

	app := startApp(t, "users", map[string]string{config.EnvDataDir: dir})
	base := "http://" + app.Addr()
	if p := login(t, base, "root@example.com", userPassword); p.User.Role != "admin" {
		t.Fatalf("root signs in as %q", p.User.Role)
	}
	if resp := do(t, "POST", base+"/api/v1/auth/login", "", map[string]string{"email": "ed@example.com", "password": userPassword}, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("disabled ed signs in: %s", resp.Status)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
