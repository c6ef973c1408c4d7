package gui

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/briefapp/brief/inference"
)

// uiQueue stands in for Fyne's main thread: background goroutines queue
// functions, the test goroutine runs them. (The test driver's fyne.Do runs
// a function on the calling goroutine, which would race with the test.)
type uiQueue struct {
	mu   sync.Mutex
	fns  []func()
	wake chan struct{}
}

func newUIQueue() *uiQueue { return &uiQueue{wake: make(chan struct{}, 1)} }

func (q *uiQueue) Do(f func()) {
	q.mu.Lock()
	q.fns = append(q.fns, f)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// until runs queued functions until cond holds, failing after 20 s.
func (q *uiQueue) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		q.mu.Lock()
		fns := q.fns
		q.fns = nil
		q.mu.Unlock()
		for _, f := range fns {
			f()
		}
		if cond() {
			return
		}
		if len(fns) > 0 {
			continue
		}
		select {
		case <-q.wake:
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// fakeBackend opens the fake models it holds by folder name.
type fakeBackend struct {
	mu     sync.Mutex
	models map[string]*fakeModel
	gpu    bool // whether CUDA is "available"
	opened []string
}

func (b *fakeBackend) Open(ctx context.Context, dir string, engine EngineChoice) (Model, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opened = append(b.opened, dir+" on "+engine.String())
	if engine == EngineCUDA && !b.gpu {
		return nil, fmt.Errorf("no NVIDIA GPU found (libcuda.so.1: cannot open shared object file); choose the CPU engine for small models")
	}
	m, ok := b.models[dir]
	if !ok {
		return nil, fmt.Errorf("%s: not a model folder: config.json not found", dir)
	}
	m.mu.Lock()
	m.closed = false
	m.mu.Unlock()
	return m, nil
}

// fakeModel "generates" its words, one or more per step, honouring ctx
// between steps like the real loop. With gate set, each step after the
// first waits for a value on gate (or for cancellation).
type fakeModel struct {
	name       string
	maxContext int
	words      []string
	accepted   []int // per step, for prompt lookup; cycles
	gate       chan struct{}
	failAt     int // if > 0, the step that fails with an engine error
	monitor    inference.DeviceMonitor
	gpu        string

	mu       sync.Mutex
	closed   bool
	lastReq  inference.Request
	lastArgs [3]string
}

func (m *fakeModel) Info() ModelInfo {
	eng := "CPU (fake)"
	if m.gpu != "" {
		eng = "CUDA on " + m.gpu
	}
	return ModelInfo{Name: m.name, SizeBytes: 4_150_000_000, MaxContext: m.maxContext, Engine: eng, GPU: m.gpu, Monitor: m.monitor}
}

func (m *fakeModel) Prompt(system, instruction, article string) ([]int, error) {
	m.mu.Lock()
	m.lastArgs = [3]string{system, instruction, article}
	m.mu.Unlock()
	n := 5 + len(strings.Fields(system)) + len(strings.Fields(instruction)) + len(strings.Fields(article))
	return make([]int, n), nil
}

func (m *fakeModel) Generate(ctx context.Context, req inference.Request, emit func(inference.Event)) (*inference.Report, error) {
	m.mu.Lock()
	m.lastReq = req
	m.mu.Unlock()
	start := time.Now()
	rep := &inference.Report{PromptTokens: len(req.Prompt), PeakMemory: 300 << 20, Histogram: make([]int, req.LookupTokens+1)}
	step := func(i, n, acc int) {
		for k := 0; k < n && rep.NewTokens < len(m.words); k++ {
			emit(inference.Event{Text: m.words[rep.NewTokens]})
			rep.NewTokens++
		}
		emit(inference.Event{Step: &inference.StepStats{
			Step: i, NewTokens: n, Accepted: acc, Drafted: acc, Elapsed: time.Since(start) + time.Duration(i)*10*time.Millisecond,
			Context: len(req.Prompt) + rep.NewTokens, Memory: inference.Memory{Current: int64(200+i) << 20, Peak: 300 << 20},
		}})
	}
	step(0, 1, 0)
	rep.TimeToFirst = time.Millisecond
	rep.StopReason = "eos"
	for i := 1; rep.NewTokens < len(m.words); i++ {
		if rep.NewTokens >= req.MaxNewTokens {
			rep.StopReason = "max_tokens"
			break
		}
		if m.gate != nil {
			select {
			case <-m.gate:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			rep.StopReason = "cancelled"
			break
		}
		if i == m.failAt {
			return nil, fmt.Errorf("cuda: kernel attention_decode failed at step %d (tokens 1, context %d): an illegal memory access was encountered", i, len(req.Prompt)+rep.NewTokens)
		}
		acc := 0
		if req.Strategy == inference.Lookup && len(m.accepted) > 0 {
			acc = m.accepted[(i-1)%len(m.accepted)]
			rep.Drafted += req.LookupTokens
			rep.Accepted += acc
		}
		step(i, 1+acc, acc)
		rep.Steps++
	}
	rep.Total = time.Since(start)
	rep.Throughput = float64(rep.NewTokens) / max(rep.Total.Seconds(), 1e-9)
	if rep.StopReason == "cancelled" {
		return rep, ctx.Err()
	}
	return rep, nil
}

func (m *fakeModel) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// fakeMonitor reports a device whose use grows with every reading.
type fakeMonitor struct {
	mu   sync.Mutex
	used int64
}

func (f *fakeMonitor) DeviceName() string { return "Fake GPU 80GB" }

func (f *fakeMonitor) DeviceMemory() (used, total int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.used += 10 << 20
	return 5<<30 + f.used, 80 << 30, nil
}

// texts collects the text of every Label, RichText and canvas.Text under o.
func texts(o fyne.CanvasObject) []string {
	var out []string
	var walk func(o fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		switch v := o.(type) {
		case *widget.Label:
			out = append(out, v.Text)
			return
		case *widget.RichText:
			out = append(out, v.String())
			return
		case *canvas.Text:
			out = append(out, v.Text)
			return
		case *widget.Button:
			out = append(out, v.Text)
			return
		case *fyne.Container:
			for _, c := range v.Objects {
				walk(c)
			}
			return
		case fyne.Widget:
			for _, c := range test.WidgetRenderer(v).Objects() {
				walk(c)
			}
		}
	}
	walk(o)
	return out
}

// topDialog returns the texts of the top overlay (a dialog), or nil.
func topDialog(w fyne.Window) []string {
	top := w.Canvas().Overlays().Top()
	if top == nil {
		return nil
	}
	return texts(top)
}

// dismissDialog taps the top dialog's button labelled label.
func dismissDialog(t *testing.T, w fyne.Window, label string) {
	t.Helper()
	top := w.Canvas().Overlays().Top()
	if top == nil {
		t.Fatal("no dialog is shown")
	}
	var found *widget.Button
	var walk func(o fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		switch v := o.(type) {
		case *widget.Button:
			if v.Text == label {
				found = v
			}
		case *fyne.Container:
			for _, c := range v.Objects {
				walk(c)
			}
		case fyne.Widget:
			for _, c := range test.WidgetRenderer(v).Objects() {
				walk(c)
			}
		}
	}
	walk(top)
	if found == nil {
		t.Fatalf("dialog has no %q button: %q", label, texts(top))
	}
	test.Tap(found)
	if w.Canvas().Overlays().Top() == top {
		t.Fatalf("dialog still shown after tapping %q", label)
	}
}

// makePDF writes a one-page PDF whose page content stream is content
// (with the Helvetica font as /F1), with a correct cross-reference table.
func makePDF(content string) []byte {
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content)+1, content),
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

// visible reports whether o and every parent container in c show.
func visible(o fyne.CanvasObject) bool { return o.Visible() }

var _ = container.NewVBox
