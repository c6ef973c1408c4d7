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
	"sync"
	"text/tabwriter"
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
	json                                 bool
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
}

// CUDA-only parts, set by bench_cuda.go; nil (or not ok) elsewhere.
var (
	// openBenchMonitor opens the device monitor of the GPU engine 0.
	openBenchMonitor func() (benchMonitor, error)
	// profileKernels runs the engine's kernel profile for steps of T tokens
	// at its current position, grouped into families; ok is false for an
	// engine without one.
	profileKernels func(e inference.Engine, T, steps int) (fams []kernelFamily, ok bool, err error)
)

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
	chunker interface{ Chunk() int }
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
	Targets      []targetJSON   `json:"targets,omitempty"`
}

type deviceJSON struct {
	Name              string  `json:"name"`
	ComputeCapability int     `json:"compute_capability,omitempty"`
	SMClockMHz        int     `json:"sm_clock_mhz,omitempty"` // at the start, before the engine opened
	MemClockMHz       int     `json:"mem_clock_mhz,omitempty"`
	MaxSMClockMHz     int     `json:"max_sm_clock_mhz,omitempty"`
	MaxMemClockMHz    int     `json:"max_mem_clock_mhz,omitempty"`
	RunSMClockMHz     [2]int  `json:"run_sm_clock_mhz"` // lowest and highest sampled during the run
	RunMemClockMHz    [2]int  `json:"run_mem_clock_mhz"`
	ThrottleReasons   uint64  `json:"clock_event_reasons"` // NVML mask at the end of decode
	PeakBandwidthGBps float64 `json:"peak_bandwidth_gb_per_s,omitempty"`
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

// targetJSON is one figure of issue 5's table against its target.
type targetJSON struct {
	Figure string  `json:"figure"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	Met    bool    `json:"met"`
}

// targets compares a GPU run with issue 5's targets (set for an H100; the
// bandwidth share applies to any card).
func targets(r *benchJSON) []targetJSON {
	if r.Device == nil {
		return nil
	}
	t := []targetJSON{
		{"greedy decode, tokens/s", r.Decode.DecodeTokensPS, ">= 600 (H100)", r.Decode.DecodeTokensPS >= 600},
	}
	if r.Decode.PctPeak > 0 {
		t = append(t, targetJSON{"greedy decode, % of the bandwidth limit", r.Decode.PctPeak, ">= 80", r.Decode.PctPeak >= 80})
	}
	t = append(t,
		targetJSON{"prefill of the prompt, ms", r.Prefill.MS, "<= 200", r.Prefill.MS <= 200},
		targetJSON{"time to first token, ms", r.Prefill.TimeToFirst, "<= 250", r.Prefill.TimeToFirst <= 250},
		targetJSON{fmt.Sprintf("verify step of %d tokens / 1-token step", r.Verify.Tokens), r.Verify.Ratio, "<= 1.3 (11 tokens)", r.Verify.Ratio <= 1.3},
		targetJSON{"peak engine memory, GB", float64(r.Memory.EnginePeak) / 1e9, "<= 5.0", float64(r.Memory.EnginePeak) <= 5e9})
	if r.Transformers != nil {
		t = append(t, targetJSON{"throughput / transformers'", r.Transformers.Ratio, ">= 20", r.Transformers.Ratio >= 20})
	}
	for _, x := range r.Replay {
		if strings.HasPrefix(x.Dataset, "cnn_dm") {
			t = append(t, targetJSON{"replay " + x.Dataset + ", lookup speedup", x.Speedup, ">= 2 (aim)", x.Speedup >= 2})
		}
	}
	return t
}

type vsJSON struct {
	TokensPS float64 `json:"tokens_per_s"`
	Ratio    float64 `json:"ratio"`
}

// replayResult is one data set replayed on the engine.
type replayResult struct {
	Dataset       string  `json:"dataset"`
	Cases         int     `json:"cases"`
	Skipped       int     `json:"skipped"` // prompt + answer longer than the engine's context
	AnswerTokens  int     `json:"answer_tokens"`
	Tokens        int     `json:"decode_tokens"` // answer tokens after the first (which prefill gives)
	GreedySteps   int     `json:"greedy_steps"`
	GreedyMS      float64 `json:"greedy_ms"`
	GreedyTPS     float64 `json:"greedy_tokens_per_s"`
	LookupSteps   int     `json:"lookup_steps"`
	LookupMS      float64 `json:"lookup_ms"`
	LookupTPS     float64 `json:"lookup_tokens_per_s"`
	Speedup       float64 `json:"speedup"`
	TokensPerStep float64 `json:"tokens_per_step"`
	Drafted       int     `json:"drafted"`
	Accepted      int     `json:"accepted"`
	Histogram     []int   `json:"histogram"`
}

// replaySet is a named list of cases.
type replaySet struct {
	name  string
	cases []lookup.Case
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
		r.Card = r.Device.Name
	} else if mon != nil {
		mon.stop() // the CPU engine: NVML figures would be another device's
		mon = nil
	}
	if err := checkFits("the prompt", len(prompt), o, eng.MaxContext(), "the engine's maximum context"); err != nil {
		return err
	}
	logf("%s: engine opened in %.1f s; prompt %d tokens", r.Card, r.EngineOpenS, len(prompt))

	if err := benchPrefill(ctx, eng, prompt, o.prefillRuns, &r.Prefill); err != nil {
		return err
	}
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

	if err := benchDecode(ctx, eng, m, tok, prompt, o.newTokens, mon, r); err != nil {
		return err
	}
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

// loadReplays reads and tokenizes the replay data sets and the
// continuation, before the engine is opened (bad paths fail fast).
func loadReplays(o *benchOptions, tok *tokenizer.Tokenizer, prompt []int) ([]replaySet, error) {
	var sets []replaySet
	for _, p := range o.replays {
		dialogs, err := lookup.LoadDialogs(p)
		if err != nil {
			return nil, fmt.Errorf("replay data set: %w", err)
		}
		if o.replayCases > 0 && len(dialogs) > o.replayCases {
			dialogs = dialogs[:o.replayCases]
		}
		cases := lookup.Cases(tok, dialogs)
		if o.replayCases > 0 && len(cases) > o.replayCases {
			cases = cases[:o.replayCases]
		}
		sets = append(sets, replaySet{name: filepath.Base(p), cases: cases})
	}
	if o.continuation != "" {
		b, err := os.ReadFile(o.continuation)
		if err != nil {
			return nil, fmt.Errorf("continuation: %w", err)
		}
		text := strings.TrimSpace(string(b))
		if text == "" {
			return nil, fmt.Errorf("continuation %s is empty", o.continuation)
		}
		ans := tok.Encode(text, false)
		sets = append(sets, replaySet{name: "continuation " + filepath.Base(o.continuation),
			cases: []lookup.Case{{Prompt: prompt, Answer: ans}}})
	}
	return sets, nil
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

// replayOnEngine replays a data set's recorded greedy answers on the
// engine: every step is a real Verify of the tokens the generation loop
// would send; only acceptance follows the recording (the synthetic
// weights' own choices mean nothing). Greedy feeds one answer token per
// step; lookup drafts with lookup.Index from the context so far, verifies
// [last token] + drafts, accepts the drafts' longest prefix equal to the
// answer plus one token, and rolls back the rest, exactly as lookup.Replay
// counts it. Only decode is timed (drafting included).
func replayOnEngine(ctx context.Context, eng inference.Engine, s replaySet, draftMax, ngram int) (replayResult, error) {
	res := replayResult{Dataset: s.name, Histogram: make([]int, draftMax+1)}
	var greedy, look time.Duration
	for ci, c := range s.cases {
		if len(c.Answer) == 0 {
			continue
		}
		if len(c.Prompt)+len(c.Answer) > eng.MaxContext() {
			res.Skipped++
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		fail := func(err error) (replayResult, error) {
			return res, fmt.Errorf("replay %s case %d (prompt %d tokens, answer %d): %w", s.name, ci, len(c.Prompt), len(c.Answer), err)
		}
		res.Cases++
		res.AnswerTokens += len(c.Answer)
		res.Tokens += len(c.Answer) - 1

		// Greedy: one recorded token per step.
		eng.Reset()
		if _, err := eng.Prefill(ctx, c.Prompt); err != nil {
			return fail(err)
		}
		start := time.Now()
		for pos := 1; pos < len(c.Answer); pos++ {
			if _, err := eng.Verify(c.Answer[pos-1 : pos]); err != nil {
				return fail(err)
			}
			res.GreedySteps++
		}
		greedy += time.Since(start)

		// Lookup: the generation loop's step shape, acceptance from the answer.
		eng.Reset()
		if _, err := eng.Prefill(ctx, c.Prompt); err != nil {
			return fail(err)
		}
		d := lookup.NewIndex(ngram)
		seq := make([]int, 0, len(c.Prompt)+len(c.Answer))
		seq = append(append(seq, c.Prompt...), c.Answer[0])
		in := make([]int, 0, inference.MaxVerify)
		start = time.Now()
		for pos := 1; pos < len(c.Answer); {
			room := min(draftMax, len(c.Answer)-pos-1)
			drafts := d.Draft(seq, room)
			drafts = drafts[:min(len(drafts), room)]
			in = append(append(in[:0], c.Answer[pos-1]), drafts...)
			base := eng.Len()
			next, err := eng.Verify(in)
			if err != nil {
				return fail(err)
			}
			if len(next) != len(in) {
				return fail(fmt.Errorf("engine returned %d tokens for %d", len(next), len(in)))
			}
			k := 0
			for k < len(drafts) && drafts[k] == c.Answer[pos+k] {
				k++
			}
			if k < len(drafts) {
				if err := eng.Rollback(base + 1 + k); err != nil {
					return fail(err)
				}
			}
			res.LookupSteps++
			res.Drafted += len(drafts)
			res.Accepted += k
			res.Histogram[k]++
			seq = append(seq, c.Answer[pos:pos+k+1]...)
			pos += k + 1
		}
		look += time.Since(start)
	}
	res.GreedyMS, res.LookupMS = ms(greedy), ms(look)
	if greedy > 0 {
		res.GreedyTPS = float64(res.Tokens) / greedy.Seconds()
	}
	if look > 0 {
		res.LookupTPS = float64(res.Tokens) / look.Seconds()
	}
	if res.GreedyTPS > 0 {
		res.Speedup = res.LookupTPS / res.GreedyTPS
	}
	if res.LookupSteps > 0 {
		res.TokensPerStep = float64(res.Tokens) / float64(res.LookupSteps)
	}
	return res, nil
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

// sampler polls the device monitor every 20 ms for memory in use and
// clocks, from before the engine opens to the end of the run.
type sampler struct {
	mon  benchMonitor
	dev  deviceJSON
	quit chan struct{}
	done chan struct{}
	once sync.Once

	mu                   sync.Mutex
	before, peak         int64
	samples              int
	smLo, smHi, mLo, mHi int
}

func startSampler(mon benchMonitor) *sampler {
	s := &sampler{mon: mon, quit: make(chan struct{}), done: make(chan struct{})}
	s.dev.Name = mon.DeviceName()
	s.dev.SMClockMHz, s.dev.MemClockMHz, _ = mon.Clocks()
	s.dev.MaxSMClockMHz, s.dev.MaxMemClockMHz, _ = mon.MaxClocks()
	if bw, err := mon.PeakBandwidth(); err == nil {
		s.dev.PeakBandwidthGBps = bw / 1e9
	}
	if used, _, err := mon.DeviceMemory(); err == nil {
		s.before, s.peak = used, used
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.quit:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *sampler) sample() {
	used, _, err := s.mon.DeviceMemory()
	sm, mem, cerr := s.mon.Clocks()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.peak = max(s.peak, used)
		s.samples++
	}
	if cerr == nil {
		if s.smLo == 0 || sm < s.smLo {
			s.smLo = sm
		}
		if s.mLo == 0 || mem < s.mLo {
			s.mLo = mem
		}
		s.smHi, s.mHi = max(s.smHi, sm), max(s.mHi, mem)
	}
}

// stop ends the polling with a last sample (so even a short run has one).
func (s *sampler) stop() {
	s.once.Do(func() { close(s.quit); <-s.done; s.sample() })
}

// device returns the device figures read so far.
func (s *sampler) device() *deviceJSON {
	d := s.dev
	return &d
}

// noteThrottle records the clock event reasons while the GPU is warm.
func (s *sampler) noteThrottle() {
	if r, err := s.mon.ThrottleReasons(); err == nil {
		s.mu.Lock()
		s.dev.ThrottleReasons = r
		s.mu.Unlock()
	}
}

// fill writes the sampled figures into r (after stop).
func (s *sampler) fill(r *benchJSON) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Device != nil {
		r.Device.RunSMClockMHz = [2]int{s.smLo, s.smHi}
		r.Device.RunMemClockMHz = [2]int{s.mLo, s.mHi}
		r.Device.ThrottleReasons = s.dev.ThrottleReasons
		if bw := r.Device.PeakBandwidthGBps; bw > 0 && r.Decode.GBps > 0 {
			r.Decode.PctPeak = 100 * r.Decode.GBps / bw
		}
	}
	if s.samples > 0 {
		r.Memory.DevicePeakMB = mib(s.peak)
		r.Memory.DeviceBeforeMB = mib(s.before)
		r.Memory.DeviceSamples = s.samples
	}
}

// printBench writes the human-readable report.
func printBench(w io.Writer, r *benchJSON, o *benchOptions) {
	card := r.Card
	if d := r.Device; d != nil {
		line := fmt.Sprintf("%s, compute capability %d.%d", r.Engine, d.ComputeCapability/10, d.ComputeCapability%10)
		if d.PeakBandwidthGBps > 0 {
			line += fmt.Sprintf(", peak memory bandwidth %.0f GB/s", d.PeakBandwidthGBps)
		}
		fmt.Fprintln(w, line)
		if d.MaxSMClockMHz == 0 {
			fmt.Fprintln(w, "clocks: not read (no NVML)")
		}
		line = fmt.Sprintf("clocks (MHz): SM %d at the start, %d-%d during the run, max %d; memory %d at the start, %d-%d during the run, max %d",
			d.SMClockMHz, d.RunSMClockMHz[0], d.RunSMClockMHz[1], d.MaxSMClockMHz,
			d.MemClockMHz, d.RunMemClockMHz[0], d.RunMemClockMHz[1], d.MaxMemClockMHz)
		if d.ThrottleReasons&^1 != 0 {
			line += fmt.Sprintf("; NVML clock event reasons 0x%x after decode", d.ThrottleReasons)
		}
		if d.MaxSMClockMHz > 0 {
			fmt.Fprintln(w, line)
		}
	} else {
		fmt.Fprintln(w, r.Engine)
	}
	fmt.Fprintf(w, "model %s, prompt %d tokens from %s; engine opened in %.1f s\n\n", r.Model, r.PromptTokens, r.Article, r.EngineOpenS)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "figure (%s)\tvalue\t\n", card)
	fmt.Fprintf(tw, "prefill, %d tokens (mean of %d after a warm-up; best %.1f ms)\t%.1f ms, %.0f tokens/s\t\n",
		r.PromptTokens, r.Prefill.Runs, r.Prefill.BestMS, r.Prefill.MS, r.Prefill.TokensPS)
	fmt.Fprintf(tw, "time to first token (generate call)\t%.1f ms\t\n", r.Prefill.TimeToFirst)
	d := r.Decode
	fmt.Fprintf(tw, "greedy decode, %d new tokens (%s)\t%.1f tokens/s, %.3f ms/step\t\n", d.NewTokens, d.StopReason, d.DecodeTokensPS, d.StepMS)
	fmt.Fprintf(tw, "Throughput (tokens/sec), the original script's\t%.2f\t\n", d.Throughput)
	fmt.Fprintf(tw, "Max memory (MB)\t%.2f\t\n", d.MaxMemoryMB)
	if d.GBps > 0 {
		bw := fmt.Sprintf("%.0f GB/s (a step reads %.3f GB)", d.GBps, float64(d.StepBytes)/1e9)
		if d.PctPeak > 0 {
			bw += fmt.Sprintf(", %.1f%% of peak", d.PctPeak)
		}
		fmt.Fprintf(tw, "decode achieved bandwidth\t%s\t\n", bw)
	}
	v := r.Verify
	fmt.Fprintf(tw, "verify step of %d tokens vs 1 token at context %d (mean of %d)\t%.3f ms vs %.3f ms: %.2fx\t\n",
		v.Tokens, v.Context, v.Repeats, v.StepMS, v.SingleMS, v.Ratio)
	mem := fmt.Sprintf("engine %.0f MB", r.Memory.EnginePeakMB)
	if r.Memory.DeviceSamples > 0 {
		mem += fmt.Sprintf("; device-wide %.0f MB (%.0f MB in use before the engine opened)", r.Memory.DevicePeakMB, r.Memory.DeviceBeforeMB)
	}
	what := "peak memory of the run"
	if r.Device != nil {
		what = "peak GPU memory of the run"
	}
	fmt.Fprintf(tw, "%s\t%s\t\n", what, mem)
	if t := r.Transformers; t != nil {
		fmt.Fprintf(tw, "throughput vs transformers (%.2f tokens/s)\t%.1fx\t\n", t.TokensPS, t.Ratio)
	}
	tw.Flush()

	for _, p := range r.Profiles {
		fmt.Fprintf(w, "\nkernel profile, steps of %d tokens at position %d (%s; kernel by kernel, no graph): %.3f ms a step\n", p.Tokens, p.Position, card, p.TotalMS)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "family\tlinear\tms\tshare\tGB/s\tTFLOP/s\t")
		for _, f := range p.Families {
			gb, tf := "", ""
			if f.Bytes > 0 {
				gb = fmt.Sprintf("%.0f", f.GBps)
			}
			if f.FLOPs > 0 {
				tf = fmt.Sprintf("%.1f", f.TFLOP)
			}
			fmt.Fprintf(tw, "%s\t%s\t%.3f\t%.1f%%\t%s\t%s\t\n", f.Name, f.Part, f.MS, 100*f.Share, gb, tf)
		}
		tw.Flush()
	}

	if len(r.Replay) > 0 {
		fmt.Fprintf(w, "\nreplay (%s; synthetic weights, acceptance follows the recorded answers; lookup: Brief's index, n-gram %d, up to %d drafts):\n",
			card, o.lookupNgram, o.lookupTokens)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "data set\tcases\tskipped\tanswer tokens\tgreedy tokens/s\tlookup tokens/s\tspeedup\ttokens/step\taccepted/drafted\t")
		for _, x := range r.Replay {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%.1f\t%.2fx\t%.3f\t%d/%d\t\n", x.Dataset, x.Cases, x.Skipped, x.AnswerTokens,
				x.GreedyTPS, x.LookupTPS, x.Speedup, x.TokensPerStep, x.Accepted, x.Drafted)
		}
		tw.Flush()
	}

	if len(r.Targets) > 0 {
		fmt.Fprintf(w, "\nagainst issue 5's targets (%s):\n", card)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "figure\tvalue\ttarget\tmet\t")
		for _, x := range r.Targets {
			met := "no"
			if x.Met {
				met = "yes"
			}
			fmt.Fprintf(tw, "%s\t%.2f\t%s\t%s\t\n", x.Figure, x.Value, x.Target, met)
		}
		tw.Flush()
	}
}
