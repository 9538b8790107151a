package store

import "strings"

// A database URL carries a password, and errors end up in logs, problem
// responses and bug reports. The helpers here keep the password out of every
// error this package returns, even when a driver or parser echoes its input.

// passwordRegion returns the part of a database URL or DSN that may hold a
// password: from the first ':' of the user info up to the last '@'. It is
// deliberately generous; for a malformed input nobody can tell where the
// password ends, and hiding too much only costs some error detail.
func passwordRegion(raw string) string {
	s := raw
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+len("://"):]
	}
	at := strings.LastIndex(s, "@")
	if at < 0 {
		return ""
	}
	userinfo := s[:at]
	colon := strings.Index(userinfo, ":")
	if colon < 0 {
		return ""
	}
	return userinfo[colon+1:]
}

// sharesSecret reports whether msg contains any run of up to four characters
// of secret: a parser that misreads a password may quote only a piece of it.
func sharesSecret(msg, secret string) bool {
	if secret == "" {
		return false
	}
	n := min(4, len(secret))
	for i := 0; i+n <= len(secret); i++ {
		if strings.Contains(msg, secret[i:i+n]) {
			return true
		}
	}
	return false
}

// detail returns err's text for use in a parse error, or a neutral phrase
// when that text might quote part of the password.
func detail(err error, secret string) string {
	msg := err.Error()
	if sharesSecret(msg, secret) {
		return "malformed (details withheld: they may contain the password)"
	}
	return msg
}

// redactedError is an error whose text had a password removed. It does not
// unwrap: the wrapped error's own text would bring the password back.
type redactedError struct{ msg string }

func (e *redactedError) Error() string { return e.msg }

// redact returns err unchanged unless its text contains password, in which
// case it returns an error with the password masked. Wrapping is kept when
// the text is clean, so errors.Is still sees context.DeadlineExceeded and
// the store's sentinel errors.
func redact(err error, password string) error {
	if err == nil || password == "" {
		return err
	}
	msg := err.Error()
	if !strings.Contains(msg, password) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(msg, password, "xxxxx")}
}
