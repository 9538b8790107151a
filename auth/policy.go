package auth

import (
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The password policy, after NIST SP 800-63B: length and a deny list, no
// composition rules (they push people to "Password1!").
const (
	// MinPasswordRunes is the shortest password accepted, in characters.
	MinPasswordRunes = 10
	// MaxPasswordBytes is the longest password accepted, in bytes of UTF-8:
	// room for any passphrase or manager-generated password while bounding
	// what a login request makes the server hash.
	MaxPasswordBytes = 256
	// minDistinctRunes refuses "aaaaaaaaaa" and "ababababab".
	minDistinctRunes = 3
)

// ErrWeakPassword is wrapped by CheckPassword's errors; the message says why
// and may be shown to the user.
var ErrWeakPassword = errors.New("weak password")

// commonPasswords is one lowercase password per line: the most used
// passwords of public breach corpora plus obvious bookhub-specific ones.
// Entries shorter than MinPasswordRunes are kept so the list stays right if
// the minimum is ever lowered.
//
//go:embed commonpasswords.txt
var commonPasswords string

// CheckPassword applies the password policy to pw: valid UTF-8, at least
// MinPasswordRunes characters, at most MaxPasswordBytes bytes, at least 3
// distinct characters, not one of the most common passwords (nor one of them
// followed by digits or symbols, like "dragon2026!"), and not equal to any of
// related, compared case-insensitively. Pass the email, its local part and
// the display name as related; for an email the local part is also checked
// when left out. Every refusal wraps ErrWeakPassword.
func CheckPassword(pw string, related ...string) error {
	weak := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrWeakPassword, fmt.Sprintf(format, args...))
	}
	if !utf8.ValidString(pw) {
		return weak("password is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(pw); n < MinPasswordRunes {
		return weak("password has %d characters, want at least %d", n, MinPasswordRunes)
	}
	if len(pw) > MaxPasswordBytes {
		return weak("password is %d bytes long, want at most %d", len(pw), MaxPasswordBytes)
	}
	if distinctRunes(pw, minDistinctRunes) < minDistinctRunes {
		return weak("password repeats too few different characters")
	}
	if isCommonPassword(pw) {
		return weak("password is one of the most commonly used passwords")
	}
	if base := strings.TrimRightFunc(pw, func(r rune) bool { return !unicode.IsLetter(r) }); base != pw && base != "" && isCommonPassword(base) {
		return weak("password is a commonly used password with digits or symbols appended")
	}
	for _, r := range related {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if strings.EqualFold(pw, r) {
			return weak("password must not be your email address or name")
		}
		if local, _, ok := strings.Cut(r, "@"); ok && local != "" && strings.EqualFold(pw, local) {
			return weak("password must not be your email address or name")
		}
	}
	return nil
}

// isCommonPassword scans the embedded list; a few hundred EqualFolds cost
// microseconds, next to milliseconds of argon2, and need no global set.
func isCommonPassword(pw string) bool {
	for line := range strings.Lines(commonPasswords) {
		if strings.EqualFold(strings.TrimRight(line, "\r\n"), pw) {
			return true
		}
	}
	return false
}

// distinctRunes counts the different runes of s, stopping at enough.
func distinctRunes(s string, enough int) int {
	var seen []rune
	for _, r := range s {
		if !slices.Contains(seen, r) {
			seen = append(seen, r)
			if len(seen) >= enough {
				break
			}
		}
	}
	return len(seen)
}
