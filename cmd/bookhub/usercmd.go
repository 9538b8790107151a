package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/bookhub/bookhub/accounts"
	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/config"
	"github.com/bookhub/bookhub/store"
)

// userCommand runs `bookhub user create|list|set-role|disable|enable`, the
// operators' tools. They work on the configured database directly, so they
// work before any admin exists (the first admin is made this way) and while
// no instance runs. A role change or a disable also goes on the Redis
// revocation list when BOOKHUB_REDIS_URL is set, so running instances cut
// the user's tokens and sockets at once; without Redis a running embedded
// instance learns it when the user's access token expires (refresh tokens
// die at once either way).
func userCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("user: want create, list, set-role, disable or enable")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("bookhub user "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	email := fs.String("email", "", "the account's email")
	role := fs.String("role", "", "viewer, editor or admin")
	name := fs.String("name", "", "display name (create; default: the email's local part)")
	dataDir := fs.String("data-dir", "", "data folder of the embedded database (default $"+config.EnvDataDir+" or ./data)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(nil, getenv, stderr)
	if err != nil {
		return err
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	env, err := openAccounts(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer env.Close()
	svc := env.accounts
	// The CLI acts as the operator, who is nobody's account.
	operator := auth.Identity{Subject: "cli", Role: auth.RoleAdmin}

	switch sub {
	case "create":
		r, err := auth.ParseRole(*role)
		if err != nil {
			return fmt.Errorf("user create: --role: %w", err)
		}
		if *email == "" {
			return errors.New("user create: --email is required")
		}
		if *name == "" {
			*name, _, _ = strings.Cut(*email, "@")
		}
		pw, err := readPassword(stdin, stderr)
		if err != nil {
			return err
		}
		u, err := svc.CreateUser(ctx, accounts.NewUser{Email: *email, DisplayName: *name, Password: pw, Role: r})
		if err != nil {
			return fmt.Errorf("user create: %w", err)
		}
		fmt.Fprintf(stdout, "created user %d %s (%s)\n", u.ID, u.Email, u.Role)
		return nil
	case "list":
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tROLE\tDISABLED\tSIGN-IN")
		var after int64
		for {
			users, next, err := svc.ListUsers(ctx, store.UserListOptions{Limit: store.MaxUserLimit, AfterID: after})
			if err != nil {
				return fmt.Errorf("user list: %w", err)
			}
			for _, u := range users {
				how := "password"
				if u.PasswordHash == "" {
					how = "oidc"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%t\t%s\n", u.ID, u.Email, u.DisplayName, u.Role, u.Disabled, how)
			}
			if next == 0 {
				return tw.Flush()
			}
			after = next
		}
	case "set-role", "disable", "enable":
		if *email == "" {
			return fmt.Errorf("user %s: --email is required", sub)
		}
		u, err := env.store.GetUserByEmail(ctx, *email)
		if err != nil {
			return fmt.Errorf("user %s: %w", sub, err)
		}
		var c accounts.Change
		switch sub {
		case "set-role":
			r, err := auth.ParseRole(*role)
			if err != nil {
				return fmt.Errorf("user set-role: --role: %w", err)
			}
			c.Role = &r
		default:
			disabled := sub == "disable"
			c.Disabled = &disabled
		}
		if u, err = svc.UpdateUser(ctx, operator, u.ID, c); err != nil {
			return fmt.Errorf("user %s: %w", sub, err)
		}
		fmt.Fprintf(stdout, "user %d %s: role %s, disabled %t\n", u.ID, u.Email, u.Role, u.Disabled)
		return nil
	}
	return fmt.Errorf("user: unknown command %q (want create, list, set-role, disable or enable)", sub)
}

// readPassword prompts twice on a terminal, or reads one line from a pipe
// (`printf '%s\n' "$PW" | bookhub user create ...`). Never a flag: flags
// end up in shell history and in every process listing.
func readPassword(stdin io.Reader, prompt io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(prompt, "again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on stdin (pipe it in, or run in a terminal to be prompted)")
	}
	return line, nil
}
