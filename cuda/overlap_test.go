package cuda

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/briefapp/brief/inference"
)

// preWait is what a kernel may do before grid_dep_wait: let the next kernel
// start.
var preWait = map[string]bool{
	"grid_dep_launch();": true,
}

// waitRule is a device function that calls grid_dep_wait itself, after
// reading only what no kernel of the step writes: what early matches
// (need must be among it: else the function should wait at the top) and
// nothing access matches besides.
type waitRule struct {
	fn                  string
	early, need, access *regexp.Regexp
}

// gemvRule: the group-128 mat-vec requests its first weights (constant)
// before the wait; x and y are its activations in and out, red and smem its
// shared memory.
var gemvRule = waitRule{"gemv_g128",
	regexp.MustCompile(`pair_load_w<NT>\(a, wc, zc\);`),
	regexp.MustCompile(`pair_load_w<NT>\(a, wc, zc\);`),
	regexp.MustCompile(`\b(x|y|red|smem)\s*\[|\*\s*(x|y)\b|__ldg\(|ld_stream\(|pair_load(_x)?<|atomic`)}

// patternRule: BenchmarkGemvPattern's probe of the mat-vec requests its
// first weights before the wait, as gemv_g128 does.
var patternRule = waitRule{"gemv_pattern",
	regexp.MustCompile(`pair_load_w<1>\(a, wc, zc\);`),
	regexp.MustCompile(`pair_load_w<1>\(a, wc, zc\);`),
	gemvRule.access}

// verifyEarlyRule: attn_verify2 reads the step's position (params, staged
// by the host before the step's first kernel) and copies the keys of
// earlier steps before the wait; Q (qkv), the step's own keys (issue_part
// with part 2, or issue) and the outputs wait.
var verifyEarlyRule = waitRule{"attn_prefill2_body",
	regexp.MustCompile(`const int pos0 = params\[kParamPos\];|issue_part\(k_begin \+ it \* KEYS, it, 1\);`),
	regexp.MustCompile(`issue_part\(k_begin \+ it \* KEYS, it, 1\);`),
	regexp.MustCompile(`\b(qkv|kc|vc|ws_acc|ws_ml|params)\b|\b(sK|sV|sQ)\s*\[|cp_async_16\(|\bissue(_part)?\(|__ldg\(|atomic`)}

// wgmmaRule: the wgmma GEMM loads its first two chunks' weights and scales
// (constant) before the wait; x, y, the x stages and its shared memory wait.
var wgmmaRule = waitRule{"gemm_wg",
	regexp.MustCompile(`sr\.load\(wq\[[01]\], z\[[01]\]\[0\], z\[[01]\]\[1\], [01]\);`),
	regexp.MustCompile(`sr\.load\(wq\[0\], z\[0\]\[0\], z\[0\]\[1\], 0\);`),
	regexp.MustCompile(`\b(x|y|smem)\s*\[|\*\s*(x|y)\b|\bld_x\(|load_x\(|store_x\(|ld_piece|st\.shared|__ldg\(|atomic`)}

// xpRule: the x-producer GEMM's consumers load their first two chunks'
// weights and scales (constant) before the wait, after handing the
// producer warpgroup to xp_stage_x, which waits at its top
// (TestXpStageWaitsFirst); x, y and shared memory wait.
var xpRule = waitRule{"gemm_xp",
	regexp.MustCompile(`sr\.load\(wq\[[01]\], z\[[01]\]\[0\], z\[[01]\]\[1\], [01]\);|xp_stage_x<S, NT, PX>\(x, sbase, tokens, in, n0, tid, kAll\);`),
	regexp.MustCompile(`sr\.load\(wq\[0\], z\[0\]\[0\], z\[0\]\[1\], 0\);`),
	regexp.MustCompile(`\b(x|y|smem)\s*\[|\*\s*(x|y)\b|\bload\(|ld_x16|st\.shared|__ldg\(|atomic|xp_stage_x`)}

// streamRule: BenchmarkStepStream's stream_read requests its first words
// (a buffer no kernel writes) before the wait, as the mat-vec does.
var streamRule = waitRule{"stream_body",
	regexp.MustCompile(`load\(\);`),
	regexp.MustCompile(`load\(\);`),
	regexp.MustCompile(`\b(p|sink)\s*\[|ld_stream\(|\bload\(|atomic`)}

