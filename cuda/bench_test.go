package cuda

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/briefapp/brief/inference"
	"github.com/briefapp/brief/inference/synth"
)

// benchModel opens the synthetic OpenHermes-shaped checkpoint in
// $BRIEF_SYNTH_DIR (written there first if absent; about 4 GB), or skips
// when the variable is unset.
func benchModel(b *testing.B) *inference.Model {
	b.Helper()
	dir := os.Getenv("BRIEF_SYNTH_DIR")
	if dir == "" {
		b.Skip("set BRIEF_SYNTH_DIR to a folder for the synthetic 7B checkpoint")
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
		start := time.Now()
		if _, err := synth.Write(dir, synth.Shapes["openhermes"], synth.Options{Seed: 1}); err != nil {
			b.Fatal(err)
		}
		b.Logf("synth openhermes written in %v", time.Since(start))
	}
	m, err := inference.OpenModel(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

// BenchmarkOpenHermes times the reference workload's pieces on the
// synthetic 7B weights: the 6,435-token prefill, one decode step and one
// verify step of 11 tokens at that context.
func BenchmarkOpenHermes(b *testing.B) {
	m := benchModel(b)
	start := time.Now()
	e, err := New(m, Options{})
	if errors.Is(err, ErrNoGPU) {
		b.Skip(err.Error())
	}
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	b.Logf("%s: weights uploaded in %v, engine memory %+v", e.Name(), time.Since(start), e.Memory())
	prompt := benchPrompt(m)
	b.Run("prefill6435", func(b *testing.B) {
		for b.Loop() {
			e.Reset()
			if _, err := e.Prefill(context.Background(), prompt); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/prefill")
	})
	defer func(k string) { prefillKernel = k }(prefillKernel)
	if prefillKernel == "" {
		// The whole prefill again with each 128-row prefill attention.
		for _, k := range []string{"attn_prefill2", "attn_prefill2q"} {
			b.Run("prefill6435-"+k, func(b *testing.B) {
				prefillKernel = k
				defer func() { prefillKernel = "" }()
				for b.Loop() {
					e.Reset()
					if _, err := e.Prefill(context.Background(), prompt); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/prefill")
			})
		}
	}
	e.Reset()
	if _, err := e.Prefill(context.Background(), prompt); err != nil {
		b.Fatal(err)
	}
	// Weight bytes one step reads, for achieved bandwidth.
	var weights int64
	for _, l := range e.layers {
		for _, p := range []awqDev{l.qkv, l.o, l.gu, l.down} {
			weights += awqBytes(p.p.In, p.p.Out, p.p.Group)
		}
	}
	weights += 2 * int64(m.Config.Vocab) * int64(m.Config.Hidden)
	kv := int64(m.Config.Layers) * 2 * int64(m.Config.KVHeads) * int64(m.Config.HeadDim) * 2 * int64(min(e.Len(), max(m.Config.SlidingWindow, 1)))
	for _, n := range []int{1, 2, 4, 8, 11, 16} {
		b.Run(fmt.Sprintf("verify%d", n), func(b *testing.B) {
			toks := prompt[:n]
			for b.Loop() {
				if _, err := e.Verify(toks); err != nil {
					b.Fatal(err)
				}
				if err := e.Rollback(e.Len() - n); err != nil {
					b.Fatal(err)
				}
			}
			per := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(per*1e3, "ms/step")
			b.ReportMetric(float64(weights+kv)/per/1e9, "GB/s")
			if n == 1 {
				b.ReportMetric(1/per, "tokens/s")
			}
		})
	}
	// 32 greedy steps through Greedy (queued back to back on the device)
	// from the prompt's end, against verify1's one step at a time.
	b.Run("greedy32", func(b *testing.B) {
		const steps = 32
		n0 := e.Len()
		for b.Loop() {
			if err := e.Greedy(prompt[0], steps, func(int) bool { return true }); err != nil {
				b.Fatal(err)
			}
			if err := e.Rollback(n0); err != nil {
				b.Fatal(err)
			}
		}
		per := b.Elapsed().Seconds() / float64(b.N*steps)
		b.ReportMetric(per*1e3, "ms/step")
		b.ReportMetric(1/per, "tokens/s")
	})
	for _, T := range []int{1, 11, 512} {
		prof, err := e.Profile(T, 5)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("kernel time per step of %d tokens at position %d:\n%s", T, e.Len(), profileTable(prof))
	}
	prefillVariant = ""
	prof, err := e.Profile(512, 5)
	prefillVariant = "_sync"
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("prefill attention with prefetch, 512 tokens at position %d: attn_prefill %.3f ms", e.Len(), prof["attn_prefill_d128"])
	// Prefill attention kernels on the reference chunk: 64-row attn_prefill
	// (prefillVariant) against the 128-row attn_prefill2*.
	_, attnFlops := e.familyWork("attention", "", 512, e.Len())
	for _, k := range []string{"", "attn_prefill2", "attn_prefill2q"} {
		prefillKernel = k
		ap := e.attnPlan(512)
		prof, err := e.Profile(512, 5)
		if err != nil {
			b.Fatal(err)
		}
		ms := prof[ap.kernel]
		b.Logf("prefill attention %s, 512 tokens at position %d: %.3f ms (%.0f TFLOP/s), %d splits, attn_reduce %.3f ms, step %.3f ms",
			ap.kernel, e.Len(), ms, attnFlops/ms/1e9, ap.splits, prof["attn_reduce"], profileTotal(prof))
	}
	// Other split counts for the 128-row kernels, where the workspace holds them.
	splitRows := int64(512) * int64(m.Config.Heads)
	for _, k := range []string{"attn_prefill2", "attn_prefill2q"} {
		prefillKernel = k
		for _, s := range []int{1, 2, 3, 4, 6} {
			if int64(s)*splitRows > e.wsRows {
				b.Logf("prefill attention %s, %d splits: skipped, the workspace holds %d", k, s, e.wsRows/splitRows)
				continue
			}
			prefill2SplitsOverride = s
			ap := e.attnPlan(512)
			prof, err := e.Profile(512, 5)
			prefill2SplitsOverride = 0
			if err != nil {
				b.Fatal(err)
			}
			ms := prof[ap.kernel]
			b.Logf("prefill attention %s, %d splits: %.3f ms (%.0f TFLOP/s) + attn_reduce %.3f ms", ap.kernel, s, ms, attnFlops/ms/1e9, prof["attn_reduce"])
		}
	}
	prefillKernel = ""
	// Verify steps with and without the next key tile prefetched.
	for _, T := range []int{1, 11} {
		for _, v := range []string{"", "_sync"} {
			verifyVariant = v
			prof, err := e.Profile(T, 20)
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("verify attention %q, %d tokens at position %d: %.3f ms a step (attn_reduce %.3f ms)", v, T, e.Len(), prof["attn_prefill"+v+"_d128"], prof["attn_reduce"])
		}
	}
	verifyVariant = ""
	b.Logf("engine memory %+v", e.Memory())
}

// profileTotal is the summed milliseconds of a Profile result.
func profileTotal(p map[string]float64) float64 {
	t := 0.0
	for _, v := range p {
		t += v
	}
	return t
}

// profileTable formats a Profile result, largest first, with shares.
func profileTable(p map[string]float64) string {
	type row struct {
		name string
		ms   float64
	}
	var rows []row
	total := 0.0
	for k, v := range p {
		rows = append(rows, row{k, v})
		total += v
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].ms > rows[j].ms })
	var sb strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&sb, "  %-36s %9.3f ms %5.1f%%\n", r.name, r.ms, 100*r.ms/total)
	}
	fmt.Fprintf(&sb, "  %-36s %9.3f ms\n", "total", total)
	return sb.String()
}

