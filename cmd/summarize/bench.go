package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/briefapp/brief/inference"
	"github.com/briefapp/brief/inference/chat"
	"github.com/briefapp/brief/inference/lookup"
	"github.com/briefapp/brief/inference/tokenizer"
)

func init() {
	register("bench", "benchmark the reference workload: prefill, decode, verify, memory, kernels, lookup replay", func(args []string) error {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		return runBench(ctx, args, os.Stdin, os.Stdout, os.Stderr)
	})
}

// benchOptions are the flags of the bench command.
type benchOptions struct {
	model, article, engine, continuation string
	jsonOut                              string
	replays                              []string
	newTokens, verify, repeats           int
	prefillRuns, profileSteps            int
	replayCases                          int
	lookupTokens, lookupNgram            int
	transformers                         float64
	json, ceiling                        bool
}

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func parseBench(args []string, stderr io.Writer) (*benchOptions, error) {
	o := &benchOptions{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.model, "model", "", "model folder, usually a synthetic 7B (summarize synth --out DIR --shape openhermes --seed 1)")
	fs.StringVar(&o.article, "article", "", "article the prompt is built from, as summarize run --article builds it (the reference: llama2_article.txt)")
	fs.StringVar(&o.engine, "engine", "auto", "auto (CUDA if available, else CPU), cuda or cpu")
	fs.IntVar(&o.newTokens, "new", 512, "greedy decode length after the prompt")
	fs.IntVar(&o.verify, "verify", 11, fmt.Sprintf("tokens of the verify step compared with a 1-token step (1..%d)", inference.MaxVerify))
	fs.IntVar(&o.repeats, "repeats", 30, "timed repeats of each step in the verify comparison")
	fs.IntVar(&o.prefillRuns, "prefill-runs", 3, "timed prefills of the prompt (after one warm-up)")
	fs.IntVar(&o.profileSteps, "profile-steps", 5, "steps averaged per kernel profile (CUDA only; 0: no profile)")
	fs.Var((*listFlag)(&o.replays), "replay", "pld-replay data set (cnn_dm_outputs.json, mt_bench_output.json); repeatable or comma-separated")
	fs.IntVar(&o.replayCases, "replay-cases", 0, "use the first N cases of each data set (0: all)")
	fs.StringVar(&o.continuation, "continuation", "", "recorded continuation of the article's prompt (text), replayed like a data set case")
	fs.IntVar(&o.lookupTokens, "lookup-tokens", inference.DefaultLookupTokens, fmt.Sprintf("most drafted tokens per replay step (1..%d)", inference.MaxVerify-1))
	fs.IntVar(&o.lookupNgram, "lookup-ngram", lookup.DefaultNgram, "longest n-gram the replay's drafter matches")
	fs.Float64Var(&o.transformers, "transformers", 0, "transformers' end-to-end tokens/s on the same GPU (tools/hfcompare --time); prints our throughput over it")
	fs.BoolVar(&o.json, "json", false, "print one JSON object with every figure instead of the tables")
	fs.BoolVar(&o.ceiling, "ceiling", false, "last, time the decode step's kernels as plain reads of their bytes (CUDA; needs the step's bytes free besides the engine)")
	fs.StringVar(&o.jsonOut, "json-out", "", "also write the JSON object to this file (with the tables on stdout)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.model == "":
		return nil, errors.New("--model is required")
	case o.article == "":
		return nil, errors.New("--article is required (the reference: llama2_article.txt)")
	case o.newTokens < 1:
		return nil, fmt.Errorf("--new %d: want at least 1", o.newTokens)
	case o.verify < 1 || o.verify > inference.MaxVerify:
		return nil, fmt.Errorf("--verify %d: want 1..%d", o.verify, inference.MaxVerify)
	case o.repeats < 1:
		return nil, fmt.Errorf("--repeats %d: want at least 1", o.repeats)
	case o.prefillRuns < 1:
		return nil, fmt.Errorf("--prefill-runs %d: want at least 1", o.prefillRuns)
	case o.profileSteps < 0:
		return nil, fmt.Errorf("--profile-steps %d: want 0 or more", o.profileSteps)
	case o.replayCases < 0:
		return nil, fmt.Errorf("--replay-cases %d: want 0 (all) or more", o.replayCases)
	case o.lookupTokens < 1 || o.lookupTokens > inference.MaxVerify-1:
		return nil, fmt.Errorf("--lookup-tokens %d: want 1..%d (an engine step verifies at most %d tokens)", o.lookupTokens, inference.MaxVerify-1, inference.MaxVerify)
	case o.lookupNgram < 1 || o.lookupNgram > 64:
		return nil, fmt.Errorf("--lookup-ngram %d: want 1..64", o.lookupNgram)
	case o.transformers < 0:
		return nil, fmt.Errorf("--transformers %v: want tokens/s > 0", o.transformers)
	}
	return o, nil
}

