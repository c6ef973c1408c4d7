package gui

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"

	"github.com/briefapp/brief/inference"
	"github.com/briefapp/brief/inference/chat"
	"github.com/briefapp/brief/inference/cpu"
	"github.com/briefapp/brief/inference/tokenizer"
	"github.com/briefapp/brief/internal/testdata"
)

// storyArticle fits stories260K's 512-token context with the preamble,
// the instruction and 64 new tokens.
const storyArticle = "Once upon a time, there was a little girl named Lily. She loved to play in the park with her dog."

// newPipelineHarness opens a window on the real pipeline (CPU engine) with
// the stories260K model chosen.
func newPipelineHarness(t *testing.T, b Backend) (*harness, string) {
	dir := testdata.Path(t, "stories260k-awq")
	h := &harness{t: t, fa: test.NewTempApp(t), q: newUIQueue()}
	h.fa.Preferences().SetInt(prefEngine, int(EngineCPU))
	h.fa.Preferences().SetInt(prefMaxNew, 64)
	h.start(b)
	h.app.SetModelDir(dir)
	h.idle()
	h.noDialog()
	h.app.article.SetText(storyArticle)
	return h, dir
}

// reference runs the same request without the window.
func reference(t *testing.T, dir string, strategy inference.Strategy) (string, *inference.Report) {
	t.Helper()
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := chat.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := inference.OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	eng, err := cpu.New(m, cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ids, err := chat.Encode(tmpl, tok, chat.SummaryMessages(DefaultSystemPrompt, presets[0].instruction, " "+storyArticle+" "))
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	rep, err := inference.Generate(context.Background(), eng, tokenizer.NewStream(tok),
		inference.Request{Prompt: ids, MaxNewTokens: 64, Strategy: strategy, LookupTokens: 10, EOS: m.EOS()},
		func(e inference.Event) { text.WriteString(e.Text) })
	if err != nil {
		t.Fatal(err)
	}
	return text.String(), rep
}

// TestPipelineFlow summarizes with stories260K on the CPU engine, greedy
// and with prompt lookup, and checks the window shows what the pipeline
// makes on its own.
func TestPipelineFlow(t *testing.T) {
	h, dir := newPipelineHarness(t, Pipeline{})
	status := h.app.status.Text
	for _, want := range []string{"Engine: CPU", "Model: stories260k-awq", "/ 512 tokens"} {
		if !strings.Contains(status, want) {
			t.Errorf("status %q lacks %q", status, want)
		}
	}
	want, rep := reference(t, dir, inference.Greedy)
	if strings.TrimSpace(want) == "" || rep.NewTokens < 2 {
		t.Fatalf("reference run made %d tokens: %q", rep.NewTokens, want)
	}
	for _, strategy := range []string{strategyGreedy, strategyLookup} {
		h.app.strategySel.SetSelected(strategy)
		h.summarize()
		h.noDialog()
		t.Logf("%s: %q", strategy, h.app.summary.Text())
		if got := h.app.summary.Text(); got != want {
			t.Errorf("%s: summary = %q, want %q", strategy, got, want)
		}
		stats := h.app.stats.Text()
		for _, line := range []string{
			"Prompt tokens: " + itoa(rep.PromptTokens) + "\n",
			"New tokens: " + itoa(rep.NewTokens) + "\n",
			"GPU: none (CPU)\n",
		} {
			if !strings.Contains(stats, line) {
				t.Errorf("%s: statistics lack %q:\n%s", strategy, line, stats)
			}
		}
		if h.app.tokChart.Len(0) == 0 || h.app.memChart.Len(0) == 0 {
			t.Errorf("%s: charts empty", strategy)
		}
		if !strings.Contains(h.app.status.Text, "Context: "+itoa(rep.PromptTokens+rep.NewTokens-1)) &&
			!strings.Contains(h.app.status.Text, "Context: "+itoa(rep.PromptTokens+rep.NewTokens)) {
			t.Errorf("%s: status = %q", strategy, h.app.status.Text)
		}
	}
	if h.app.accChart.Len(0) == 0 {
		t.Error("accepted-drafts chart empty after a prompt lookup run")
	}
}

// stopAt wraps a model so that its run pauses after n text events until
// the test has pressed Stop.
type stopAt struct {
	Model
	n       int
	reached chan struct{}
	release chan struct{}
}

func (s *stopAt) Generate(ctx context.Context, req inference.Request, emit func(inference.Event)) (*inference.Report, error) {
	texts := 0
	return s.Model.Generate(ctx, req, func(e inference.Event) {
		emit(e)
		if e.Text != "" {
			texts++
			if texts == s.n {
				close(s.reached)
				<-s.release
			}
		}
	})
}

type stopBackend struct {
	Backend
	wrap *stopAt
}

func (b stopBackend) Open(ctx context.Context, dir string, e EngineChoice) (Model, error) {
	m, err := b.Backend.Open(ctx, dir, e)
	if err != nil {
		return nil, err
	}
	b.wrap.Model = m
	return b.wrap, nil
}

// TestPipelineStop presses Stop in the middle of a real CPU run: the run
// ends within one engine step with a partial report.
func TestPipelineStop(t *testing.T) {
	wrap := &stopAt{n: 5, reached: make(chan struct{}), release: make(chan struct{})}
	h, _ := newPipelineHarness(t, stopBackend{Backend: Pipeline{}, wrap: wrap})
	test.Tap(h.app.summarize)
	h.q.until(t, "5 tokens", func() bool {
		select {
		case <-wrap.reached:
			return true
		default:
			return false
		}
	})
	test.Tap(h.app.stop)
	close(wrap.release)
	h.idle()
	h.noDialog()
	// The 5th text event came from step 4 or 5; one more step may finish.
	var n int
	for _, r := range h.app.stats.rows {
		if r.name == "New tokens" {
			n = atoi(r.value)
		}
	}
	if n < 5 || n > 6 {
		t.Errorf("%d new tokens after Stop at the 5th, want 5 or 6", n)
	}
	if !strings.Contains(h.app.status.Text, "Stopped after") {
		t.Errorf("status = %q", h.app.status.Text)
	}
}

func TestPipelineErrors(t *testing.T) {
	t.Run("not a model folder", func(t *testing.T) {
		h := &harness{t: t, fa: test.NewTempApp(t), q: newUIQueue()}
		h.start(Pipeline{})
		dir := t.TempDir()
		h.app.SetModelDir(dir)
		h.idle()
		h.wantDialog("Cannot open the model", dir)
	})
	t.Run("no GPU", func(t *testing.T) {
		h, _ := newPipelineHarness(t, Pipeline{})
		h.app.engineSel.SetSelected("CUDA")
		h.idle()
		h.wantDialog("Cannot open the model", "No NVIDIA GPU found")
		h.app.engineSel.SetSelected("CPU")
		h.idle()
		h.noDialog()
		h.summarize()
		h.noDialog()
	})
	t.Run("article too long", func(t *testing.T) {
		h, _ := newPipelineHarness(t, Pipeline{})
		h.app.article.SetText(strings.Repeat(storyArticle+" ", 20))
		h.summarize()
		h.wantDialog("The article is too long for this model", "stories260k-awq allows 512 tokens")
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestPromptIsReference: the window's defaults (system prompt, first
// preset) on the reference article give the reference workload's 6,435
// prompt ids exactly.
func TestPromptIsReference(t *testing.T) {
	dir := testdata.Path(t, "openhermes-2.5-mistral-7b-awq")
	articleFile := testdata.Path(t, "llama2_article.txt")
	var golden struct {
		SeedPrompt struct {
			IDs []int `json:"ids"`
		} `json:"seed_prompt"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "golden_tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	article, err := os.ReadFile(articleFile)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := chat.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := &pipelineModel{tok: tok, tmpl: tmpl}
	ids, err := p.Prompt(DefaultSystemPrompt, presets[0].instruction, string(article))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, golden.SeedPrompt.IDs) {
		t.Fatalf("prompt has %d ids, want the reference's %d (first difference at %d)", len(ids), len(golden.SeedPrompt.IDs), firstDiff(ids, golden.SeedPrompt.IDs))
	}
}

func firstDiff(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
