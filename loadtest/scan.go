package loadtest

import (
	"encoding/binary"
	"errors"
	"unicode/utf16"
	"unicode/utf8"
)

// A subscriber reads every frame the server sends it, tens of thousands a
// second across a run, on the same cores as the servers it measures. A full
// encoding/json decode of an event frame costs several microseconds and a
// dozen allocations, most of it for fields the run never looks at (the
// book's price, dates, the event's origin), and that cost lands in the very
// latencies being measured. So frames are read by a small scanner instead:
// one pass that checks the JSON syntax of the whole frame, as a decode
// would, but keeps only the handful of fields the checks need, as slices of
// the frame, and allocates nothing.

// frameFields are the parts of a server frame the load test reads. Byte
// slices point into the scanned frame, or into scratch for strings that held
// escapes, so they are valid only until the next scan. A field that was
// absent or null is nil (numbers: 0).
type frameFields struct {
	Type, Channel, Epoch []byte
	ID, Event            []byte
	// Title is the book's title, from the nested "book" object.
	Title         []byte
	Code, Message []byte
	Offset        uint64
	BookID        int64

	// scratch holds unescaped strings; it is reused from frame to frame.
	scratch []byte
}

// errFrame is returned for any frame that is not a JSON object with fields
// of the expected types; the caller counts it as malformed, as it would a
// failed json.Unmarshal.
var errFrame = errors.New("malformed frame")

// maxDepth bounds the nesting of skipped values, so a hostile frame cannot
// recurse the scanner without limit; encoding/json has the same bound.
const maxDepth = 10000

// scan fills f from data, a JSON object such as
//
//	{"type":"event","channel":"books","offset":7,"epoch":"9f1c…","id":"…",
//	 "event":"book.created","book_id":1,"book":{"title":"…",…},…}
//
// It accepts exactly the frames json.Unmarshal accepts into the equivalent
// struct, with three deliberate differences: a bare null is not a frame,
// keys match case-sensitively (the server writes them in lower case), and
// invalid UTF-8 inside strings is
// kept rather than replaced (titles are compared byte by byte, so that
// cannot make a foreign title look like one of this run's). When a key
// repeats, its last value wins. It returns errFrame for malformed JSON and
// for a known field of the wrong type.
func (f *frameFields) scan(data []byte) error {
	scratch := f.scratch[:0]
	*f = frameFields{}
	s := scanner{data: data, f: f, scratch: scratch}
	err := s.frame()
	f.scratch = s.scratch
	return err
}

// scanner is the state of one scan.
type scanner struct {
	data    []byte
	pos     int
	f       *frameFields
	scratch []byte
}

func (s *scanner) frame() error {
	s.ws()
	if err := s.object(inFrame, 0); err != nil {
		return err
	}
	s.ws()
	if s.pos != len(s.data) {
		return errFrame // trailing data after the object
	}
	return nil
}

// topField reads the value of one key of the frame itself.
func (s *scanner) topField(key []byte) error {
	f := s.f
	switch string(key) { // no allocation: a switch on string(bytes)
	case "type":
		return s.stringInto(&f.Type)
	case "channel":
		return s.stringInto(&f.Channel)
	case "epoch":
		return s.stringInto(&f.Epoch)
	case "id":
		return s.stringInto(&f.ID)
	case "event":
		return s.stringInto(&f.Event)
	case "code":
		return s.stringInto(&f.Code)
	case "message":
		return s.stringInto(&f.Message)
	case "offset":
		return s.uintInto(&f.Offset)
	case "book_id":
		return s.intInto(&f.BookID)
	case "book":
		f.Title = nil
		if s.literal("null") {
			return nil
		}
		if s.peek() != '{' {
			return errFrame
		}
		return s.object(inBook, 0)
	}
	return s.skip(1)
}

// bookField reads the value of one key of the nested book.
func (s *scanner) bookField(key []byte) error {
	if string(key) == "title" {
		return s.stringInto(&s.f.Title)
	}
	return s.skip(2)
}

// objectKind says whose fields an object holds, so that object can dispatch
// without a func value (whose arguments would escape to the heap).
type objectKind uint8

const (
	inFrame   objectKind = iota // the frame itself
	inBook                      // the frame's "book"
	inSkipped                   // anything else: checked, not kept
)

// object reads {"key":value,...} and hands every value to the reader for
// kind; depth is the nesting of a skipped object.
func (s *scanner) object(kind objectKind, depth int) error {
	if s.peek() != '{' {
		return errFrame
	}
	s.pos++
	s.ws()
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		s.ws()
		key, escaped, err := s.str()
		if err != nil {
			return err
		}
		if escaped && kind != inSkipped {
			// Escaped keys are legal JSON and name the same field.
			start := len(s.scratch)
			out, ok := unescape(s.scratch, key)
			if !ok {
				return errFrame
			}
			s.scratch, key = out, out[start:]
		}
		s.ws()
		if s.peek() != ':' {
			return errFrame
		}
		s.pos++
		s.ws()
		switch kind {
		case inFrame:
			err = s.topField(key)
		case inBook:
			err = s.bookField(key)
		default:
			err = s.skip(depth + 1)
		}
		if err != nil {
			return err
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return errFrame
		}
	}
}

