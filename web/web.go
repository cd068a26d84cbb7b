// Package web serves the browser UI, embedded in the binary so every node
// serves the same pages without anything from the internet.
package web

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
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

// ErrNoIndex is returned by Dir when the folder has no index.html: it is not
// the build of a single-page UI.
var ErrNoIndex = errors.New("no index.html in the UI folder")

// Dir serves another UI's build from a folder the way Pioreactor's web server
// serves its own UI (its `frontend/build`): the folder's files under /static/,
// and index.html for every other path, so the page's own router handles it.
func Dir(dir string) (http.Handler, error) {
	root := os.DirFS(dir)
	if st, err := fs.Stat(root, "index.html"); err != nil || st.IsDir() {
		return nil, fmt.Errorf("%w %s: build the UI first (for Pioreactor's, `npm ci && npx vite build` in its frontend folder) and give the folder that holds index.html", ErrNoIndex, dir)
	}
	files := http.StripPrefix("/static", http.FileServer(http.FS(root)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/static/") {
			files.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, root, "index.html")
	}), nil
}
