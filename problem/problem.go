// Package problem is bookhub's one error dialect on the wire: RFC 9457
// application/problem+json bodies, with two extension members (request_id
// and errors). The REST API, the WebSocket handshake and the edge router all
// render refusals through Write, so a client parses one shape whatever part
// of bookhub refused it.
package problem

import (
	"encoding/json"
	"net/http"
)

// TypePrefix starts every problem type URI. URNs rather than URLs: bookhub
// does not host documentation pages a client could dereference.
const TypePrefix = "urn:bookhub:problem:"

// ContentType is the media type of a problem body.
const ContentType = "application/problem+json"

// RequestIDHeader carries the request id; Write copies it into the body
// when the response already has it set.
const RequestIDHeader = "X-Request-ID"

// FieldError names one offending field of a request body, query or header.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Problem is the RFC 9457 body. Type is a full URI (see Type).
type Problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	RequestID string       `json:"request_id,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`
}

// Kind is one class of problem: its status, type slug and title. The title
// is the same for every occurrence of the type (RFC 9457 §3.1.3); only the
// detail varies.
type Kind struct {
	Status int
	Slug   string
	Title  string
}

// New returns a problem of kind k with the given detail.
func (k Kind) New(detail string) Problem {
	return Problem{Type: Type(k.Slug), Title: k.Title, Status: k.Status, Detail: detail}
}

// Kinds that more than one part of bookhub sends (the edge router, the web
// assets and the REST API), declared once so their titles cannot drift.
// Kinds only one part sends are declared where they are sent.
var (
	NotFound         = Kind{http.StatusNotFound, "not-found", "Not found"}
	MethodNotAllowed = Kind{http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed"}
	URITooLong       = Kind{http.StatusRequestURITooLong, "uri-too-long", "Request target too long"}
	BadRequest       = Kind{http.StatusBadRequest, "bad-request", "Bad request"}
	InvalidParameter = Kind{http.StatusBadRequest, "invalid-parameter", "Invalid parameter"}
	Unauthorized     = Kind{http.StatusUnauthorized, "unauthorized", "Authentication required"}
	Unavailable      = Kind{http.StatusServiceUnavailable, "unavailable", "Service unavailable"}
	Internal         = Kind{http.StatusInternalServerError, "internal", "Internal server error"}
)

// Type returns the type URI of a problem slug ("not-found" becomes
// "urn:bookhub:problem:not-found"). Clients switch on it, so slugs are part
// of the wire contract.
func Type(slug string) string { return TypePrefix + slug }

// New returns a problem of the given status and slug; the title is the
// status text, which suits refusals that need no title of their own.
func New(status int, slug, detail string) Problem {
	return Problem{Type: Type(slug), Title: http.StatusText(status), Status: status, Detail: detail}
}

// Encode returns p as JSON. It cannot fail: p holds only strings and ints.
func Encode(p Problem) []byte {
	b, _ := json.Marshal(p)
	return b
}

// Write sends p with its status. It fills RequestID from the response's
// X-Request-ID header when p has none, and marks the response uncacheable:
// a refusal describes this request, not the resource.
func Write(w http.ResponseWriter, p Problem) {
	h := w.Header()
	if p.RequestID == "" {
		p.RequestID = h.Get(RequestIDHeader)
	}
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("ETag")
	h.Del("Last-Modified")
	w.WriteHeader(p.Status)
	_, _ = w.Write(Encode(p))
}
