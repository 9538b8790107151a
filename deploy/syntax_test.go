package deploy_test

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// interpolate expands compose-style variables the way `docker compose`
// would with an empty environment: ${VAR:-default} and ${VAR-default} give
// the default, ${VAR} and $VAR give "", $$ is a literal $. ${VAR:?msg} and
// ${VAR?msg} are refused, since the kit must start with no setup.
func interpolate(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("%q: lone $ at the end (write $$ for a literal $)", s)
		}
		switch next := s[i+1]; {
		case next == '$':
			b.WriteByte('$')
			i++
		case next == '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf("%q: unterminated ${", s)
			}
			expr := s[i+2 : i+2+end]
			v, err := expandBraced(expr)
			if err != nil {
				return "", fmt.Errorf("%q: %w", s, err)
			}
			b.WriteString(v)
			i += 2 + end
		case isNameByte(next, true):
			j := i + 1
			for j < len(s) && isNameByte(s[j], false) {
				j++
			}
			i = j - 1 // unset variable: expands to ""
		default:
			return "", fmt.Errorf("%q: invalid character %q after $ (write $$ for a literal $)", s, next)
		}
	}
	return b.String(), nil
}

func expandBraced(expr string) (string, error) {
	n := 0
	for n < len(expr) && isNameByte(expr[n], n == 0) {
		n++
	}
	if n == 0 {
		return "", fmt.Errorf("${%s}: no variable name", expr)
	}
	name, rest := expr[:n], expr[n:]
	switch {
	case rest == "":
		return "", nil
	case strings.HasPrefix(rest, ":-"):
		return rest[2:], nil
	case strings.HasPrefix(rest, "-"):
		return rest[1:], nil
	case strings.HasPrefix(rest, ":?"), strings.HasPrefix(rest, "?"):
		return "", fmt.Errorf("${%s} is required with no default, so the kit does not start without setup", name)
	default:
		return "", fmt.Errorf("${%s}: unsupported modifier %q", name, rest)
	}
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || unicode.IsLetter(rune(c)) || (!first && unicode.IsDigit(rune(c)))
}

// directive is one nginx directive with its arguments and, for block
// directives such as http or location, its children.
type directive struct {
	Name  string
	Args  []string
	Block []*directive // nil for simple directives
	Line  int
}

// parseNginx parses nginx's configuration syntax: words, quoted strings,
// # comments, ";"-terminated directives and {} blocks. It checks structure
// only, not directive names.
func parseNginx(src string) ([]*directive, error) {
	toks, err := tokenizeNginx(src)
	if err != nil {
		return nil, err
	}
	pos := 0
	ds, err := parseBlock(toks, &pos, false)
	if err != nil {
		return nil, err
	}
	return ds, nil
}

type token struct {
	text   string
	quoted bool
	line   int
}

func tokenizeNginx(src string) ([]token, error) {
	var toks []token
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch c {
		case '\n':
			line++
			i++
		case ' ', '\t', '\r':
			i++
		case '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case '{', '}', ';':
			toks = append(toks, token{text: string(c), line: line})
			i++
		case '"', '\'':
			start := line
			var b strings.Builder
			i++
			for ; i < len(src) && src[i] != c; i++ {
				if src[i] == '\\' && i+1 < len(src) {
					i++
				}
				if src[i] == '\n' {
					line++
				}
				b.WriteByte(src[i])
			}
			if i >= len(src) {
				return nil, fmt.Errorf("line %d: unterminated %c string", start, c)
			}
			i++
			toks = append(toks, token{text: b.String(), quoted: true, line: start})
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n{};#\"'", rune(src[j])) {
				j++
			}
			toks = append(toks, token{text: src[i:j], line: line})
			i = j
		}
	}
	return toks, nil
}

func parseBlock(toks []token, pos *int, nested bool) ([]*directive, error) {
	var out []*directive
	for *pos < len(toks) {
		t := toks[*pos]
		if !t.quoted && t.text == "}" {
			if !nested {
				return nil, fmt.Errorf("line %d: unexpected }", t.line)
			}
			*pos++
			return out, nil
		}
		if !t.quoted && (t.text == "{" || t.text == ";") {
			return nil, fmt.Errorf("line %d: unexpected %q without a directive name", t.line, t.text)
		}
		d := &directive{Name: t.text, Line: t.line}
		*pos++
		for {
			if *pos >= len(toks) {
				return nil, fmt.Errorf("line %d: directive %q has no terminating \";\" or block", d.Line, d.Name)
			}
			a := toks[*pos]
			*pos++
			if !a.quoted && a.text == ";" {
				break
			}
			if !a.quoted && a.text == "{" {
				block, err := parseBlock(toks, pos, true)
				if err != nil {
					return nil, err
				}
				d.Block = block
				if d.Block == nil {
					d.Block = []*directive{}
				}
				break
			}
			if !a.quoted && a.text == "}" {
				return nil, fmt.Errorf("line %d: directive %q is missing its \";\"", d.Line, d.Name)
			}
			d.Args = append(d.Args, a.text)
		}
		out = append(out, d)
	}
	if nested {
		return nil, fmt.Errorf("unterminated block: missing }")
	}
	return out, nil
}

// children returns the directives named name directly inside ds.
func children(ds []*directive, name string) []*directive {
	var out []*directive
	for _, d := range ds {
		if d.Name == name {
			out = append(out, d)
		}
	}
	return out
}

