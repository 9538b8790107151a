package rest

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/bookhub/bookhub/store"
)

const contentTypeJSON = "application/json"

// booksPath is where books live; Location and Link headers are built from it.
const booksPath = "/api/v1/books"

// Position headers: a snapshot's place in the channel it belongs to, so a
// client can subscribe with since = that position and miss nothing.
const (
	headerOffset = "Bookhub-Offset"
	headerEpoch  = "Bookhub-Epoch"
)

func setPosition(c *gin.Context, offset uint64, epoch string) {
	c.Header(headerOffset, strconv.FormatUint(offset, 10))
	c.Header(headerEpoch, epoch)
}

// etag is the strong entity tag of a book version: "\"<version>\"".
func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

func (a *api) getBook(c *gin.Context) error {
	id := bookIDOf(c)
	b, err := a.books.Get(c.Request.Context(), id)
	if err != nil {
		return fmt.Errorf("get book %d: %w", id, err)
	}
	c.Header("ETag", etag(b.Version))
	// The book's version is its channel's offset (see store/outbox.go).
	setPosition(c, uint64(b.Version), a.books.Epoch())
	if inm := c.GetHeader("If-None-Match"); inm != "" && noneMatchHits(inm, b.Version) {
		c.Status(http.StatusNotModified)
		c.Writer.WriteHeaderNow()
		return nil
	}
	body, err := encodeBook(b, staff(c))
	if err != nil {
		return err
	}
	c.Data(http.StatusOK, contentTypeJSON, body)
	return nil
}

func (a *api) createBook(c *gin.Context) error {
	in, err := a.decode(c, modeCreate)
	if err != nil {
		return err
	}
	var b store.Book
	in.apply(&b, modeCreate)
	b, err = a.books.Create(c.Request.Context(), b)
	if err != nil {
		return fmt.Errorf("create book: %w", storeValidation(err))
	}
	body, err := encodeBook(b, staff(c))
	if err != nil {
		return err
	}
	c.Header("Location", booksPath+"/"+strconv.FormatInt(b.ID, 10))
	c.Header("ETag", etag(b.Version))
	c.Data(http.StatusCreated, contentTypeJSON, body)
	return nil
}

func (a *api) replaceBook(c *gin.Context) error { return a.updateBook(c, modeReplace) }

func (a *api) patchBook(c *gin.Context) error { return a.updateBook(c, modePatch) }

// updateBook serves PUT (modeReplace) and PATCH (modePatch). The body is
// fully validated before the store is touched; inside the transaction apply
// only compares the read-only fields the body carried with the current row
// (checkStored), so that check cannot race with another write.
func (a *api) updateBook(c *gin.Context, mode decodeMode) error {
	id := bookIDOf(c)
	in, err := a.decode(c, mode)
	if err != nil {
		return err
	}
	ifVersion, err := a.ifMatch(c, id)
	if err != nil {
		return err
	}
	b, err := a.books.Update(c.Request.Context(), id, ifVersion, func(b *store.Book) error {
		if err := in.readOnly.checkStored(*b); err != nil {
			return err
		}
		in.apply(b, mode)
		return nil
	})
	if err != nil {
		return fmt.Errorf("update book %d: %w", id, storeValidation(err))
	}
	body, err := encodeBook(b, staff(c))
	if err != nil {
		return err
	}
	c.Header("ETag", etag(b.Version))
	c.Data(http.StatusOK, contentTypeJSON, body)
	return nil
}

func (a *api) deleteBook(c *gin.Context) error {
	id := bookIDOf(c)
	ifVersion, err := a.ifMatch(c, id)
	if err != nil {
		return err
	}
	if _, err := a.books.Delete(c.Request.Context(), id, ifVersion); err != nil {
		return fmt.Errorf("delete book %d: %w", id, err)
	}
	c.Status(http.StatusNoContent)
	c.Writer.WriteHeaderNow()
	return nil
}

