package store

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bookhub/bookhub/auth"
)

// The rules a user account must follow live here, next to the entity, like
// a Book's in validate.go: every writer (CreateUser, UpdateUser, LinkOIDC)
// applies them, so no path can store an account the API would refuse.

// Limits of the user fields, in the units the columns count.
const (
	// MaxEmailLen is the most bytes an email address may have (RFC 5321's
	// path limit less the angle brackets).
	MaxEmailLen = 254
	// MaxDisplayNameLen is the most characters a display name may have.
	MaxDisplayNameLen = 100
	// MaxOIDCLen is the most bytes an OIDC issuer or subject may have.
	MaxOIDCLen = 255
	// MaxPasswordHashLen is the most bytes a stored password hash may have.
	MaxPasswordHashLen = 255
)

// NormalizeEmail checks an email address and returns it as stored: trimmed,
// a bare address (no display name, no angle brackets) as net/mail parses
// it, at most MaxEmailLen bytes. The error's text is a message to show
// after the field's name.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", errors.New("must not be empty")
	case len(s) > MaxEmailLen:
		return "", fmt.Errorf("must be at most %d bytes, got %d", MaxEmailLen, len(s))
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", errors.New("must be a bare email address such as name@example.com")
	}
	return s, nil
}

// emailKey is the form of an email the unique index compares: lower case,
// so "A@x.io" and "a@X.io" are one account on both databases.
func emailKey(email string) string { return strings.ToLower(email) }

// NormalizeDisplayName applies the text rules of a title (see NormalizeText)
// with a limit of MaxDisplayNameLen characters.
func NormalizeDisplayName(s string) (string, error) {
	return normalizeText(s, MaxDisplayNameLen, false)
}

// checkOIDCPart checks an issuer or a subject: not empty, at most
// MaxOIDCLen bytes of UTF-8 without control characters. It is not trimmed:
// the identity provider's value is compared exactly.
func checkOIDCPart(s string) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case len(s) > MaxOIDCLen:
		return fmt.Errorf("must be at most %d bytes, got %d", MaxOIDCLen, len(s))
	case !utf8.ValidString(s):
		return errors.New("must be valid UTF-8")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return errors.New("must not contain control characters")
	}
	return nil
}

// checkPasswordHash checks an encoded hash (not a password: hashing is the
// caller's). It is opaque to the store but must fit its column and one log
// line.
func checkPasswordHash(s string) error {
	switch {
	case len(s) > MaxPasswordHashLen:
		return fmt.Errorf("must be at most %d bytes, got %d", MaxPasswordHashLen, len(s))
	case strings.IndexFunc(s, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0:
		return errors.New("must be printable ASCII without spaces")
	}
	return nil
}

// fieldErrors collects the FieldErrors of one validation.
type fieldErrors []FieldError

func (f *fieldErrors) add(field string, err error) {
	*f = append(*f, FieldError{Field: field, Message: err.Error()})
}

func (f fieldErrors) err(entity string) error {
	if len(f) == 0 {
		return nil
	}
	return &ValidationError{Entity: entity, Fields: f}
}

// normalize applies every rule to a new account and returns it as stored:
//
//   - Email is required unless an OIDC identity is given (OIDC-only
//     accounts may have none), and follows NormalizeEmail;
//   - DisplayName follows NormalizeDisplayName;
//   - Role is one of auth's roles;
//   - OIDCIssuer and OIDCSubject are given together or not at all, and
//     follow checkOIDCPart;
//   - PasswordHash may be empty (no password sign-in) and follows
//     checkPasswordHash.
//
// It fails with a *ValidationError naming every field that breaks a rule.
func (u NewUser) normalize() (NewUser, error) {
	var fe fieldErrors
	var err error
	hasOIDC := u.OIDCIssuer != "" || u.OIDCSubject != ""
	if strings.TrimSpace(u.Email) != "" || !hasOIDC {
		if u.Email, err = NormalizeEmail(u.Email); err != nil {
			fe.add("Email", err)
		}
	} else {
		u.Email = ""
	}
	if u.DisplayName, err = NormalizeDisplayName(u.DisplayName); err != nil {
		fe.add("DisplayName", err)
	}
	if !u.Role.Valid() {
		fe.add("Role", errBadRole)
	}
	if hasOIDC {
		if err := checkOIDCPart(u.OIDCIssuer); err != nil {
			fe.add("OIDCIssuer", err)
		}
		if err := checkOIDCPart(u.OIDCSubject); err != nil {
			fe.add("OIDCSubject", err)
		}
	}
	if err := checkPasswordHash(u.PasswordHash); err != nil {
		fe.add("PasswordHash", err)
	}
	return u, fe.err("user")
}

var errBadRole = fmt.Errorf("must be one of %s, %s or %s", auth.RoleViewer, auth.RoleEditor, auth.RoleAdmin)

// normalize applies the rules to the fields a patch sets and returns it
// with the values to store.
func (p UserPatch) normalize() (UserPatch, error) {
	var fe fieldErrors
	if p.DisplayName != nil {
		name, err := NormalizeDisplayName(*p.DisplayName)
		if err != nil {
			fe.add("DisplayName", err)
		}
		p.DisplayName = &name
	}
	if p.Role != nil && !p.Role.Valid() {
		fe.add("Role", errBadRole)
	}
	if p.PasswordHash != nil {
		if err := checkPasswordHash(*p.PasswordHash); err != nil {
			fe.add("PasswordHash", err)
		}
	}
	return p, fe.err("user")
}
