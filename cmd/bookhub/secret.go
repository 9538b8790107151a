package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/bookhub/bookhub/config"
)

const secretFile = "jwt-secret"

// jwtSecret returns the configured secret or, in embedded mode only, the one
// kept in the data folder, generating it on first use. generated reports
// whether the secret came from (or was written to) that file.
func jwtSecret(cfg config.Config) (secret []byte, generated bool, err error) {
	if cfg.JWTSecret != "" {
		return []byte(cfg.JWTSecret), false, nil
	}
	if !cfg.Embedded() {
		return nil, false, fmt.Errorf("%s is required when %s is set", config.EnvJWTSecret, config.EnvDatabaseURL)
	}
	path := filepath.Join(cfg.DataDir, secretFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return nil, false, fmt.Errorf("%s holds a secret shorter than 32 bytes: delete it to get a new one", path)
		}
		return []byte(s), true, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, fmt.Errorf("read jwt secret: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("%s: create %s: %w", config.EnvDataDir, cfg.DataDir, err)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	s := hex.EncodeToString(raw)
	// Write a temporary file and hard-link it into place: the link fails if
	// another process won the race, and nobody ever reads a half-written file.
	tmp, err := os.CreateTemp(cfg.DataDir, secretFile+".*")
	if err != nil {
		return nil, false, fmt.Errorf("write jwt secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(s + "\n"); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("write jwt secret: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, false, fmt.Errorf("write jwt secret: %w", err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return jwtSecret(cfg)
	} else if err != nil {
		return nil, false, fmt.Errorf("write jwt secret: %w", err)
	}
	return []byte(s), true, nil
}
