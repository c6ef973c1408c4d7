package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/briefapp/brief/inference"
	"github.com/briefapp/brief/inference/chat"
	"github.com/briefapp/brief/inference/cpu"
	"github.com/briefapp/brief/inference/lookup"
	"github.com/briefapp/brief/inference/synth"
	"github.com/briefapp/brief/inference/tokenizer"
	"github.com/briefapp/brief/internal/testdata"
)

// benchFixture writes a tiny synthetic checkpoint (OpenHermes tokenizer and
// chat template), an article and a small pld-replay file whose answers
// repeat their prompts, so that lookup drafts get accepted and rejected.
func benchFixture(t *testing.T, maxPositions int) (model, article, dataset string) {
	t.Helper()
	dir := t.TempDir()
	model = filepath.Join(dir, "tiny")
	s := synth.Shapes["tiny"]
	if maxPositions > 0 {
		s.MaxPositions = maxPositions
	}
	if _, err := synth.Write(model, s, synth.Options{Seed: 1}); err != nil {
		t.Fatal(err)
	}
	article = filepath.Join(dir, "article.txt")
	if err := os.WriteFile(article, []byte("The cat sat on the mat. The dog sat on the log. The cat and the dog sat together.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	type resp struct {
		GenFunc string `json:"gen_func"`
		Turn    int    `json:"turn"`
		Text    string `json:"response_text"`
	}
	type item struct {
		Prompt    any    `json:"prompt"`
		Responses []resp `json:"response_mistral7b"`
	}
	items := []item{
		{"Summarize: the quick brown fox jumps over the lazy dog, and the quick brown fox runs away from the farmer.",
			[]resp{{"greedy", 0, " The quick brown fox jumps over the lazy dog and the quick brown fox runs away from the angry farmer."}}},
		{[]string{"List three colours of the rainbow, one a line.", "Now list them again, in reverse order."},
			[]resp{{"greedy", 0, " Red\nOrange\nYellow"}, {"greedy", 1, " Yellow\nOrange\nRed"}, {"sampled", 0, "ignored"}}},
	}
	b, err := json.Marshal(items)
	if err != nil {
		t.Fatal(err)
	}
	dataset = filepath.Join(dir, "replay.json")
	if err := os.WriteFile(dataset, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return model, article, dataset
}

// TestBenchCPU runs the whole benchmark on the CPU engine and checks every
// figure is there and sane, and that the replay on the engine took exactly
// the steps, drafts and acceptances of lookup.Replay on the same cases:
// the engine's steps follow the recorded answers.
func TestBenchCPU(t *testing.T) {
	model, article, dataset := benchFixture(t, 0)
	datasets := []string{dataset}
	if d := testdata.Root(); d != "" {
		if p := filepath.Join(d, "pld-replay", "cnn_dm_outputs.json"); fileExists(p) {
			datasets = append(datasets, p)
		}
	}
	cont := filepath.Join("testdata", "reference_continuation.txt")
	b, err := os.ReadFile(cont)
	if err != nil {
		t.Fatal(err)
	}
	contText := strings.TrimSpace(string(b))
	const cases = 2
	var stdout, stderr bytes.Buffer
	args := []string{"--model", model, "--article", article, "--engine", "cpu", "--new", "6", "--repeats", "2",
		"--prefill-runs", "2", "--replay", strings.Join(datasets, ","), "--replay-cases", fmt.Sprint(cases),
		"--continuation", cont, "--transformers", "10", "--lookup-tokens", "5", "--lookup-ngram", "4", "--json"}
	if err := runBench(context.Background(), args, nil, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var r benchJSON
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout.String())
	}

	tok, err := tokenizer.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	prompt, _, err := buildPrompt(&runOptions{model: model, article: article, instruction: chat.DefaultInstruction, system: chat.DefaultSystem}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.PromptTokens != len(prompt) || !strings.HasPrefix(r.Engine, "CPU") || r.Device != nil || len(r.Profiles) != 0 || len(r.Targets) != 0 {
		t.Errorf("header: prompt %d (want %d), engine %q, device %v, %d profiles", r.PromptTokens, len(prompt), r.Engine, r.Device, len(r.Profiles))
	}
	if p := r.Prefill; p.Runs != 2 || p.MS <= 0 || p.BestMS <= 0 || p.BestMS > p.MS || p.TokensPS <= 0 || p.TimeToFirst <= 0 {
		t.Errorf("prefill %+v", p)
	}
	if d := r.Decode; d.NewTokens != 6 || d.Steps != 5 || d.StopReason != "max_tokens" || d.DecodeTokensPS <= 0 ||
		d.Throughput <= 0 || d.MaxMemoryMB <= 0 || d.StepMS <= 0 || d.TotalMS <= 0 {
		t.Errorf("decode %+v", d)
	}
	if v := r.Verify; v.Tokens != 11 || v.Context != len(prompt) || v.Repeats != 2 || v.StepMS <= 0 || v.SingleMS <= 0 ||
		math.Abs(v.Ratio-v.StepMS/v.SingleMS) > 1e-9 {
		t.Errorf("verify %+v", v)
	}
	if r.Memory.EnginePeak <= 0 || r.Memory.EnginePeakMB != mib(r.Memory.EnginePeak) {
		t.Errorf("memory %+v", r.Memory)
	}
	if x := r.Transformers; x == nil || math.Abs(x.Ratio-r.Decode.Throughput/10) > 1e-9 {
		t.Errorf("transformers %+v, throughput %v", x, r.Decode.Throughput)
	}

	// The same cases, replayed without the engine.
	type want struct {
		name  string
		cases []lookup.Case
	}
	var wants []want
	for _, p := range datasets {
		ds, err := lookup.LoadDialogs(p)
		if err != nil {
			t.Fatal(err)
		}
		cs := lookup.Cases(tok, ds)[:cases]
		wants = append(wants, want{filepath.Base(p), cs})
	}
	wants = append(wants, want{"continuation reference_continuation.txt", []lookup.Case{{Prompt: prompt, Answer: tok.Encode(contText, false)}}})
	if len(r.Replay) != len(wants) {
		t.Fatalf("%d replay results, want %d", len(r.Replay), len(wants))
	}
	accepted := 0
	for i, w := range wants {
		got := r.Replay[i]
		var s lookup.Stats
		answer := 0
		for _, c := range w.cases {
			s.Add(lookup.Replay(lookup.NewIndex(4), c.Prompt, c.Answer, 5))
			answer += len(c.Answer)
		}
		if got.Dataset != w.name || got.Cases != len(w.cases) || got.Skipped != 0 || got.AnswerTokens != answer {
			t.Errorf("%s: got %s, %d cases, %d skipped, %d answer tokens; want %d cases, %d tokens", w.name, got.Dataset, got.Cases, got.Skipped, got.AnswerTokens, len(w.cases), answer)
		}
		if got.Tokens != s.Tokens || got.GreedySteps != s.Tokens || got.LookupSteps != s.Steps || got.Drafted != s.Drafted ||
			got.Accepted != s.Accepted || !slices.Equal(got.Histogram, s.Histogram) {
			t.Errorf("%s: engine replay %+v, lookup.Replay %+v", w.name, got, s)
		}
		if got.TokensPerStep < 1 || got.GreedyTPS <= 0 || got.LookupTPS <= 0 || got.GreedyMS <= 0 || got.LookupMS <= 0 ||
			math.Abs(got.Speedup-got.LookupTPS/got.GreedyTPS) > 1e-9 {
			t.Errorf("%s: figures %+v", w.name, got)
		}
		accepted += got.Accepted
	}
	if accepted == 0 {
		t.Error("no draft was accepted: the fixture does not exercise acceptance and rollback")
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestBenchText checks the table output names every section.
func TestBenchText(t *testing.T) {
	model, article, dataset := benchFixture(t, 0)
	var stdout, stderr bytes.Buffer
	args := []string{"--model", model, "--article", article, "--engine", "cpu", "--new", "3", "--repeats", "1",
		"--prefill-runs", "1", "--verify", "4", "--replay", dataset, "--json-out", filepath.Join(t.TempDir(), "bench.json")}
	if err := runBench(context.Background(), args, nil, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(args[len(args)-1])
	if err != nil {
		t.Fatal(err)
	}
	var r benchJSON
	if err := json.Unmarshal(b, &r); err != nil || r.Decode.NewTokens != 3 || r.Verify.Tokens != 4 || len(r.Replay) != 1 {
		t.Errorf("--json-out file: %v, %+v", err, r)
	}
	out := stdout.String()
	for _, s := range []string{"CPU (", "prefill, ", "time to first token", "greedy decode, 3 new tokens", "Throughput (tokens/sec)",
		"Max memory (MB)", "verify step of 4 tokens vs 1 token", "peak memory of the run", "replay (", "replay.json"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

func TestBenchErrors(t *testing.T) {
	model, article, dataset := benchFixture(t, 64)
	dir := t.TempDir()
	notJSON := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(notJSON, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nothing")
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"no model", []string{"--article", article}, []string{"--model is required"}},
		{"missing model", []string{"--model", missing, "--article", article}, []string{"model folder", missing}},
		{"missing article", []string{"--model", model, "--article", missing}, []string{"article", missing}},
		{"missing data set", []string{"--model", model, "--article", article, "--replay", missing}, []string{"replay data set", missing}},
		{"bad data set", []string{"--model", model, "--article", article, "--replay", notJSON}, []string{notJSON, "not a pld-replay list"}},
		{"missing continuation", []string{"--model", model, "--article", article, "--continuation", missing}, []string{"continuation", missing}},
		{"json-out folder missing", []string{"--model", model, "--article", article, "--json-out", filepath.Join(missing, "b.json")}, []string{"--json-out", missing}},
		{"verify too long", []string{"--model", model, "--article", article, "--verify", "17"}, []string{"--verify 17", "1..16"}},
		// The fixture's context is 64 positions; its prompt is longer.
		{"prompt too long", []string{"--model", model, "--article", article, "--replay", dataset, "--engine", "cpu"},
			[]string{"the prompt is ", "--new 512", "more than the 64 of max_position_embeddings"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runBench(context.Background(), c.args, nil, &stdout, &stderr)
			if err == nil {
				t.Fatalf("no error; output %s", stdout.String())
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestDispatchHelp: -h, --help and help as the first argument list the
// commands, not the run command's flags.
func TestDispatchHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help", "help"} {
		var b bytes.Buffer
		if code := dispatch([]string{arg}, &b); code != 0 {
			t.Errorf("%s: exit %d", arg, code)
		}
		for _, name := range []string{"bench", "run", "replay", "synth", "tokenize"} {
			if !strings.Contains(b.String(), "\n  "+name+" ") {
				t.Errorf("%s: command list lacks %s:\n%s", arg, name, b.String())
			}
		}
		if strings.Contains(b.String(), "-max-new-tokens") {
			t.Errorf("%s printed the run flags:\n%s", arg, b.String())
		}
	}
	var b bytes.Buffer
	if code := dispatch([]string{"nosuch"}, &b); code != 2 || !strings.Contains(b.String(), `unknown command "nosuch"`) {
		t.Errorf("unknown command: exit %d, %s", code, b.String())
	}
}

// fakeMonitor stands in for NVML: memory in use grows by 1 MiB a sample.
type fakeMonitor struct {
	mu   sync.Mutex
	used int64
}

func (f *fakeMonitor) DeviceName() string { return "Fake GPU" }
func (f *fakeMonitor) DeviceMemory() (int64, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.used += 1 << 20
	return f.used, 80 << 30, nil
}
func (f *fakeMonitor) Clocks() (int, int, error)        { return 1980, 2619, nil }
func (f *fakeMonitor) MaxClocks() (int, int, error)     { return 1980, 2619, nil }
func (f *fakeMonitor) PeakBandwidth() (float64, error)  { return 3.352e12, nil }
func (f *fakeMonitor) ThrottleReasons() (uint64, error) { return 0x4, nil }
func (f *fakeMonitor) Power() (float64, float64, error) { return 698.5, 700, nil }

// TestSamplerAndGPUReport runs the sampler on a fake monitor and prints a
// report with the GPU-only sections (device line, bandwidth share, kernel
// profile), which the CPU engine never fills in.
func TestSamplerAndGPUReport(t *testing.T) {
	mon := &fakeMonitor{used: 500 << 20}
	s := startSampler(mon)
	s.setPhase("prefill")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		n := s.samples
		s.mu.Unlock()
		if n >= 2 {
			break
		}
	}
	s.setPhase("")
	s.stop()
	s.stop() // idempotent

	r := &benchJSON{Engine: "CUDA: Fake GPU", Card: "Fake GPU", Device: s.device(), PromptTokens: 6435, Model: "m", Article: "a"}
	r.Device.ComputeCapability = 90
	r.Device.PrefillGEMM = "wgmma (test)"
	r.Device.PrefillAttention = "wgmma (attention test)"
	r.Device.PrefillChunks = "chunks test"
	r.Decode = decodeJSON{NewTokens: 512, Steps: 511, StepMS: 2, StepBytes: 4_500_000_000, GBps: 2250, DecodeTokensPS: 500, Throughput: 400}
	r.Profiles = append(r.Profiles, newProfile(1, 6435, []kernelFamily{
		{Name: "AWQ mat-vec", Part: "gate|up", MS: 1.5, Bytes: 1_500_000_000},
		{Name: "AWQ GEMM", Part: "o_proj", MS: 0.5, FLOPs: 1e9},
	}))
	s.fill(r)
	if r.Memory.DeviceSamples < 2 || r.Memory.DeviceBeforeMB != 501 || r.Memory.DevicePeakMB <= r.Memory.DeviceBeforeMB {
		t.Errorf("memory %+v", r.Memory)
	}
	if d := r.Device; d.Name != "Fake GPU" || d.RunSMClockMHz != [2]int{1980, 1980} || d.PeakBandwidthGBps != 3352 {
		t.Errorf("device %+v", d)
	}
	if ph := r.Device.Phases; len(ph) != 1 || ph[0].Name != "prefill" || ph[0].Samples < 1 || ph[0].SMClockMHz != [2]int{1980, 1980} ||
		ph[0].SMClockMean != 1980 || ph[0].PowerCapped != ph[0].Samples || ph[0].PowerMaxW != 698.5 || ph[0].PowerLimitW != 700 || ph[0].EventReasons != 0x4 {
		t.Errorf("phases %+v", ph)
	}
	if math.Abs(r.Decode.PctPeak-100*2250.0/3352) > 1e-9 {
		t.Errorf("share of peak %v", r.Decode.PctPeak)
	}
	p := r.Profiles[0]
	if p.TotalMS != 2 || p.Families[0].Share != 0.75 || p.Families[0].GBps != 1000 || p.Families[1].TFLOP != 2 {
		t.Errorf("profile %+v", p)
	}
	r.Replay = []replayResult{{Dataset: "cnn_dm_outputs.json", Speedup: 2.5}}
	r.Targets = targets(r)
	met := map[string]bool{}
	for _, x := range r.Targets {
		met[x.Figure] = x.Met
	}
	if len(met) != 7 || met["greedy decode, tokens/s"] || met["greedy decode, % of the bandwidth limit"] || !met["replay cnn_dm_outputs.json, lookup speedup"] {
		t.Errorf("targets %+v", r.Targets)
	}
	var b bytes.Buffer
	printBench(&b, r, &benchOptions{lookupTokens: 10, lookupNgram: 8})
	t.Logf("\n%s", b.String())
	for _, want := range []string{"compute capability 9.0", "peak memory bandwidth 3352 GB/s; prefill GEMM: wgmma (test); prefill attention: wgmma (attention test); prefill chunks: chunks test", "67.1% of peak", "device-wide",
		"peak GPU memory", "kernel profile, steps of 1 tokens at position 6435 (Fake GPU", "gate|up", "75.0%", "1000", "2.0",
		"against issue 5's targets (Fake GPU)", "greedy decode, % of the bandwidth limit", "67.12",
		"during the prefill: SM 1980-1980 MHz (mean 1980", "power up to 698 of 700 W, held by the power limit in"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

// gpuLike is the CPU engine dressed as a GPU engine, to run bench's
// GPU-only paths (device, step bytes, profiles, targets) without a GPU.
type gpuLike struct{ *cpu.Engine }

func (gpuLike) Name() string                { return "CUDA: Fake GPU" }
func (gpuLike) DeviceName() string          { return "Fake GPU" }
func (gpuLike) ComputeCapability() int      { return 90 }
func (gpuLike) StepBytes(context int) int64 { return 1_000_000 + int64(context) }
func (gpuLike) Chunk() int                  { return 64 }
func (gpuLike) PrefillGEMM() string         { return "fake GEMM" }
func (gpuLike) PrefillAttention() string    { return "fake attention" }
func (gpuLike) PrefillChunks() string       { return "fake chunks" }

func TestBenchGPUPaths(t *testing.T) {
	model, article, _ := benchFixture(t, 0)
	saved := [3]any{gpuEngine, openBenchMonitor, profileKernels}
	defer func() {
		gpuEngine = saved[0].(func(*inference.Model) (inference.Engine, error))
		openBenchMonitor = saved[1].(func() (benchMonitor, error))
		profileKernels = saved[2].(func(inference.Engine, int, int) ([]kernelFamily, bool, error))
	}()
	gpuEngine = func(m *inference.Model) (inference.Engine, error) {
		e, err := cpu.New(m, cpu.Options{})
		return gpuLike{e}, err
	}
	openBenchMonitor = func() (benchMonitor, error) { return &fakeMonitor{used: 100 << 20}, nil }
	type call struct{ T, pos, steps int }
	var calls []call
	profileKernels = func(e inference.Engine, T, steps int) ([]kernelFamily, bool, error) {
		calls = append(calls, call{T, e.Len(), steps})
		return []kernelFamily{{Name: "AWQ mat-vec", Part: "q|k|v", MS: float64(T), Bytes: 1e6}, {Name: "other", MS: 1}}, true, nil
	}
	var stdout, stderr bytes.Buffer
	args := []string{"--model", model, "--article", article, "--engine", "cuda", "--new", "5", "--repeats", "1",
		"--prefill-runs", "1", "--profile-steps", "2", "--json"}
	if err := runBench(context.Background(), args, nil, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var r benchJSON
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	P := r.PromptTokens
	if want := []call{{1, P, 2}, {11, P, 2}, {64, P, 2}}; !slices.Equal(calls, want) {
		t.Errorf("profile calls %v, want %v", calls, want)
	}
	if len(r.Profiles) != 3 || r.Profiles[2].Tokens != 64 || r.Profiles[2].TotalMS != 65 || r.Profiles[2].Families[0].Share != 64.0/65 {
		t.Errorf("profiles %+v", r.Profiles)
	}
	// Steps run at contexts P..P+3: mean StepBytes 1e6 + P + 1 (integer mean).
	d := r.Decode
	if d.Steps != 4 || d.StepBytes != 1_000_000+int64(P)+1 || math.Abs(d.GBps-float64(d.StepBytes)/(d.StepMS/1e3)/1e9) > 1e-9 ||
		math.Abs(d.PctPeak-100*d.GBps/3352) > 1e-9 {
		t.Errorf("decode %+v", d)
	}
	if r.Card != "Fake GPU" || r.Device == nil || r.Device.ComputeCapability != 90 || r.Device.MaxMemClockMHz != 2619 ||
		r.Device.PrefillGEMM != "fake GEMM" || r.Device.PrefillAttention != "fake attention" ||
		r.Device.PrefillChunks != "fake chunks" {
		t.Errorf("card %q device %+v", r.Card, r.Device)
	}
	if r.Memory.DeviceSamples < 1 || r.Memory.DeviceBeforeMB != 101 || len(r.Targets) == 0 {
		t.Errorf("memory %+v, %d targets", r.Memory, len(r.Targets))
	}
}

// TestBenchCeiling: --ceiling measures at the prompt's end after every other
// figure, prints its table beside the engine's 1-token step, and refuses an
// engine without a ceiling.
func TestBenchCeiling(t *testing.T) {
	model, article, _ := benchFixture(t, 0)
	saved := [2]any{gpuEngine, streamCeiling}
	defer func() {
		gpuEngine = saved[0].(func(*inference.Model) (inference.Engine, error))
		streamCeiling = saved[1].(func(inference.Engine) (*ceilingJSON, bool, error))
	}()
	gpuEngine = func(m *inference.Model) (inference.Engine, error) {
		e, err := cpu.New(m, cpu.Options{})
		return gpuLike{e}, err
	}
	var at []int
	streamCeiling = func(e inference.Engine) (*ceilingJSON, bool, error) {
		at = append(at, e.Len())
		if _, ok := e.(gpuLike); !ok {
			return nil, false, nil
		}
		return &ceilingJSON{Position: e.Len(), Kernels: 260, BigKernels: 161, Bytes: 4_527_000_000, StepsMS: 1.77, BigMS: 1.646, OneMS: 1.522,
			PersistMS: 1.739, PersistBigMS: 1.504}, true, nil
	}
	args := []string{"--model", model, "--article", article, "--engine", "cuda", "--new", "3", "--repeats", "1",
		"--prefill-runs", "1", "--profile-steps", "0", "--ceiling"}
	var stdout, stderr bytes.Buffer
	if err := runBench(context.Background(), args, nil, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	out := strings.Join(strings.Fields(stdout.String()), " ") // the columns' padding aside
	for _, s := range []string{"decode ceiling (", "260 kernels", "the engine's 1-token step", "all 260 kernels as plain reads 1.770 2558 565.0",
		"the 161 of a megabyte or more only 1.646", "one read of all the bytes 1.522 2974 657.0",
		"one persistent kernel, a grid barrier for each of the 260 1.739 2603 575.0", "for each of the 161 big ones 1.504 3010 664.9"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	var r benchJSON
	stdout.Reset()
	if err := runBench(context.Background(), append(args, "--json"), nil, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil || r.Ceiling == nil || r.Ceiling.Position != r.PromptTokens {
		t.Errorf("JSON ceiling %+v (prompt %d tokens): %v", r.Ceiling, r.PromptTokens, err)
	}
	if len(at) != 2 || at[0] != r.PromptTokens {
		t.Errorf("ceiling measured at positions %v, want the prompt's end %d", at, r.PromptTokens)
	}
	err := runBench(context.Background(), []string{"--model", model, "--article", article, "--engine", "cpu", "--new", "2",
		"--repeats", "1", "--prefill-runs", "1", "--ceiling"}, nil, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "--ceiling") || !strings.Contains(err.Error(), "CUDA only") {
		t.Errorf("--ceiling on the CPU engine: %v", err)
	}
}
