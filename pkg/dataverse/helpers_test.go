package dataverse

import "path/filepath"

// The project's own payloads live in testdata/events at the repository root; their expected
// normalized events in testdata/golden.
var (
	eventsDir = filepath.Join("..", "..", "testdata", "events")
	goldenDir = filepath.Join("..", "..", "testdata", "golden")
)