// benchMonitor is what bench reads device-wide (NVML; *cuda.Monitor).
type benchMonitor interface {
	DeviceName() string
	DeviceMemory() (used, total int64, err error)
	Clocks() (sm, mem int, err error)
	MaxClocks() (sm, mem int, err error)
	PeakBandwidth() (float64, error)
	ThrottleReasons() (uint64, error)
	Power() (watts, limit float64, err error)
}

// CUDA-only parts, set by bench_cuda.go; nil (or not ok) elsewhere.
var (
	// openBenchMonitor opens the device monitor of the GPU engine 0.
	openBenchMonitor func() (benchMonitor, error)
	// profileKernels runs the engine's kernel profile for steps of T tokens
	// at its current position, grouped into families; ok is false for an
	// engine without one.
	profileKernels func(e inference.Engine, T, steps int) (fams []kernelFamily, ok bool, err error)
	// streamCeiling times the engine's one-token step as plain reads
	// (cuda.Engine.StreamCeiling); ok is false for an engine without it.
	streamCeiling func(e inference.Engine) (c *ceilingJSON, ok bool, err error)
)

// ceilingJSON is the decode step's streaming ceiling (cuda.StreamCeiling):
// the step's kernels as plain reads of their bytes.
type ceilingJSON struct {
	Position   int     `json:"position"`
	Kernels    int     `json:"kernels"`
	BigKernels int     `json:"big_kernels"`
	Bytes      int64   `json:"bytes"`
	StepsMS    float64 `json:"steps_ms"` // every kernel as a plain read
	BigMS      float64 `json:"big_ms"`   // the kernels of a megabyte or more only
	OneMS      float64 `json:"one_ms"`   // one read of all the bytes
	// One persistent kernel, a grid barrier where each kernel would end.
	PersistMS    float64 `json:"persist_ms"`
	PersistBigMS float64 `json:"persist_big_ms"`
}

// kernelFamily is one row of a kernel profile (cuda.KernelFamily).
type kernelFamily struct {
	Name  string  `json:"name"`
	Part  string  `json:"part,omitempty"`
	MS    float64 `json:"ms"`
	Share float64 `json:"share"`
	Bytes int64   `json:"bytes,omitempty"`
	FLOPs float64 `json:"flops,omitempty"`
	GBps  float64 `json:"gb_per_s,omitempty"`
	TFLOP float64 `json:"tflop_per_s,omitempty"`
}

// Engine extras bench uses where an engine has them (the CUDA engine does).
type (
	stepByter     interface{ StepBytes(context int) int64 }
	gpuEngineInfo interface {
		DeviceName() string
		ComputeCapability() int
	}
	chunker       interface{ Chunk() int }
	prefillKernel interface{ PrefillGEMM() string }
	prefillAttn   interface{ PrefillAttention() string }
	prefillChunks interface{ PrefillChunks() string }
)