// skip consumes any JSON value, checking its syntax.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return errFrame
	}
	switch c := s.peek(); {
	case c == '"':
		_, _, err := s.str()
		return err
	case c == '{':
		return s.object(inSkipped, depth)
	case c == '[':
		s.pos++
		s.ws()
		if s.peek() == ']' {
			s.pos++
			return nil
		}
		for {
			s.ws()
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			s.ws()
			switch s.peek() {
			case ',':
				s.pos++
			case ']':
				s.pos++
				return nil
			default:
				return errFrame
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := s.number()
		return err
	case s.literal("true"), s.literal("false"), s.literal("null"):
		return nil
	}
	return errFrame
}

// stringInto stores a string value (or nil for null) in dst.
func (s *scanner) stringInto(dst *[]byte) error {
	if s.literal("null") {
		*dst = nil
		return nil
	}
	if s.peek() != '"' {
		return errFrame // a number or object where a string belongs
	}
	raw, escaped, err := s.str()
	if err != nil {
		return err
	}
	if !escaped {
		*dst = raw
		return nil
	}
	start := len(s.scratch)
	out, ok := unescape(s.scratch, raw)
	if !ok {
		return errFrame
	}
	s.scratch = out
	*dst = out[start:len(out):len(out)]
	return nil
}

// uintInto stores a non-negative integer value in dst; null leaves it
// alone, as json.Unmarshal does.
func (s *scanner) uintInto(dst *uint64) error {
	if s.literal("null") {
		return nil
	}
	raw, err := s.number()
	if err != nil {
		return err
	}
	v, ok := parseUint(raw)
	if !ok {
		return errFrame
	}
	*dst = v
	return nil
}

// intInto stores an integer value in dst; null leaves it alone.
func (s *scanner) intInto(dst *int64) error {
	if s.literal("null") {
		return nil
	}
	raw, err := s.number()
	if err != nil {
		return err
	}
	neg := len(raw) > 0 && raw[0] == '-'
	if neg {
		raw = raw[1:]
	}
	u, ok := parseUint(raw)
	switch {
	case !ok:
		return errFrame
	case !neg && u > 1<<63-1, neg && u > 1<<63:
		return errFrame
	case neg:
		*dst = -int64(u-1) - 1 // fits even for the most negative value
	default:
		*dst = int64(u)
	}
	return nil
}

// parseUint parses a run of decimal digits; a fraction, an exponent, a
// sign or an overflow fail, as they do for an integer field in encoding/json.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// number consumes a JSON number and returns its text.
func (s *scanner) number() ([]byte, error) {
	start := s.pos
	if s.peek() == '-' {
		s.pos++
	}
	switch c := s.peek(); {
	case c == '0':
		s.pos++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return nil, errFrame
	}
	if s.peek() == '.' {
		s.pos++
		if !s.digits() {
			return nil, errFrame
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.pos++
		if c := s.peek(); c == '+' || c == '-' {
			s.pos++
		}
		if !s.digits() {
			return nil, errFrame
		}
	}
	return s.data[start:s.pos], nil
}

// digits consumes one or more digits and reports whether there was one.
func (s *scanner) digits() bool {
	start := s.pos
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos > start
}

// str consumes a JSON string and returns its raw contents (between the
// quotes) and whether they hold an escape. It checks escapes and rejects
// control characters, as the JSON grammar requires.
func (s *scanner) str() ([]byte, bool, error) {
	data, i := s.data, s.pos
	if i >= len(data) || data[i] != '"' {
		return nil, false, errFrame
	}
	i++
	start, escaped := i, false
	for {
		i = skipPlain(data, i)
		if i >= len(data) {
			return nil, false, errFrame // unterminated
		}
		switch data[i] {
		case '"':
			s.pos = i + 1
			return data[start:i], escaped, nil
		case '\\':
			escaped = true
			if i+1 >= len(data) {
				return nil, false, errFrame
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(data) {
					return nil, false, errFrame
				}
				if _, ok := hex4(data[i+2 : i+6]); !ok {
					return nil, false, errFrame
				}
				i += 6
			default:
				return nil, false, errFrame
			}
		default: // a control character
			return nil, false, errFrame
		}
	}
}

// skipPlain returns the index of the first byte at or after i that is not
// plain. Plain characters are most of every frame, so it tests eight bytes
// at a time (the classic "has a zero byte" bit trick, for the quote, the
// backslash and bytes below 0x20) before finishing byte by byte.
func skipPlain(data []byte, i int) int {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	for i+8 <= len(data) {
		v := binary.LittleEndian.Uint64(data[i:])
		q, b := v^(lsb*'"'), v^(lsb*'\\')
		// Each term has a high bit set iff some byte of v is a quote, a
		// backslash or below 0x20, respectively.
		if ((q-lsb)&^q|(b-lsb)&^b|(v-lsb*0x20)&^v)&msb != 0 {
			break
		}
		i += 8
	}
	for i < len(data) && plain[data[i]] {
		i++
	}
	return i
}

// plain marks the bytes that stand for themselves inside a JSON string:
// everything but the quote, the backslash and control characters.
var plain = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return t
}()

// literal consumes word (true, false or null) if it comes next.
func (s *scanner) literal(word string) bool {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return false
	}
	s.pos += len(word)
	return true
}

func (s *scanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *scanner) ws() {
	data, i := s.data, s.pos
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	s.pos = i
}

// hex4 parses the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// unescape appends the decoded form of raw (a string's contents, already
// checked by str) to dst. Surrogate pairs combine; a lone surrogate becomes
// U+FFFD, as in encoding/json.
func unescape(dst, raw []byte) ([]byte, bool) {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		if i+1 >= len(raw) {
			return dst, false
		}
		switch raw[i+1] {
		case '"', '\\', '/':
			dst = append(dst, raw[i+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			if i+6 > len(raw) {
				return dst, false
			}
			r, ok := hex4(raw[i+2 : i+6])
			if !ok {
				return dst, false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2, _ = hex4(raw[i+2 : i+6])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					i += 6
					r = dec
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			return dst, false
		}
		i += 2
	}
	return dst, true
}
