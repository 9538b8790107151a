package hub

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/bookhub/bookhub/problem"
)

// The problem kinds of the hub's refusals (type urn:bookhub:problem:<slug>).
// Clients switch on the type, so the slugs are part of the wire contract;
// the kinds the REST API sends too come from package problem, so one type
// always has one title on the public port (RFC 9457 section 3.1.3).
var (
	kindMethodNotAllowed = problem.MethodNotAllowed
	kindNotWebSocket     = newKind(http.StatusUpgradeRequired, "not-websocket", "Not a WebSocket handshake")
	kindWebSocketVersion = newKind(http.StatusUpgradeRequired, "websocket-version", "Unsupported WebSocket version")
	kindBadHandshake     = newKind(http.StatusBadRequest, "bad-handshake", "Malformed WebSocket handshake")
	kindOriginForbidden  = newKind(http.StatusForbidden, "origin-forbidden", "Origin not allowed")
	kindUnauthorized     = problem.Unauthorized
	kindInvalidParameter = problem.InvalidParameter
	kindTooManyConns     = newKind(http.StatusTooManyRequests, "too-many-connections", "Too many connections")
	kindForbiddenChannel = newKind(http.StatusForbidden, "forbidden-channel", "Channel not allowed")
	kindUnavailable      = problem.Unavailable
	kindInternal         = problem.Internal
)

func newKind(status int, slug, title string) problem.Kind {
	return problem.Kind{Status: status, Slug: slug, Title: title}
}

const (
	// allowedMethods is the Allow header of a 405: HEAD is answered (like a
	// GET that is not a handshake), so it is listed.
	allowedMethods   = "GET, HEAD"
	webSocketVersion = "13"
	// maxHandshakeKeyLength bounds the key before decoding it; a valid key is
	// 24 characters.
	maxHandshakeKeyLength = 64
	// subjectCapRetryAfter is the Retry-After of a 429: a slot frees only when
	// one of the subject's sockets ends, which the hub cannot predict, so the
	// hint is a polite pause rather than a promise.
	subjectCapRetryAfter = 30 * time.Second
)

// refusal is a problem to send with the extra headers it needs.
type refusal struct {
	problem.Problem
	header http.Header
}

func refuse(k problem.Kind, detail string) *refusal {
	return &refusal{Problem: k.New(detail)}
}

// invalidParameter is a 400 naming the query parameter at fault, in the
// REST API's shape for the same problem.
func invalidParameter(detail, field, message string) *refusal {
	ref := refuse(kindInvalidParameter, detail)
	ref.Errors = []problem.FieldError{{Field: field, Message: message}}
	return ref
}

func (ref *refusal) with(key, value string) *refusal {
	if ref.header == nil {
		ref.header = make(http.Header, 2)
	}
	ref.header.Set(key, value)
	return ref
}

// maxInstanceLen bounds the path echoed as the problem's instance, as the
// edge and the REST API do.
const maxInstanceLen = 1 << 10

func (ref *refusal) write(w http.ResponseWriter, r *http.Request) {
	for k, v := range ref.header {
		w.Header()[k] = v
	}
	if len(r.URL.Path) <= maxInstanceLen {
		ref.Instance = r.URL.Path
	}
	problem.Write(w, ref.Problem)
}

// upgradeRequired is the answer to anything that is not a WebSocket
// handshake at all: RFC 9110 requires a 426 to name the protocol to upgrade
// to, and Upgrade is hop-by-hop, hence Connection too.
func upgradeRequired(detail string) *refusal {
	return refuse(kindNotWebSocket, detail).
		with("Upgrade", "websocket").with("Connection", "Upgrade")
}

// checkHandshake refuses r unless it is an RFC 6455 opening handshake that
// websocket.Accept will take. It runs before authentication, so a request
// that could never become a socket learns that (and not "401") whatever its
// credentials, and it mirrors Accept's own checks so Accept never writes its
// plain-text errors. The checks only read headers, none of them echo a
// header value, and they go from "wrong kind of request" to "broken
// handshake", so a client is told the most basic thing it got wrong.
func (h *Hub) checkHandshake(r *http.Request) *refusal {
	switch r.Method {
	case http.MethodGet:
	case http.MethodHead:
		// HEAD answers like a GET without a body (net/http drops it); a HEAD
		// can never be upgraded, so the GET it stands for is not a handshake.
		return upgradeRequired("HEAD cannot open a WebSocket; send a GET handshake")
	default:
		return refuse(kindMethodNotAllowed, "a WebSocket handshake is a GET request; see the Allow header").with("Allow", allowedMethods)
	}
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		// HTTP/1.0 has no Upgrade; HTTP/2 WebSockets (RFC 8441) are not served.
		return upgradeRequired("a WebSocket handshake needs HTTP/1.1, not " + protoName(r))
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		return upgradeRequired("this endpoint speaks WebSocket only: send Upgrade: websocket and Connection: Upgrade")
	}
	if !headerHasToken(r.Header, "Connection", "Upgrade") {
		return upgradeRequired("the Connection header must contain Upgrade")
	}
	if r.Header.Get("Sec-WebSocket-Version") != webSocketVersion {
		// RFC 6455 section 4.4: name the versions the server speaks.
		return refuse(kindWebSocketVersion, "only WebSocket version 13 is supported").with("Sec-WebSocket-Version", webSocketVersion)
	}
	if keys := r.Header.Values("Sec-WebSocket-Key"); len(keys) != 1 || !validKey(keys[0]) {
		return refuse(kindBadHandshake, "Sec-WebSocket-Key must appear once, as the base64 encoding of 16 bytes")
	}
	if !h.originAllowed(r) {
		return refuse(kindOriginForbidden, "this origin may not open sockets here")
	}
	return nil
}

func protoName(r *http.Request) string {
	return "HTTP/" + strconv.Itoa(r.ProtoMajor) + "." + strconv.Itoa(r.ProtoMinor)
}

// headerHasToken reports whether a comma-separated header contains token,
// case-insensitively, in any of its lines.
func headerHasToken(h http.Header, key, token string) bool {
	for _, line := range h.Values(key) {
		for t := range strings.SplitSeq(line, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// validKey applies Accept's rule (after trimming, base64 of 16 bytes) with a
// length guard first, so a huge header is not decoded.
func validKey(k string) bool {
	k = strings.TrimSpace(k)
	if len(k) > maxHandshakeKeyLength {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(k)
	return err == nil && len(b) == 16
}

// originAllowed is websocket.Accept's origin rule, applied here so a refusal
// is a problem document: no Origin (not a browser) and the request's own host
// are always allowed; other origins must match an OriginPatterns entry
// (path.Match, case-insensitive, against "host" or, for a pattern with
// "://", against "scheme://host"). New has already checked the patterns.
func (h *Hub) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(r.Host, u.Host) {
		return true
	}
	for _, p := range h.opts.OriginPatterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}

// canHijack follows http.ResponseWriter wrappers the way websocket.Accept
// does, so a writer it could not upgrade is refused before Accept writes a
// plain-text 501.
func canHijack(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case http.Hijacker:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}
