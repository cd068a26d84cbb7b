// Package web serves the browser UI, embedded in the binary so every node
// serves the same pages without anything from the internet.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the UI's files: index.html (a single page with the
// Inventory, Experiments, Pioreactors and Cluster views), app.js and style.css.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FileServer(http.FS(sub))
}
