// Package dashboard serves the operator dashboard: the static export of the Next.js app in web/,
// embedded into the cellgate binary. `make web` builds it and copies it into dist/; before that
// dist/ holds only a placeholder, and every page is a "dashboard not built: run make web" page.
//
// Pages are directories (Next's trailingSlash export): /devices/ is devices/index.html, and
// /devices redirects there. Paths that match nothing get the export's 404 page. Files under
// /_next/static/ have content hashes in their names and are cached for a year; everything else
// is revalidated by ETag. Text is served gzipped to clients that accept it, compressed once per
// file and kept. HTML pages carry a Content-Security-Policy that allows exactly their own inline
// scripts (by hash) and scripts from the same origin.
package dashboard

import (
	"embed"
	"io/fs"
	"sync"
)

//go:embed all:dist
var dist embed.FS

// Default returns the handler of the embedded build, made on first use.
var Default = sync.OnceValue(func() *Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic("dashboard: embedded dist: " + err.Error()) // cannot happen: dist is embedded
	}
	h, err := New(sub)
	if err != nil {
		panic("dashboard: embedded dist: " + err.Error()) // cannot happen: embedded files read
	}
	return h
})
