// Package web embeds bookhub's browser assets: a page that explains how to
// connect to the API and the WebSocket feed.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the embedded assets.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the folder is embedded at build time; this cannot fail
	}
	return http.FileServerFS(sub)
}