// normRule: the norms load their weights (constant) before the wait; the
// residual stream, the sub-layer's output and the normalized row wait.
var normRule = func(fn string) waitRule {
	return waitRule{fn,
		regexp.MustCompile(`norm_w\(wv, w, (n4|hidden / 4)\);`),
		regexp.MustCompile(`norm_w\(wv, w, (n4|hidden / 4)\);`),
		regexp.MustCompile(`\b(h|y|out|hr|yr|o|part)\s*\[|\*\s*(h|y)\b|__ldg\(|atomic`)}
}

// waitsInside are the calls of waitRule functions in kernel bodies.
var waitsInside = map[string]waitRule{
	"awq::gemm_wg<awq::kEpiStore>(":                               wgmmaRule,
	"awq::gemm_wg<awq::kEpiSilu>(":                                wgmmaRule,
	"awq::gemm_wg<awq::kEpiRope>(":                                wgmmaRule,
	"awq::gemm_wg<awq::kEpiRope, 12>(":                            wgmmaRule,
	"awq::gemm_xp<awq::kEpiStore, CW, awq::kXpStages, NT>(":       xpRule,
	"awq::gemm_xp<awq::kEpiSilu, CW, awq::kXpStages, NT>(":        xpRule,
	"awq::gemm_xp<awq::kEpiRope, CW, awq::kXpStages, NT>(":        xpRule,
	"awq::gemm_xp<awq::kEpiStore, CW, awq::kXpStages, NT, true>(": xpRule,
	"awq::gemm_xp<awq::kEpiSilu, CW, awq::kXpStages, NT, true>(":  xpRule,
	"awq::gemm_xp<awq::kEpiRope, CW, awq::kXpStages, NT, true>(":  xpRule,
	"awq::gemv_g128<NT>(":                                         gemvRule,
	"awq::gemv_g128<NT, true>(":                                   gemvRule,
	"awq::gemv_g128<NT, false, true>(":                            gemvRule,
	"attn_prefill2_body<D, 1, 64, 64, true>(":                     verifyEarlyRule,
	"stream_body(":            streamRule,
	"gemv_pattern<L, C>(":     patternRule,
	"gemv_pattern<0, 1, PF>(": patternRule,
	"norm_body(":              normRule("norm_body"),
	"norm_vt4_body(":          normRule("norm_vt4_body"),
}

// TestKernelsWaitForPredecessor: launched overlapped, a kernel may run
// while the previous one still writes, so every kernel entry must call
// grid_dep_wait before touching memory, weights aside.
func TestKernelsWaitForPredecessor(t *testing.T) {
	files, err := fs.Glob(kernelSources, "*.cu")
	if err != nil || len(files) == 0 {
		t.Fatalf("no kernel sources: %v", err)
	}
	kernels := 0
	for _, f := range files {
		b, err := kernelSources.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		// Device functions that wait inside may come from a header.
		lib, err := withIncludes(f, map[string]bool{})
		if err != nil {
			t.Fatal(err)
		}
		for _, loc := range regexp.MustCompile(`__global__`).FindAllStringIndex(src, -1) {
			open := strings.IndexByte(src[loc[1]:], '{')
			if open < 0 {
				t.Fatalf("%s: __global__ at byte %d has no body", f, loc[0])
			}
			fields := strings.Fields(strings.SplitN(src[loc[1]:loc[1]+open], "(", 2)[0])
			name := fields[len(fields)-1]
			body := src[loc[1]+open+1:]
			body = body[:max(matchBrace(body), 0)]
			kernels++
			wait := strings.Index(body, "grid_dep_wait();")
			if wait < 0 {
				// A body that only lets the next kernel start and calls a
				// function that waits inside (awq_gemv_g128_n*_rope, _silu,
				// attn_verify2_d*) waits there.
				var st []string
				for _, s := range statements(body) {
					if !preWait[s] {
						st = append(st, s)
					}
				}
				if len(st) == 1 && waitsInsideFn(st[0]).fn != "" {
					checkWaitsInside(t, f, lib, waitsInsideFn(st[0]))
					continue
				}
				t.Errorf("%s: kernel %s never calls grid_dep_wait", f, name)
				continue
			}
			for _, st := range statements(body[:wait]) {
				if preWait[st] {
					continue
				}
				fn := waitsInsideFn(st)
				if fn.fn == "" {
					t.Errorf("%s: kernel %s runs %q before grid_dep_wait", f, name, st)
					continue
				}
				checkWaitsInside(t, f, lib, fn)
			}
		}
	}
	if kernels < 10 {
		t.Fatalf("found %d kernel entries; the scan is broken", kernels)
	}
}

