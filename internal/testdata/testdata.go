// Package testdata finds the shared reference data (../shared/testdata
// beside the repository, or $BRIEF_TESTDATA) for tests, and skips a test
// with a clear message where it is absent.
package testdata

import (
	"encoding/json"
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

// StoriesCase is one prompt of stories260k-awq/golden.json: transformers'
// greedy continuation (float32, dequantized weights), its text, and the
// top-5 logits after the prompt.
type StoriesCase struct {
	Prompt    string    `json:"prompt"`
	PromptIDs []int     `json:"prompt_ids"`
	Greedy    []int     `json:"greedy_fp32_64"`
	Text      string    `json:"text"` // the prompt and continuation decoded
	Top5      []float64 `json:"last_logits_top5"`
	Top5IDs   []int     `json:"last_logits_top5_ids"`
}

// Stories returns the stories260k-awq model folder and its golden cases,
// skipping t where the shared data is absent.
func Stories(t testing.TB) (string, []StoriesCase) {
	t.Helper()
	dir := Path(t, "stories260k-awq")
	b, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct{ Cases []StoriesCase }
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("%s: %v", filepath.Join(dir, "golden.json"), err)
	}
	return dir, g.Cases
}
