// Package testdata finds the shared reference data (../shared/testdata
// beside the repository, or $BRIEF_TESTDATA) for tests, and skips a test
// with a clear message where it is absent.
package testdata

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Root returns the shared testdata folder, or "" if it cannot be found.
func Root() string {
	if d := os.Getenv("BRIEF_TESTDATA"); d != "" {
		return d
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	// file is <repo>/internal/testdata/testdata.go
	repo := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	d := filepath.Join(repo, "..", "shared", "testdata")
	if _, err := os.Stat(d); err != nil {
		return ""
	}
	return d
}

// Path returns the path of elem under the shared testdata folder, skipping
// t when it does not exist.
func Path(t testing.TB, elem ...string) string {
	t.Helper()
	root := Root()
	if root == "" {
		t.Skip("shared testdata not found: put it at ../shared/testdata beside the repository or set BRIEF_TESTDATA")
	}
	p := filepath.Join(append([]string{root}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared testdata %s not found (set BRIEF_TESTDATA): %v", p, err)
	}
	return p
}