// waitsInsideFn is the waitsInside rule of the function statement st
// calls, or the zero rule.
func waitsInsideFn(st string) waitRule {
	for call, r := range waitsInside {
		if strings.Contains(st, call) {
			return r
		}
	}
	return waitRule{}
}

// withIncludes is source file f followed by the local headers it includes
// (#include "..."), recursively, each once (seen).
func withIncludes(f string, seen map[string]bool) (string, error) {
	if seen[f] {
		return "", nil
	}
	seen[f] = true
	b, err := kernelSources.ReadFile(f)
	if err != nil {
		return "", err
	}
	src := string(b)
	for _, m := range regexp.MustCompile(`(?m)^#include "([^"]+)"`).FindAllStringSubmatch(src, -1) {
		h, err := withIncludes(m[1], seen)
		if err != nil {
			return "", fmt.Errorf("%s: %w", f, err)
		}
		src += "\n" + h
	}
	return src, nil
}

// checkWaitsInside checks that the device function of rule r in file f
// calls grid_dep_wait and reads only what r allows before it.
func checkWaitsInside(t *testing.T, f, src string, r waitRule) {
	t.Helper()
	fn := r.fn
	loc := regexp.MustCompile(`__device__[^;{]*\b` + fn + `\(`).FindStringIndex(src)
	if loc == nil {
		t.Errorf("%s: no device function %s", f, fn)
		return
	}
	body := src[loc[1]:]
	body = body[strings.IndexByte(body, '{')+1:]
	body = body[:max(matchBrace(body), 0)]
	wait := strings.Index(body, "grid_dep_wait();")
	if wait < 0 {
		t.Errorf("%s: %s never calls grid_dep_wait", f, fn)
		return
	}
	pre := dropLambdas(body[:wait]) // definitions run nothing
	pre = regexp.MustCompile(`(?s)/\*.*?\*/|//[^\n]*`).ReplaceAllString(pre, "")
	early := r.need.MatchString(pre)
	pre = r.early.ReplaceAllString(pre, "")
	pre = regexp.MustCompile(`extern __shared__[^;]*;`).ReplaceAllString(pre, "")
	if m := r.access.FindString(pre); m != "" {
		t.Errorf("%s: %s accesses memory (%q) before grid_dep_wait", f, fn, m)
	}
	if !early {
		t.Errorf("%s: %s reads nothing early before grid_dep_wait: call it at the top instead", f, fn)
	}
}

// dropLambdas removes the bodies of the lambdas code defines
// (`= [&](...) {...};`).
func dropLambdas(code string) string {
	for {
		i := strings.Index(code, "= [&](")
		if i < 0 {
			return code
		}
		open := strings.IndexByte(code[i:], '{')
		if open < 0 {
			return code
		}
		end := matchBrace(code[i+open+1:])
		if end < 0 {
			return code
		}
		code = code[:i] + code[i+open+1+end+1:]
	}
}

// statements splits code into statements without comments, line
// continuations and bare braces or else keywords.
func statements(code string) []string {
	code = regexp.MustCompile(`(?s)/\*.*?\*/|//[^\n]*`).ReplaceAllString(code, "")
	code = strings.ReplaceAll(code, "\\", "")
	var out []string
	for _, st := range strings.Split(code, ";") {
		st = strings.Trim(st, " \t\n{}")
		st = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(st, "}")), "else"))
		st = strings.Trim(st, " \t\n{}")
		if st != "" {
			out = append(out, st+";")
		}
	}
	return out
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
	sameSteps(t, runs[1], runs[0], "overlapped", "not")
}

// TestOverlapCaptureFallback: where a driver cannot capture overlapped
// launches, the engine captures without them and computes the same logits.
func TestOverlapCaptureFallback(t *testing.T) {
	m := synthModel(t, "small", 7)
	defer func(v, f bool) { overlapLaunches, failOverlapCapture = v, f }(overlapLaunches, failOverlapCapture)
	prompt := make([]int, 300)
	for i := range prompt {
		prompt[i] = (i * 7919) % m.Config.Vocab
	}
	var runs [2][][]float32
	for i, fail := range []bool{false, true} {
		overlapLaunches, failOverlapCapture = true, fail // both runs overlap; the second fails its capture
		e := testEngine(t, m, Options{})
		if fail && !e.d.overlap {
			t.Skipf("%s (sm_%d) runs without overlapped launches", e.d.name, e.d.cc)
		}
		next, err := e.Prefill(context.Background(), prompt)
		if err != nil {
			t.Fatal(err)
		}
		for range 4 { // the first step runs eagerly and is captured; the rest replay
			ids, err := e.Verify([]int{next})
			if err != nil {
				t.Fatal(err)
			}
			next = ids[0]
			l, err := e.LastLogits()
			if err != nil {
				t.Fatal(err)
			}
			runs[i] = append(runs[i], l)
		}
		if fail && e.d.overlap {
			t.Error("overlap still on after a failed capture")
		}
		e.Close()
	}
	sameSteps(t, runs[1], runs[0], "after the fallback", "overlapped")
}

