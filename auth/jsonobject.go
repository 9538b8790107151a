package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// This file walks the two small JSON objects of a token (its header and its
// claims) without reflection, maps or per-value allocations. encoding/json
// stays the authority on what is JSON: json.Valid accepts the document
// before the walk, and any string with an escape or invalid UTF-8 is decoded
// by json.Unmarshal, so every name and value means exactly what
// encoding/json says it means. The walk only finds where members begin and
// end.

var (
	errNotObject = errors.New("not a JSON object")
	errJSON      = errors.New("not valid JSON")
	errNotString = errors.New("not a JSON string")
)

// eachMember calls fn with the name and the raw value of every member of
// the JSON object b, in order, and stops at fn's first error. b must pass
// json.Valid; the walk still checks its bounds, so input that somehow did
// not cannot make it panic.
func eachMember(b []byte, fn func(name, value []byte) error) error {
	if !json.Valid(b) {
		return errJSON
	}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errNotObject
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return errJSON
		}
		end := skipString(b, i)
		name, err := stringValue(b[i:end])
		if err != nil {
			return err
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return errJSON
		}
		i = skipSpace(b, i+1)
		end = skipValue(b, i)
		if end <= i {
			return errJSON
		}
		if err := fn(name, b[i:end]); err != nil {
			return err
		}
		i = skipSpace(b, end)
		switch {
		case i >= len(b):
			return errJSON
		case b[i] == '}':
			return nil
		case b[i] != ',':
			return errJSON
		}
		i = skipSpace(b, i+1)
	}
}

// eachElement calls fn with every element of the raw JSON array b (a value
// handed out by eachMember), in order.
func eachElement(b []byte, fn func(value []byte) error) error {
	if len(b) == 0 || b[0] != '[' {
		return errJSON
	}
	i := skipSpace(b, 1)
	if i < len(b) && b[i] == ']' {
		return nil
	}
	for {
		end := skipValue(b, i)
		if end <= i {
			return errJSON
		}
		if err := fn(b[i:end]); err != nil {
			return err
		}
		i = skipSpace(b, end)
		switch {
		case i >= len(b):
			return errJSON
		case b[i] == ']':
			return nil
		case b[i] != ',':
			return errJSON
		}
		i = skipSpace(b, i+1)
	}
}

// stringValue returns the characters of the raw JSON string b. Without an
// escape and in valid UTF-8 they are b's own bytes (no copy); otherwise
// encoding/json decodes them, so escapes, surrogates and invalid bytes come
// out exactly as encoding/json would decode them into a string field.
func stringValue(b []byte) ([]byte, error) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return nil, errNotString
	}
	inner := b[1 : len(b)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return inner, nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// isNull reports whether the raw JSON value b is null.
func isNull(b []byte) bool { return string(b) == "null" }

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string that starts at b[i] ('"').
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++ // whatever is escaped cannot end the string
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value that starts at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	}
	// A number, true, false or null: up to the next delimiter.
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}
