// Package console is the support console: the web page support staff use to find, replay and
// discard failed deliveries through the failures API, and to look up the delivery history. Its files are plain HTML, CSS and
// JavaScript embedded in the binary, so dvrouter serves it with nothing to build or install.
package console

import (
	"embed"
	"io/fs"
)

//go:embed assets
var assets embed.FS

// Files returns the console's files: index.html and the scripts and style sheet it loads.
func Files() fs.FS {
	files, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // "assets" is a valid path, embedded above: fs.Sub cannot fail on it
	}
	return files
}
