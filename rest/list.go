package rest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/store"
)

// listParams are the query parameters GET /api/v1/books understands. Any
// other parameter is refused, so a typo ("titel=") does not silently return
// the unfiltered list.
var listParams = []string{"limit", "cursor", "author", "q", "min_price", "max_price", "sort"}

// Maximum lengths of list parameters, checked before any other work so that
// no value reaches the database that it cannot take (SQLite refuses LIKE
// patterns over 50,000 bytes with an error, and escaping doubles % and _).
const (
	// maxSearchLen bounds q and author, in characters: both are compared
	// with fields of at most store.MaxTextLen characters, so a longer value
	// cannot match anything.
	maxSearchLen = store.MaxTextLen
	// maxShortParamLen bounds limit, min_price, max_price and sort, in
	// characters: far above any valid value ("-created_at",
	// "90071992547409.91"), so only junk is refused for its length.
	maxShortParamLen = 32
	// maxEchoedNameLen is how much of an unknown parameter's name the
	// errors list repeats, so a huge name is not sent back whole.
	maxEchoedNameLen = 64
)

// maxParamLen returns the longest value parameter k may have and its unit.
// The cursor limit is the store's, which covers every cursor it issues.
func maxParamLen(k string) (int, string) {
	switch k {
	case "q", "author":
		return maxSearchLen, "characters"
	case "cursor":
		return store.MaxCursorLen, "bytes"
	default:
		return maxShortParamLen, "characters"
	}
}

// paramTooLong reports whether v is longer than k allows, counting
// characters or bytes as maxParamLen says.
func paramTooLong(k, v string) (bool, string) {
	limit, unit := maxParamLen(k)
	n := len(v)
	if unit == "characters" && n > limit { // each character is at least one byte
		n = utf8.RuneCountInString(v)
	}
	if n <= limit {
		return false, ""
	}
	return true, fmt.Sprintf("must be at most %d %s, got %d", limit, unit, n)
}

// echoName shortens a parameter name for the errors list, on a character
// boundary.
func echoName(k string) string {
	if len(k) <= maxEchoedNameLen {
		return k
	}
	cut := maxEchoedNameLen
	for cut > 0 && !utf8.RuneStart(k[cut]) {
		cut--
	}
	return k[:cut] + "…"
}

func (a *api) listBooks(c *gin.Context) error {
	query, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		return newError(kindInvalidParameter, "the query string is malformed")
	}
	opts, err := parseListQuery(query)
	if err != nil {
		return err
	}
	page, err := a.books.List(c.Request.Context(), opts)
	if err != nil {
		return fmt.Errorf("list books: %w", err)
	}
	out := listJSON{Books: make([]bookJSON, 0, len(page.Books)), NextCursor: page.NextCursor,
		Position: positionJSON{Channel: events.ChannelBooks, Offset: page.Position.Offset, Epoch: page.Position.Epoch}}
	setPosition(c, page.Position.Offset, page.Position.Epoch)
	for _, b := range page.Books {
		out.Books = append(out.Books, toBookJSON(b, staff(c)))
	}
	body, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("encode book list: %w", err)
	}
	if page.NextCursor != "" {
		c.Header("Link", nextLink(query, page.NextCursor))
	}
	c.Data(http.StatusOK, contentTypeJSON, body)
	return nil
}

// nextLink keeps the caller's filters, sort and limit and swaps the cursor.
func nextLink(query url.Values, cursor string) string {
	next := url.Values{}
	for k, v := range query {
		next[k] = v
	}
	next.Set("cursor", cursor)
	return "<" + booksPath + "?" + next.Encode() + `>; rel="next"`
}

// parseListQuery validates the query parameters. An empty value counts as
// absent, the way HTML forms send unused fields. Every refusal is a 400
// naming the parameter: unknown, repeated, longer than its maximum, not
// UTF-8 (q, author) or not a valid value.
func parseListQuery(q url.Values) (store.ListOptions, error) {
	var fe fieldErrors
	var opts store.ListOptions
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vs := q[k]
		if !slices.Contains(listParams, k) {
			fe.badf(echoName(k), "is not a known query parameter (known: %s)", strings.Join(listParams, ", "))
			continue
		}
		if len(vs) > 1 {
			fe.badf(k, "must be given at most once")
			continue
		}
		v := vs[0]
		if v == "" {
			continue
		}
		if (k == "q" || k == "author") && !utf8.ValidString(v) {
			// No stored text is invalid UTF-8, and MySQL may refuse it.
			fe.badf(k, "must be valid UTF-8 (percent-encode the UTF-8 bytes of the text)")
			continue
		}
		if long, msg := paramTooLong(k, v); long {
			fe.badf(k, "%s", msg)
			continue
		}
		switch k {
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > store.MaxLimit || !isDigit(v[0]) {
				fe.badf(k, "must be an integer from 1 to %d", store.MaxLimit)
				continue
			}
			opts.Limit = n
		case "cursor":
			opts.Cursor = v
		case "author":
			opts.Author = v
		case "q":
			opts.Query = v
		case "min_price", "max_price":
			p, err := parsePriceParam(v)
			if err != nil {
				fe.badf(k, "%s", err)
				continue
			}
			if k == "min_price" {
				opts.MinPriceCents = &p
			} else {
				opts.MaxPriceCents = &p
			}
		case "sort":
			if !slices.Contains(store.SortFields, strings.TrimPrefix(v, "-")) {
				fe.badf(k, "must be one of %s, optionally prefixed with - for descending", strings.Join(store.SortFields, ", "))
				continue
			}
			opts.Sort = v
		}
	}
	if opts.MinPriceCents != nil && opts.MaxPriceCents != nil && *opts.MinPriceCents > *opts.MaxPriceCents {
		fe.badf("min_price", "must not exceed max_price")
	}
	if len(fe.bad) > 0 {
		return store.ListOptions{}, &apiError{kind: kindInvalidParameter, detail: summarize(fe.bad), fields: capFields(fe.bad)}
	}
	return opts, nil
}

// parsePriceParam parses a price bound exactly, like a body's price.
func parsePriceParam(v string) (int64, error) {
	p, err := parseDecimal(v, 2, maxSafeInteger)
	switch {
	case errors.Is(err, errTooPrecise):
		return 0, errors.New("must have at most 2 decimal places")
	case errors.Is(err, errTooLarge):
		return 0, fmt.Errorf("must be at most %s", maxText(2))
	case err != nil:
		return 0, errors.New("must be a decimal number such as 12.50")
	case p < 0:
		return 0, errors.New("must not be negative")
	}
	return p, nil
}