// benchPrompt is a prompt of the reference run's length (6,435 ids), drawn
// from a fixed seed.
func benchPrompt(m *inference.Model) []int {
	rng := rand.New(rand.NewPCG(1, 1))
	prompt := make([]int, 6435)
	for i := range prompt {
		prompt[i] = rng.IntN(m.Config.Vocab)
	}
	return prompt
}

// benchEngine opens an engine on m with the package's knobs as they are now
// and prefills prompt; it skips without a GPU. The caller closes it.
func benchEngine(b *testing.B, m *inference.Model, prompt []int) *Engine {
	b.Helper()
	e, err := New(m, Options{})
	if errors.Is(err, ErrNoGPU) {
		b.Skip(err.Error())
	}
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.Prefill(context.Background(), prompt); err != nil {
		e.Close()
		b.Fatal(err)
	}
	return e
}

// benchVerify runs sub-benchmark name: replayed verify steps of the first n
// prompt ids at the engine's position, each rolled back, in ms/step.
func benchVerify(b *testing.B, e *Engine, name string, prompt []int, n int) {
	b.Run(name, func(b *testing.B) {
		for b.Loop() {
			if _, err := e.Verify(prompt[:n]); err != nil {
				b.Fatal(err)
			}
			if err := e.Rollback(e.Len() - n); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/step")
	})
}

// attentionMs is the profiled attention kernels' milliseconds of a step.
func attentionMs(prof map[string]float64) float64 {
	ms := 0.0
	for k, v := range prof {
		if kernelFamily(k) == "attention" {
			ms += v
		}
	}
	return ms
}

// BenchmarkVerifyKeyBlocks times replayed verify steps of 1 and 11 tokens at
// the reference context for several attention key blocks, one engine each
// (the split workspace is sized when the engine opens).
func BenchmarkVerifyKeyBlocks(b *testing.B) {
	m := benchModel(b)
	prompt := benchPrompt(m)
	defer func(v int) { verifyBlockKeys = v }(verifyBlockKeys)
	for _, kb := range []int{64, 128, 192, 256} {
		verifyBlockKeys = kb
		e := benchEngine(b, m, prompt)
		for _, n := range []int{1, 11} {
			benchVerify(b, e, fmt.Sprintf("keys%d/verify%d", kb, n), prompt, n)
		}
		prof, err := e.Profile(1, 20)
		if err != nil {
			e.Close()
			b.Fatal(err)
		}
		b.Logf("key block %d: %d splits; 1-token step attention %.3f ms, attn_reduce %.3f ms (profiled)", kb, e.attnPlan(1).splits, attentionMs(prof), prof["attn_reduce"])
		e.Close()
	}
}

// BenchmarkVerifyKernels times replayed verify steps of 1 and 11 tokens at
// the reference context with the tensor-core attention (verifyKernel "")
// and attn_verify.cu's kernels, one engine each (graphs and the split
// workspace are made for the kernel of the engine's lifetime), and logs
// each one's profiled attention and attn_reduce time.
func BenchmarkVerifyKernels(b *testing.B) {
	m := benchModel(b)
	prompt := benchPrompt(m)
	defer func(v string) { verifyKernel = v }(verifyKernel)
	for _, k := range []string{"", "attn_verify", "attn_verify_k64"} {
		verifyKernel = k
		e := benchEngine(b, m, prompt)
		name := strings.TrimSuffix(e.attnPlan(1).kernel, fmt.Sprintf("_d%d", m.Config.HeadDim))
		for _, n := range []int{1, 11} {
			benchVerify(b, e, fmt.Sprintf("%s/verify%d", name, n), prompt, n)
			prof, err := e.Profile(n, 20)
			if err != nil {
				e.Close()
				b.Fatal(err)
			}
			p := e.attnPlan(n)
			b.Logf("%s, %d-token step at position %d: %s, %d splits of %d keys; attention %.3f ms, attn_reduce %.3f ms a step (profiled)",
				name, n, e.Len(), p.kernel, p.splits, p.blockKeys, attentionMs(prof), prof["attn_reduce"])
		}
		e.Close()
	}
}

// BenchmarkStepWithout times replayed 1- and 8-token steps at the reference
// context with one stage of the network left out (skipLaunch), one engine
// each: the difference to the full step bounds what fusing that stage into
// its neighbours, or making it free, could save. Its logits are wrong. The
// stages are the default engine's launches (SiLU and the RoPE append are
// mat-vec epilogues since sessions 4-5, so they have no stage).
func BenchmarkStepWithout(b *testing.B) {
	m := benchModel(b)
	prompt := benchPrompt(m)
	stages := []struct {
		name string
		skip func(kernel, tag string) bool
	}{
		{"nothing", nil},
		{"add_rmsnorm", func(k, _ string) bool { return k == "add_rmsnorm" || k == "add_rmsnorm_vt4" }}, // embed_rmsnorm stays
		{"attention", func(k, _ string) bool { return strings.HasPrefix(k, "attn_") && k != "attn_reduce" }},
		{"attn_reduce", func(k, _ string) bool { return k == "attn_reduce" }},
		{"lm_head", func(k, _ string) bool { return strings.HasPrefix(k, "lm_head") }},
		{"q|k|v", func(_, t string) bool { return t == "q|k|v" }},
		{"o_proj", func(_, t string) bool { return t == "o_proj" }},
		{"gate|up", func(_, t string) bool { return t == "gate|up" }},
		{"down_proj", func(_, t string) bool { return t == "down_proj" }},
	}
	defer func() { skipLaunch = nil }()
	for _, st := range stages {
		skipLaunch = nil
		e := benchEngine(b, m, prompt)
		skipLaunch = st.skip // steps only: graphs are captured at each size's first step
		for _, n := range []int{1, 8} {
			benchVerify(b, e, fmt.Sprintf("without_%s/verify%d", st.name, n), prompt, n)
		}
		skipLaunch = nil
		e.Close()
	}
}

// BenchmarkVerifyVariants times replayed verify steps at the reference
// context with each tensor-core attention variant (verifyVariant) and
// attn_verify2 (verifyEarly), one engine each: graphs keep the kernel they
// were captured with.
func BenchmarkVerifyVariants(b *testing.B) {
	m := benchModel(b)
	prompt := benchPrompt(m)
	defer func(v string, early bool) { verifyVariant, verifyEarly = v, early }(verifyVariant, verifyEarly)
	for _, v := range []string{"_sync", "", "early"} {
		verifyVariant, verifyEarly = v, false
		if v == "early" {
			verifyVariant, verifyEarly = "", true
		}
		e := benchEngine(b, m, prompt)
		name := strings.TrimSuffix(e.attnPlan(1).kernel, fmt.Sprintf("_d%d", m.Config.HeadDim))
		for _, n := range []int{1, 8, 11, 16} {
			benchVerify(b, e, fmt.Sprintf("%s/verify%d", name, n), prompt, n)
		}
		e.Close()
	}
}

// BenchmarkStepBoundaries times replayed 1-token steps at the reference
// context with 0, 1 and 2 empty kernels after every launch (extraLaunches),
// one engine each: the slope is what one more kernel boundary costs in a
// step, the most that fusing a kernel into its neighbour can save beyond
// the kernel's own work. Logits are unchanged (the kernel does nothing).
func BenchmarkStepBoundaries(b *testing.B) {
	m := benchModel(b)
	prompt := benchPrompt(m)
	defer func() { extraLaunches = 0 }()
	for _, x := range []int{0, 1, 2} {
		extraLaunches = 0
		e := benchEngine(b, m, prompt)
		extraLaunches = x // steps only: graphs are captured at each size's first step
		benchVerify(b, e, fmt.Sprintf("extra%d/verify1", x), prompt, 1)
		extraLaunches = 0
		e.Close()
	}
}

// benchKnob opens one engine with an engine knob off, then one with it on
// (set sets it, has reads what the engine took), each with the reference
// prompt prefilled, and runs body on it; name is "off" or "on". A failing
// body calls b.Fatal; the engine is closed either way.
func benchKnob(b *testing.B, what string, set func(bool), has func(*Engine) bool, body func(e *Engine, name string, prompt []int)) {
	m := benchModel(b)
	prompt := benchPrompt(m)
	for _, on := range []bool{false, true} {
		name := map[bool]string{false: "off", true: "on"}[on]
		set(on)
		func() {
			e := benchEngine(b, m, prompt)
			defer e.Close()
			if has(e) != on {
				b.Fatalf("engine %s = %v with the knob %v", what, has(e), on)
			}
			body(e, name, prompt)
		}()
	}
}

// benchKnobSteps times replayed verify steps of 1, 8, 11 and 16 tokens at
// the reference context with an engine knob off and on (benchKnob), and
// logs each engine's kernel profile of a 1-token step and its memory.
func benchKnobSteps(b *testing.B, what string, set func(bool), has func(*Engine) bool) {
	benchKnob(b, what, set, has, func(e *Engine, name string, prompt []int) {
		for _, n := range []int{1, 8, 11, 16} {
			benchVerify(b, e, fmt.Sprintf("%s/verify%d", name, n), prompt, n)
		}
		prof, err := e.Profile(1, 20)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%s %s, %s, kernel time per 1-token step at position %d:\n%s", what, name, e.Name(), e.Len(), profileTable(prof))
		b.Logf("%s %s: engine memory %+v", what, name, e.Memory())
	})
}

// benchKnobPrefill times the reference prompt's prefill with an engine
// knob off and on (benchKnob), and logs each engine's kernel profile of a
// 512-token chunk at that context and its memory; describe, when set, logs
// more about each engine first.
func benchKnobPrefill(b *testing.B, what string, set func(bool), has func(*Engine) bool, describe func(e *Engine, name string)) {
	benchKnob(b, what, set, has, func(e *Engine, name string, prompt []int) {
		if describe != nil {
			describe(e, name)
		}
		benchPrefill(b, e, name+"/prefill6435", prompt)
		e.Reset()
		if _, err := e.Prefill(context.Background(), prompt); err != nil {
			b.Fatal(err)
		}
		prof, err := e.Profile(512, 5)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%s %s, %s, kernel time per 512-token chunk at position %d:\n%s", what, name, e.Name(), e.Len(), profileTable(prof))
		b.Logf("%s %s: engine memory %+v", what, name, e.Memory())
	})
}

// benchPrefill runs sub-benchmark name: prefills of prompt from an empty
// cache, in ms/prefill.
func benchPrefill(b *testing.B, e *Engine, name string, prompt []int) {
	mon, _ := OpenMonitor(e.opts.Device) // no energy figures without NVML
	energy := func() float64 {
		if mon == nil {
			return 0
		}
		j, err := mon.Energy()
		if err != nil {
			mon = nil
		}
		return j
	}
	b.Run(name, func(b *testing.B) {
		j0 := energy()
		for b.Loop() {
			e.Reset()
			if _, err := e.Prefill(context.Background(), prompt); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/prefill")
		if j := energy(); mon != nil {
			b.ReportMetric((j-j0)/float64(b.N), "J/prefill")
			b.ReportMetric((j-j0)/b.Elapsed().Seconds(), "W")
		}
	})
}

// BenchmarkPrefillChunk times the reference prompt's prefill on the
// synthetic 7B ($BRIEF_SYNTH_DIR, see benchModel) at several prefill chunk
// sizes ($BRIEF_CHUNKS, comma-separated, else 256, 512, 1024 and 2048),
// one engine at a time, and logs each one's memory.
func BenchmarkPrefillChunk(b *testing.B) {
	m := benchModel(b)
	prompt := benchPrompt(m)
	chunks := []int{256, 512, 1024, 2048}
	if s := os.Getenv("BRIEF_CHUNKS"); s != "" {
		chunks = chunks[:0]
		for _, f := range strings.Split(s, ",") {
			c, err := strconv.Atoi(f)
			if err != nil {
				b.Fatalf("BRIEF_CHUNKS: %v", err)
			}
			chunks = append(chunks, c)
		}
	}
	for _, c := range chunks {
		e, err := New(m, Options{Chunk: c})
		if errors.Is(err, ErrNoGPU) {
			b.Skip(err.Error())
		}
		if err != nil {
			b.Fatal(err)
		}
		benchPrefill(b, e, fmt.Sprintf("chunk%d", c), prompt)
		b.Logf("chunk %d: engine memory %+v", c, e.Memory())
		e.Close()
	}
}
