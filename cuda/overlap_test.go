package cuda

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// preWait is what a kernel may do before grid_dep_wait: let the next kernel
// start, or prefetch weights, which no kernel writes.
var preWait = map[string]bool{
	"grid_dep_launch();":         true,
	"awq::gemv_prefetch(w, in);": true,
}

// TestKernelsWaitForPredecessor: launched overlapped, a kernel may run
// while the previous one still writes, so every kernel entry must call
// grid_dep_wait before any other statement but those in preWait.
func TestKernelsWaitForPredecessor(t *testing.T) {
	files, err := filepath.Glob("*.cu")
	if err != nil || len(files) == 0 {
		t.Fatalf("no kernel sources: %v", err)
	}
	entry := regexp.MustCompile(`__global__`)
	kernels := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		for _, loc := range entry.FindAllStringIndex(src, -1) {
			open := strings.IndexByte(src[loc[1]:], '{')
			if open < 0 {
				t.Fatalf("%s: __global__ at byte %d has no body", f, loc[0])
			}
			body := src[loc[1]+open+1:]
			name := strings.Fields(strings.SplitN(src[loc[1]:loc[1]+open], "(", 2)[0])
			wait := strings.Index(body, "grid_dep_wait();")
			end := matchBrace(body)
			if wait < 0 || (end >= 0 && wait > end) {
				t.Errorf("%s: kernel %v never calls grid_dep_wait", f, name)
				continue
			}
			for _, st := range strings.Split(body[:wait], ";") {
				st = strings.TrimSpace(strings.ReplaceAll(st, "\\", ""))
				if st != "" && !preWait[st+";"] {
					t.Errorf("%s: kernel %v runs %q before grid_dep_wait", f, name, st)
				}
			}
			kernels++
		}
	}
	if kernels < 10 {
		t.Fatalf("found %d kernel entries; the scan is broken", kernels)
	}
}

// matchBrace is the index of the brace that closes a body whose opening
// brace precedes s, or -1.
func matchBrace(s string) int {
	depth := 1
	for i, c := range s {
		switch c {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// TestOverlapSameBits: overlapped launches change when kernels start, never
// what they compute: prefill, single steps through the captured graphs and a
// verify step give the same logits bit for bit with and without.
func TestOverlapSameBits(t *testing.T) {
	m := synthModel(t, "small", 6)
	defer func(v bool) { overlapLaunches = v }(overlapLaunches)
	rng := rand.New(rand.NewPCG(12, 13))
	prompt := make([]int, 700) // several prefill chunks and key blocks
	for i := range prompt {
		prompt[i] = rng.IntN(m.Config.Vocab)
	}
	var runs [2][][]float32
	for i, on := range []bool{false, true} {
		overlapLaunches = on
		e := testEngine(t, m, Options{})
		if on && !e.d.overlap {
			t.Skipf("%s (sm_%d) runs without overlapped launches", e.d.name, e.d.cc)
		}
		next, err := e.Prefill(context.Background(), prompt)
		if err != nil {
			t.Fatal(err)
		}
		keep := func() {
			l, err := e.LastLogits()
			if err != nil {
				t.Fatal(err)
			}
			runs[i] = append(runs[i], l)
		}
		keep()
		for range 20 {
			ids, err := e.Verify([]int{next})
			if err != nil {
				t.Fatal(err)
			}
			next = ids[0]
			keep()
		}
		if _, err := e.Verify(prompt[100:111]); err != nil {
			t.Fatal(err)
		}
		keep()
		e.Close()
	}
	for s := range runs[0] {
		for j := range runs[0][s] {
			if math.Float32bits(runs[0][s][j]) != math.Float32bits(runs[1][s][j]) {
				t.Fatalf("step %d: logit %d is %v overlapped, %v not", s, j, runs[1][s][j], runs[0][s][j])
			}
		}
	}
}
