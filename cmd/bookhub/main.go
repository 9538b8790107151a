// Command bookhub runs the real-time bookstore hub and its helpers.
//
//	bookhub [serve] [flags]     run an instance (the default)
//	bookhub token --sub NAME --role viewer|editor|admin [--ttl 1h]
//	bookhub user create|list|set-role|disable|enable [--email E] [--role R]
//	bookhub healthcheck [--url http://127.0.0.1:8080/readyz]
//	bookhub version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/bookhub/bookhub/events/redisbus"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(cli(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// cli runs one subcommand and returns the process exit code.
func cli(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, getenv, stdout, stderr)
	case "token":
		err = token(args, getenv, stdout, stderr)
	case "user":
		err = userCommand(ctx, args, getenv, stdin, stdout, stderr)
	case "healthcheck":
		err = healthcheck(ctx, args, stderr)
	case "version":
		fmt.Fprintln(stdout, "bookhub", versionString())
	case "help", "-h", "--help":
		usage(stdout)
	default:
		usage(stderr)
		err = fmt.Errorf("unknown command %q", cmd)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintln(stderr, "bookhub:", err)
		return 1
	}
}

// useRedisLogger sends go-redis's own log lines (pool and pub/sub
// reconnects, discarded connections) to logger instead of bare lines on
// stderr. go-redis has one process-wide logger, so this package, which owns
// the process, is the only one that sets it: serve calls it once, as soon
// as the configured logger exists. Library packages and App never do, so
// instances that share a process (tests) keep their own loggers for
// everything else.
func useRedisLogger(logger *slog.Logger) {
	redis.SetLogger(redisbus.NewLogger(logger))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  bookhub [serve] [flags]        run an instance (bookhub serve -h lists the flags)
  bookhub token --sub NAME --role viewer|editor|admin [--ttl 1h]
                                 print a signed access token
  bookhub user create --email E --role viewer|editor|admin [--name N]
                                 create an account; the password is prompted for, or read from stdin
  bookhub user list              list the accounts
  bookhub user set-role --email E --role R
  bookhub user disable|enable --email E
  bookhub healthcheck [--url U]  exit 0 when U (default http://127.0.0.1:8080/readyz) answers 200
  bookhub version                print the version
`)
}