// wireFields names store fields as the API spells them, per entity.
var wireFields = map[string]map[string]string{
	"book": {"Title": "title", "Author": "author", "ISBN": "isbn", "PriceCents": "price", "Stock": "stock",
		"CostCents": "cost_price", "Supplier": "supplier"},
	"user": {"Email": "email", "DisplayName": "display_name", "Role": "role", "PasswordHash": "password",
		"OIDCIssuer": "oidc_issuer", "OIDCSubject": "oidc_subject"},
}

// storeValidation turns the store's *store.ValidationError into a 422 that
// names wire fields; other errors pass unchanged. The decoders apply the
// book rules first, so for books this only fires if the two ever drift
// apart, and then the client still learns which field is wrong instead of
// getting a 500. classify calls it for every error, so every writer's
// validation (books, users) speaks the same dialect.
func storeValidation(err error) error {
	var ve *store.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	var fe fieldErrors
	for _, f := range ve.Fields {
		name, ok := wireFields[ve.Entity][f.Field]
		if !ok {
			name = f.Field
		}
		fe.invalidf(name, "%s", f.Message)
	}
	if out := fe.err(); out != nil {
		return out
	}
	return err
}

// decode reads and decodes the request body of a write.
func (a *api) decode(c *gin.Context, mode decodeMode) (bookInput, error) {
	body, err := readBody(c, a.maxBody)
	if err != nil {
		return bookInput{}, err
	}
	return decodeBook(body, mode)
}

// ifMatch turns the If-Match header into the version the store must find:
// 0 when absent or "*". A list of tags is resolved against the current
// version (the store still checks it atomically); a list that cannot match
// yields store.ErrStale, so the client gets 412.
//
// RFC 9110 wants strong comparison for If-Match; W/"3" is accepted anyway
// because some proxies weaken ETags, and versions are exact either way.
func (a *api) ifMatch(c *gin.Context, id int64) (int64, error) {
	values := c.Request.Header.Values("If-Match")
	if len(values) == 0 {
		return 0, nil
	}
	tags, ok := parseETags(strings.Join(values, ","))
	if !ok {
		return 0, &apiError{kind: kindInvalidParameter,
			detail: `If-Match must be "*" or entity tags like "3" (quotes included)`,
			fields: []fieldError{{Field: "If-Match", Message: "is not a valid entity tag list"}}}
	}
	if slices.Contains(tags, "*") {
		return 0, nil
	}
	var versions []int64
	for _, t := range tags {
		if v, ok := parseID(strings.Trim(strings.TrimPrefix(t, "W/"), `"`)); ok {
			versions = append(versions, v)
		}
	}
	if len(tags) == 1 && len(versions) == 1 {
		return versions[0], nil
	}
	cur, err := a.books.Get(c.Request.Context(), id)
	if err != nil {
		return 0, fmt.Errorf("check If-Match of book %d: %w", id, err)
	}
	if slices.Contains(versions, cur.Version) {
		return cur.Version, nil
	}
	return 0, fmt.Errorf("If-Match of book %d: %w", id, store.ErrStale)
}

// noneMatchHits reports whether If-None-Match matches the version, using weak
// comparison as RFC 9110 prescribes for it. A malformed header never matches,
// so the client simply gets the full response.
func noneMatchHits(header string, version int64) bool {
	tags, ok := parseETags(header)
	if !ok {
		return false
	}
	want := etag(version)
	for _, t := range tags {
		if t == "*" || strings.TrimPrefix(t, "W/") == want {
			return true
		}
	}
	return false
}

// parseETags splits an If-Match / If-None-Match value into "*" or quoted
// entity tags (optionally W/-prefixed).
func parseETags(h string) ([]string, bool) {
	var tags []string
	for part := range strings.SplitSeq(h, ",") {
		t := strings.TrimSpace(part)
		if t == "" {
			continue
		}
		if t != "*" {
			q := strings.TrimPrefix(t, "W/")
			if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' || strings.Contains(q[1:len(q)-1], `"`) {
				return nil, false
			}
		}
		tags = append(tags, t)
	}
	return tags, len(tags) > 0
}