// nginxDuration parses nginx time values: a plain number is seconds;
// otherwise number+unit groups such as "120s", "2m" or "1m30s" (units ms, s,
// m, h, d).
func nginxDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	units := []struct {
		suffix string
		d      time.Duration
	}{{"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}}
	var total time.Duration
	rest := s
	for rest != "" {
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 0 {
			return 0, fmt.Errorf("time %q is not an nginx time (e.g. 120s, 2m)", s)
		}
		v, _ := strconv.Atoi(rest[:n])
		rest = rest[n:]
		matched := false
		for _, u := range units {
			if strings.HasPrefix(rest, u.suffix) {
				total += time.Duration(v) * u.d
				rest = rest[len(u.suffix):]
				matched = true
				break
			}
		}
		if !matched {
			return 0, fmt.Errorf("time %q is not an nginx time (e.g. 120s, 2m)", s)
		}
	}
	if s == "" {
		return 0, fmt.Errorf("empty time value")
	}
	return total, nil
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Cmd  string // upper case: FROM, RUN, ...
	Args string
	Line int
}

// parseDockerfile splits a Dockerfile into instructions. Comments and parser
// directives are dropped; a trailing backslash continues the instruction.
func parseDockerfile(src string) ([]instruction, error) {
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, raw := range strings.Split(src, "\n") {
		line := strings.TrimSpace(raw)
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() > 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue // blank line or comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\"))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(line)
		text := cur.String()
		cur.Reset()
		cmd, args, _ := strings.Cut(text, " ")
		if cmd == "" || strings.ToUpper(cmd) != cmd && strings.ToLower(cmd) != cmd {
			return nil, fmt.Errorf("line %d: %q is not an instruction", start, text)
		}
		out = append(out, instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start})
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("line %d: file ends inside a continued instruction", start)
	}
	return out, nil
}

// promQLMetrics returns the metric names a PromQL expression (or a Grafana
// label_values(...) query) reads. It drops label matchers, range selectors,
// grouping clauses, strings, numbers, function names and keywords, so what
// is left are metric names.
func promQLMetrics(expr string) ([]string, error) {
	if inner, ok := strings.CutPrefix(strings.TrimSpace(expr), "label_values("); ok {
		// Grafana's label_values(selector, label): the label is no metric.
		if i := strings.LastIndexByte(inner, ','); i >= 0 {
			expr = inner[:i]
		} else {
			expr = strings.TrimSuffix(inner, ")")
		}
	}
	s, err := stripStrings(expr)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", expr, err)
	}
	for _, pair := range [][2]byte{{'{', '}'}, {'[', ']'}} {
		if s, err = stripBetween(s, pair[0], pair[1]); err != nil {
			return nil, fmt.Errorf("%q: %w", expr, err)
		}
	}
	keywords := map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
		"group_right": true, "offset": true, "bool": true, "and": true, "or": true, "unless": true, "inf": true, "nan": true}
	aggregators := map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
		"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
		"limitk": true, "limit_ratio": true}
	grouping := map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	var out []string
	for i := 0; i < len(s); {
		c := s[i]
		if c != '_' && c != ':' && !unicode.IsLetter(rune(c)) {
			if unicode.IsDigit(rune(c)) || c == '.' { // skip a number or duration: 0.99, 1e3, 5m
				for i < len(s) && (s[i] == '.' || unicode.IsDigit(rune(s[i])) || unicode.IsLetter(rune(s[i]))) {
					i++
				}
				continue
			}
			i++
			continue
		}
		j := i
		for j < len(s) && (s[j] == '_' || s[j] == ':' || unicode.IsLetter(rune(s[j])) || unicode.IsDigit(rune(s[j]))) {
			j++
		}
		word := s[i:j]
		rest := strings.TrimLeft(s[j:], " \t\n")
		switch {
		case grouping[strings.ToLower(word)] && strings.HasPrefix(rest, "("):
			end := strings.IndexByte(rest, ')')
			if end < 0 {
				return nil, fmt.Errorf("%q: unterminated %s(", expr, word)
			}
			j = len(s) - len(rest) + end + 1
		case keywords[strings.ToLower(word)], aggregators[strings.ToLower(word)], strings.HasPrefix(rest, "("):
			// keyword, aggregation (its "by (...)" may come first) or function call
		default:
			out = append(out, word)
		}
		i = j
	}
	return out, nil
}

// stripStrings removes quoted strings outside label matchers (function
// arguments such as label_replace's); matchers are removed whole later.
func stripStrings(s string) (string, error) {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{':
			depth++
		case c == '}':
			depth--
		case depth == 0 && (c == '"' || c == '\'' || c == '`'):
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return "", fmt.Errorf("unterminated %c string", c)
			}
			i = j
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

func stripBetween(s string, open, close byte) (string, error) {
	var b strings.Builder
	depth := 0
	inQuote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote != 0:
			switch c {
			case '\\':
				i++
			case inQuote:
				inQuote = 0
			}
		case depth > 0 && (c == '"' || c == '\'' || c == '`'):
			inQuote = c
		case c == open:
			depth++
		case c == close:
			if depth == 0 {
				return "", fmt.Errorf("unbalanced %c", close)
			}
			depth--
		case depth == 0:
			b.WriteByte(c)
		}
	}
	if depth != 0 || inQuote != 0 {
		return "", fmt.Errorf("unbalanced %c", open)
	}
	return b.String(), nil
}
