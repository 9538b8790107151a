package rest

import (
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

// corsPolicy answers browsers' cross-origin checks for the allowed origins.
// Tokens travel in the Authorization header, never in cookies, so the
// policy never allows credentials: a page on an allowed origin must hold a
// token to do anything, and a page elsewhere gets no CORS headers at all.
type corsPolicy struct {
	any     bool
	origins []string
}

func newCORSPolicy(origins []string) corsPolicy {
	p := corsPolicy{}
	for _, o := range origins {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		switch o {
		case "":
		case "*":
			p.any = true
		default:
			p.origins = append(p.origins, strings.ToLower(o))
		}
	}
	return p
}

func (p corsPolicy) enabled() bool { return p.any || len(p.origins) > 0 }

func (p corsPolicy) allows(origin string) bool {
	return p.any || slices.Contains(p.origins, strings.ToLower(origin))
}

const (
	corsAllowHeaders  = "Authorization, Content-Type, If-Match, If-None-Match, X-Request-ID"
	corsExposeHeaders = "ETag, Location, Link, Retry-After, X-Request-ID, Bookhub-Offset, Bookhub-Epoch, WWW-Authenticate"
	corsAllowMethods  = "GET, HEAD, POST, PUT, PATCH, DELETE"
)

// handle adds CORS headers for an allowed Origin and answers its preflight.
// A preflight from another origin gets 403, so the browser (and whoever
// debugs it) sees a refusal rather than a missing header.
func (p corsPolicy) handle(c *gin.Context) {
	if !p.enabled() {
		c.Next()
		return
	}
	c.Writer.Header().Add("Vary", "Origin")
	origin := c.GetHeader("Origin")
	preflight := c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != ""
	if origin == "" {
		c.Next()
		return
	}
	if !p.allows(origin) {
		if preflight {
			_ = c.Error(newErrorf(kindForbiddenOrigin, "origin %s may not call this API; see BOOKHUB_CORS_ORIGINS", quoteOrigin(origin)))
			c.Abort()
			return
		}
		c.Next()
		return
	}
	h := c.Writer.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	if preflight {
		h.Set("Access-Control-Allow-Methods", corsAllowMethods)
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", "600")
		c.AbortWithStatus(http.StatusNoContent)
		return
	}
	c.Next()
}

var kindForbiddenOrigin = newKind(http.StatusForbidden, "forbidden-origin", "Origin not allowed")

// quoteOrigin keeps an attacker's header short in a problem detail.
func quoteOrigin(o string) string {
	if len(o) > 100 {
		o = o[:100] + "..."
	}
	return `"` + strings.ReplaceAll(o, `"`, `'`) + `"`
}