// benchJSON is every figure of a run; --json prints it.
type benchJSON struct {
	Engine       string         `json:"engine"`
	Card         string         `json:"card"`
	Device       *deviceJSON    `json:"device,omitempty"`
	Model        string         `json:"model"`
	Article      string         `json:"article"`
	PromptTokens int            `json:"prompt_tokens"`
	EngineOpenS  float64        `json:"engine_open_s"`
	Prefill      prefillJSON    `json:"prefill"`
	Decode       decodeJSON     `json:"decode"`
	Verify       verifyJSON     `json:"verify"`
	Memory       memoryJSON     `json:"memory"`
	Profiles     []profileJSON  `json:"profiles,omitempty"`
	Replay       []replayResult `json:"replay,omitempty"`
	Transformers *vsJSON        `json:"transformers,omitempty"`
	Ceiling      *ceilingJSON   `json:"ceiling,omitempty"`
	Targets      []targetJSON   `json:"targets,omitempty"`
}

type deviceJSON struct {
	Name              string      `json:"name"`
	ComputeCapability int         `json:"compute_capability,omitempty"`
	SMClockMHz        int         `json:"sm_clock_mhz,omitempty"` // at the start, before the engine opened
	MemClockMHz       int         `json:"mem_clock_mhz,omitempty"`
	MaxSMClockMHz     int         `json:"max_sm_clock_mhz,omitempty"`
	MaxMemClockMHz    int         `json:"max_mem_clock_mhz,omitempty"`
	RunSMClockMHz     [2]int      `json:"run_sm_clock_mhz"` // lowest and highest sampled during the run
	RunMemClockMHz    [2]int      `json:"run_mem_clock_mhz"`
	ThrottleReasons   uint64      `json:"clock_event_reasons"` // NVML mask at the end of decode
	Phases            []phaseJSON `json:"phases,omitempty"`    // clocks and power during prefill and decode
	PeakBandwidthGBps float64     `json:"peak_bandwidth_gb_per_s,omitempty"`
	PrefillGEMM       string      `json:"prefill_gemm,omitempty"`      // the prefill linears' kernels
	PrefillAttention  string      `json:"prefill_attention,omitempty"` // the prefill chunks' attention kernels
	PrefillChunks     string      `json:"prefill_chunks,omitempty"`    // how the prefill's chunks run
}

type prefillJSON struct {
	Runs        int     `json:"runs"`
	MS          float64 `json:"ms"` // mean of the timed runs
	BestMS      float64 `json:"best_ms"`
	TokensPS    float64 `json:"tokens_per_s"`
	TimeToFirst float64 `json:"time_to_first_token_ms"` // of the generate run
}

type decodeJSON struct {
	NewTokens      int     `json:"new_tokens"`
	StopReason     string  `json:"stop_reason"`
	Steps          int     `json:"steps"`
	TotalMS        float64 `json:"total_ms"`
	DecodeTokensPS float64 `json:"decode_tokens_per_s"`
	Throughput     float64 `json:"throughput_tokens_per_s"` // the original script's: new tokens / whole generate time
	MaxMemoryMB    float64 `json:"max_memory_mb"`
	StepMS         float64 `json:"step_ms"`
	StepBytes      int64   `json:"step_bytes,omitempty"` // mean bytes one step must read
	GBps           float64 `json:"gb_per_s,omitempty"`
	PctPeak        float64 `json:"pct_of_peak_bandwidth,omitempty"`
}

type verifyJSON struct {
	Tokens   int     `json:"tokens"`
	Context  int     `json:"context"`
	Repeats  int     `json:"repeats"`
	StepMS   float64 `json:"step_ms"`
	SingleMS float64 `json:"single_ms"`
	Ratio    float64 `json:"ratio"`
}

type memoryJSON struct {
	EnginePeak     int64   `json:"engine_peak_bytes"`
	EnginePeakMB   float64 `json:"engine_peak_mb"`
	DevicePeakMB   float64 `json:"device_peak_mb,omitempty"`   // NVML, all processes
	DeviceBeforeMB float64 `json:"device_before_mb,omitempty"` // NVML, before the engine opened
	DeviceSamples  int     `json:"device_samples,omitempty"`
}