// sameSteps fails t unless two runs' logits are equal bit for bit, step
// by step (named for the message).
func sameSteps(t *testing.T, got, want [][]float32, gotName, wantName string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d steps %s, %d %s", len(got), gotName, len(want), wantName)
	}
	for s := range want {
		for j := range want[s] {
			if math.Float32bits(got[s][j]) != math.Float32bits(want[s][j]) {
				t.Fatalf("step %d: logit %d is %v %s, %v %s", s, j, got[s][j], gotName, want[s][j], wantName)
			}
		}
	}
}

// knobKeepsGreedy is the lookup test of an engine knob: on three random
// prompts of n tokens (seeds seed0..seed0+2), greedy ids are the same with
// the knob off and on, and prompt lookup's ids (10 drafts) equal greedy's
// with it on, with drafted tokens accepted. open returns an engine with
// the knob as given; knobKeepsGreedy closes it. what names the knob in
// messages.
func knobKeepsGreedy(t *testing.T, what string, m *inference.Model, n int, seed0 uint64, open func(on bool) *Engine) {
	t.Helper()
	accepted := 0
	for seed := seed0; seed < seed0+3; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed+1))
		prompt := make([]int, n)
		for i := range prompt {
			prompt[i] = rng.IntN(m.Config.Vocab)
		}
		var ids [3][]int
		for i, run := range []struct {
			on bool
			s  inference.Strategy
		}{{false, inference.Greedy}, {true, inference.Greedy}, {true, inference.Lookup}} {
			e := open(run.on)
			rep, err := inference.Generate(context.Background(), e, nil, inference.Request{
				Prompt: prompt, MaxNewTokens: 300, Strategy: run.s, LookupTokens: 10}, nil)
			e.Close()
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = rep.TokenIDs
			accepted += rep.Accepted
		}
		if !slices.Equal(ids[0], ids[1]) {
			t.Errorf("prompt %d: greedy ids differ with %s:\n off %v\n on  %v", seed, what, ids[0], ids[1])
		}
		if !slices.Equal(ids[1], ids[2]) {
			t.Errorf("prompt %d: lookup ids differ from greedy with %s:\n greedy %v\n lookup %v", seed, what, ids[1], ids[2])
		}
	}
	if accepted == 0 {
		t.Error("no drafted token accepted: the test does not exercise verify steps")
	}
	t.Logf("%d drafts accepted over 3 prompts", accepted)
}

// withKnob opens an engine with a package knob set to on (restored after),
// and checks that the engine took what the knob asks for (took reads it).
func withKnob(t *testing.T, m *inference.Model, opts Options, name string, knob *bool, on bool, took func(*Engine) bool) *Engine {
	t.Helper()
	defer func(v bool) { *knob = v }(*knob)
	*knob = on
	e := testEngine(t, m, opts)
	if took(e) != on {
		t.Fatalf("engine %s = %v with the knob %v", name, took(e), on)
	}
	return e
}

// stepScript runs what the knob engine tests compare bit for bit and
// returns the logits after each step: a prefill of each length in shorts
// (reset after each), a prefill of the whole prompt, decodes one-token
// steps through the captured graphs, then verify steps of each size in
// verifies from prompt[100:].
func stepScript(t *testing.T, e *Engine, prompt, shorts []int, decodes int, verifies []int) [][]float32 {
	t.Helper()
	var out [][]float32
	keep := func() {
		l, err := e.LastLogits()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	for _, n := range shorts {
		if _, err := e.Prefill(context.Background(), prompt[:n]); err != nil {
			t.Fatal(err)
		}
		keep()
		e.Reset()
	}
	next, err := e.Prefill(context.Background(), prompt)
	if err != nil {
		t.Fatal(err)
	}
	keep()
	for range decodes {
		ids, err := e.Verify([]int{next})
		if err != nil {
			t.Fatal(err)
		}
		next = ids[0]
		keep()
	}
	for _, k := range verifies {
		if _, err := e.Verify(prompt[100 : 100+k]); err != nil {
			t.Fatal(err)
		}
		keep()
	}
	return out
}