type profileJSON struct {
	Tokens   int            `json:"tokens"`
	Position int            `json:"position"`
	TotalMS  float64        `json:"total_ms"`
	Families []kernelFamily `json:"families"`
}

type vsJSON struct {
	TokensPS float64 `json:"tokens_per_s"`
	Ratio    float64 `json:"ratio"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func runBench(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := parseBench(args, stderr)
	if err != nil {
		return err
	}
	if o.jsonOut != "" {
		if st, err := os.Stat(filepath.Dir(o.jsonOut)); err != nil || !st.IsDir() {
			return fmt.Errorf("--json-out %s: no folder %s to write it in", o.jsonOut, filepath.Dir(o.jsonOut))
		}
	}
	if st, err := os.Stat(o.model); err != nil {
		return fmt.Errorf("model folder: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("model %s is not a folder", o.model)
	}
	prompt, tok, err := buildPrompt(&runOptions{model: o.model, article: o.article,
		instruction: chat.DefaultInstruction, system: chat.DefaultSystem}, stdin)
	if err != nil {
		return err
	}
	sets, err := loadReplays(o, tok, prompt)
	if err != nil {
		return err
	}
	logf := func(f string, a ...any) { fmt.Fprintf(stderr, "bench: "+f+"\n", a...) }

	m, err := inference.OpenModel(o.model)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := checkFits("the prompt", len(prompt), o, m.Config.MaxPositions, "max_position_embeddings"); err != nil {
		return err
	}

	r := &benchJSON{Model: o.model, Article: o.article, PromptTokens: len(prompt)}
	var mon *sampler
	var monErr error
	if openBenchMonitor != nil && o.engine != "cpu" {
		var bm benchMonitor
		if bm, monErr = openBenchMonitor(); monErr == nil {
			mon = startSampler(bm)
			defer mon.stop()
		}
	}

	start := time.Now()
	eng, err := openEngine(o.engine, m, stderr)
	if err != nil {
		return err
	}
	defer eng.Close()
	r.EngineOpenS = time.Since(start).Seconds()
	r.Engine = eng.Name()
	r.Card = eng.Name()
	if gpu, ok := eng.(gpuEngineInfo); ok {
		switch {
		case mon != nil:
			r.Device = mon.device()
		default:
			r.Device = &deviceJSON{Name: gpu.DeviceName()}
			logf("no device monitor (%v): no clocks, bandwidth limit or device-wide memory", monErr)
		}
		r.Device.ComputeCapability = gpu.ComputeCapability()
		if k, ok := eng.(prefillKernel); ok {
			r.Device.PrefillGEMM = k.PrefillGEMM()
		}
		if k, ok := eng.(prefillAttn); ok {
			r.Device.PrefillAttention = k.PrefillAttention()
		}
		if k, ok := eng.(prefillChunks); ok {
			r.Device.PrefillChunks = k.PrefillChunks()
		}
		r.Card = r.Device.Name
	} else if mon != nil {
		mon.stop() // the CPU engine: NVML figures would be another device's
		mon = nil
	}
	if err := checkFits("the prompt", len(prompt), o, eng.MaxContext(), "the engine's maximum context"); err != nil {
		return err
	}
	logf("%s: engine opened in %.1f s; prompt %d tokens", r.Card, r.EngineOpenS, len(prompt))

	mon.setPhase("prefill")
	if err := benchPrefill(ctx, eng, prompt, o.prefillRuns, &r.Prefill); err != nil {
		return err
	}
	mon.setPhase("")
	logf("prefill %.1f ms", r.Prefill.MS)
	if err := benchVerify(eng, prompt, o.verify, o.repeats, &r.Verify); err != nil {
		return err
	}
	logf("verify %d tokens %.3f ms, 1 token %.3f ms", o.verify, r.Verify.StepMS, r.Verify.SingleMS)
	if o.profileSteps > 0 && profileKernels != nil {
		ts := []int{1}
		if o.verify != 1 {
			ts = append(ts, o.verify)
		}
		if c, ok := eng.(chunker); ok && c.Chunk() > inference.MaxVerify {
			ts = append(ts, min(512, c.Chunk(), eng.MaxContext()-eng.Len()))
		}
		for _, T := range ts {
			fams, ok, err := profileKernels(eng, T, o.profileSteps)
			if err != nil {
				return fmt.Errorf("kernel profile of %d-token steps at position %d: %w", T, eng.Len(), err)
			}
			if !ok {
				break
			}
			r.Profiles = append(r.Profiles, newProfile(T, eng.Len(), fams))
		}
		if len(r.Profiles) > 0 {
			logf("kernel profiles done")
		}
	}

	mon.setPhase("greedy run")
	if err := benchDecode(ctx, eng, m, tok, prompt, o.newTokens, mon, r); err != nil {
		return err
	}
	mon.setPhase("")
	logf("greedy decode %.1f tokens/s", r.Decode.DecodeTokensPS)
	if o.transformers > 0 {
		r.Transformers = &vsJSON{TokensPS: o.transformers, Ratio: r.Decode.Throughput / o.transformers}
	}

	for _, s := range sets {
		res, err := replayOnEngine(ctx, eng, s, o.lookupTokens, o.lookupNgram)
		if err != nil {
			return err
		}
		r.Replay = append(r.Replay, res)
		logf("replay %s: greedy %.1f tokens/s, lookup %.1f tokens/s", s.name, res.GreedyTPS, res.LookupTPS)
	}

	mem := eng.Memory()
	r.Memory.EnginePeak = mem.Peak
	r.Memory.EnginePeakMB = mib(mem.Peak)
	if mon != nil {
		mon.stop()
		mon.fill(r)
	}
	if o.ceiling {
		// After the memory figures: its buffer is not the engine's.
		if streamCeiling == nil {
			return errors.New("--ceiling: this build has no CUDA engine")
		}
		// At the prompt's end, where the verify figures were taken.
		eng.Reset()
		if _, err := eng.Prefill(ctx, prompt); err != nil {
			return fmt.Errorf("--ceiling: prefill of %d tokens: %w", len(prompt), err)
		}
		c, ok, err := streamCeiling(eng)
		switch {
		case err != nil:
			return fmt.Errorf("--ceiling: %w", err)
		case !ok:
			return fmt.Errorf("--ceiling: the %s engine has no streaming ceiling (CUDA only)", r.Engine)
		}
		r.Ceiling = c
		logf("ceiling: %d kernels as plain reads %.3f ms", c.Kernels, c.StepsMS)
	}
	r.Targets = targets(r)
	if o.jsonOut != "" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("--json-out: %w", err)
		}
	}
	if o.json {
		return json.NewEncoder(stdout).Encode(r)
	}
	printBench(stdout, r, o)
	return nil
}

// checkFits refuses a prompt that leaves no room for the run's new tokens
// in a context of limit positions.
func checkFits(what string, prompt int, o *benchOptions, limit int, limitName string) error {
	need := prompt + max(o.newTokens, o.verify)
	if limit > 0 && need > limit {
		return fmt.Errorf("%s is %d tokens; with %d more (--new %d, --verify %d) that is %d positions, more than the %d of %s",
			what, prompt, need-prompt, o.newTokens, o.verify, need, limit, limitName)
	}
	return nil
}

// benchPrefill times the prompt's prefill: one warm-up, then runs.
func benchPrefill(ctx context.Context, eng inference.Engine, prompt []int, runs int, out *prefillJSON) error {
	out.Runs = runs
	var total time.Duration
	for i := 0; i <= runs; i++ {
		eng.Reset()
		start := time.Now()
		if _, err := eng.Prefill(ctx, prompt); err != nil {
			return fmt.Errorf("prefill of %d tokens: %w", len(prompt), err)
		}
		d := time.Since(start)
		if i == 0 {
			continue // warm-up: kernels load, caches fill
		}
		total += d
		if out.BestMS == 0 || ms(d) < out.BestMS {
			out.BestMS = ms(d)
		}
	}
	out.MS = ms(total) / float64(runs)
	out.TokensPS = float64(len(prompt)) / (out.MS / 1e3)
	return nil
}

// benchVerify times a verify step of k tokens and a 1-token step at the
// current context, each repeats times after a warm-up (which captures the
// step's graph), rolling back after every step.
func benchVerify(eng inference.Engine, prompt []int, k, repeats int, out *verifyJSON) error {
	base := eng.Len()
	out.Tokens, out.Context, out.Repeats = k, base, repeats
	timeStep := func(toks []int) (float64, error) {
		var total time.Duration
		for i := 0; i <= repeats; i++ {
			start := time.Now()
			if _, err := eng.Verify(toks); err != nil {
				return 0, fmt.Errorf("verify step of %d tokens at position %d: %w", len(toks), base, err)
			}
			d := time.Since(start)
			if err := eng.Rollback(base); err != nil {
				return 0, fmt.Errorf("rollback to %d: %w", base, err)
			}
			if i > 0 {
				total += d
			}
		}
		return ms(total) / float64(repeats), nil
	}
	toks := prompt[len(prompt)-min(k, len(prompt)):]
	var err error
	if out.SingleMS, err = timeStep(toks[len(toks)-1:]); err != nil {
		return err
	}
	if out.StepMS, err = timeStep(toks); err != nil {
		return err
	}
	if out.SingleMS > 0 {
		out.Ratio = out.StepMS / out.SingleMS
	}
	return nil
}

// benchDecode runs the reference generate call (greedy, newTokens) and
// derives the decode figures.
func benchDecode(ctx context.Context, eng inference.Engine, m *inference.Model, tok *tokenizer.Tokenizer, prompt []int, newTokens int, mon *sampler, r *benchJSON) error {
	req := inference.Request{Prompt: prompt, MaxNewTokens: newTokens, EOS: m.EOS()}
	if len(req.EOS) == 0 && tok.EOS() >= 0 {
		req.EOS = []int{tok.EOS()}
	}
	rep, err := inference.Generate(ctx, eng, nil, req, nil)
	if err != nil {
		return fmt.Errorf("greedy decode: %w", err)
	}
	d := &r.Decode
	d.NewTokens, d.StopReason, d.Steps = rep.NewTokens, rep.StopReason, rep.Steps
	d.TotalMS = ms(rep.Total)
	d.DecodeTokensPS, d.Throughput = rep.DecodeTokensPS, rep.Throughput
	d.MaxMemoryMB = mib(rep.PeakMemory)
	r.Prefill.TimeToFirst = ms(rep.TimeToFirst)
	if rep.Steps > 0 {
		d.StepMS = ms(rep.Total-rep.TimeToFirst) / float64(rep.Steps)
	}
	if sb, ok := eng.(stepByter); ok && rep.Steps > 0 {
		// Step i (1-based) runs with len(prompt)+i-1 positions in the cache.
		var sum int64
		for i := range rep.Steps {
			sum += sb.StepBytes(len(prompt) + i)
		}
		d.StepBytes = sum / int64(rep.Steps)
		if d.StepMS > 0 {
			d.GBps = float64(d.StepBytes) / (d.StepMS / 1e3) / 1e9
		}
	}
	if mon != nil {
		mon.noteThrottle()
	}
	return nil
}

// newProfile turns kernel families into shares and rates.
func newProfile(T, pos int, fams []kernelFamily) profileJSON {
	p := profileJSON{Tokens: T, Position: pos, Families: fams}
	for _, f := range fams {
		p.TotalMS += f.MS
	}
	for i := range p.Families {
		f := &p.Families[i]
		if p.TotalMS > 0 {
			f.Share = f.MS / p.TotalMS
		}
		if f.MS > 0 {
			f.GBps = float64(f.Bytes) / (f.MS / 1e3) / 1e9
			f.TFLOP = f.FLOPs / (f.MS / 1e3) / 1e12
		}
	}
	return p
}
