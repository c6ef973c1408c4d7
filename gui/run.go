package gui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/briefapp/brief/inference"
)

// runParams is what one summary needs, read from the controls.
type runParams struct {
	system, instruction, article string
	maxNew                       int
	strategy                     inference.Strategy
	lookupTokens                 int
}

func (a *App) collectParams() (runParams, error) {
	p := runParams{
		system:       a.system.Text,
		instruction:  strings.TrimSpace(a.instruction.Text),
		article:      a.article.Text,
		strategy:     inference.Greedy,
		lookupTokens: int(a.draftSlider.Value),
	}
	if a.strategySel.Selected == strategyLookup {
		p.strategy = inference.Lookup
	}
	if err := checkArticle(p.article); err != nil {
		return p, err
	}
	if p.instruction == "" {
		return p, errors.New("the instruction is empty: pick a preset or write what the model should do with the article")
	}
	n, err := parseMaxNew(a.maxNew.Text)
	if err != nil {
		return p, err
	}
	p.maxNew = n
	return p, nil
}

// startSummary is the Summarize button.
func (a *App) startSummary() {
	if a.busy {
		return
	}
	if a.modelDir == "" {
		a.showError("No model folder", errors.New("choose a model folder first (see the Summary pane for where to get one)"))
		return
	}
	p, err := a.collectParams()
	if err != nil {
		a.showError("Cannot summarize", err)
		return
	}
	a.summary.Reset()
	a.summary.SetHint("Press Summarize to summarize the article.")
	a.tokChart.Clear()
	a.memChart.Clear()
	a.accChart.Clear()
	a.stats.Set(nil)
	a.result = ""
	a.runTokens, a.meter = 0, rateMeter{window: 500 * time.Millisecond}
	a.lookupRun = p.strategy == inference.Lookup
	for _, c := range []*Chart{a.tokChart, a.memChart, a.accChart} {
		c.Refresh()
	}
	a.startJob("Summarizing…", func(ctx context.Context, m Model) { a.generate(ctx, m, p) })
}

// generate runs on the job goroutine.
func (a *App) generate(ctx context.Context, m Model, p runParams) {
	info := m.Info()
	prompt, err := m.Prompt(p.system, p.instruction, p.article)
	if err != nil {
		a.do(func() { a.showError("Cannot build the prompt", err) })
		return
	}
	if err := fitsContext(len(prompt), p.maxNew, len(strings.Fields(p.article)), info); err != nil {
		a.do(func() { a.showError("The article is too long for this model", err) })
		return
	}
	a.do(func() {
		a.ctxUsed = len(prompt)
		a.summary.SetHint("Reading the article…")
		if a.lookupRun {
			a.accChart.SetEmptyText("Waiting for the first step")
		} else {
			a.accChart.SetEmptyText("Prompt lookup only")
		}
		a.accChart.Refresh()
		switch {
		case info.GPU == "":
			a.memChart.SetTitle("Memory (MB)")
			a.memChart.SetNote("engine only: no GPU")
		case info.Monitor == nil:
			a.memChart.SetTitle("GPU memory (MB)")
			a.memChart.SetNote("engine only: NVML unavailable")
		default:
			a.memChart.SetTitle("GPU memory (MB)")
		}
		a.memChart.Refresh()
		a.updateStatus()
	})

	req := inference.Request{
		Prompt:       prompt,
		MaxNewTokens: p.maxNew,
		Strategy:     p.strategy,
		LookupTokens: p.lookupTokens,
	}
	buf := &streamBuffer{}
	start := time.Now()
	stop, ticked := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ticked)
		t := time.NewTicker(a.refresh)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				a.pushUpdate(buf, info.Monitor, start)
			}
		}
	}()
	rep, err := m.Generate(ctx, req, buf.emit)
	close(stop)
	<-ticked
	a.pushUpdate(buf, info.Monitor, start)
	cancelled := ctx.Err() != nil
	a.do(func() { a.finishRun(rep, err, cancelled, info) })
}

// fitsContext checks that the prompt and the new tokens fit the model's
// context, and otherwise says by how much the article must shrink.
func fitsContext(promptTokens, maxNew, articleWords int, info ModelInfo) error {
	need := promptTokens + maxNew
	if need <= info.MaxContext {
		return nil
	}
	over := need - info.MaxContext
	// Words per token of this article with this tokenizer (the prompt's
	// other parts are small beside an article that is too long).
	words := over * articleWords / max(promptTokens, 1)
	msg := fmt.Sprintf("the prompt is %s tokens and up to %s new tokens were asked for, but %s allows %s tokens in all. Shorten the article by about %s tokens (roughly %s words)",
		groupDigits(promptTokens), groupDigits(maxNew), info.Name, groupDigits(info.MaxContext), groupDigits(over), groupDigits(max(words, 1)))
	if promptTokens < info.MaxContext {
		msg += fmt.Sprintf(" or lower max new tokens to at most %s", groupDigits(info.MaxContext-promptTokens))
	}
	return errors.New(msg + ".")
}

// devSample is one device-wide memory reading.
type devSample struct {
	at          time.Duration
	used, total int64
}

// pushUpdate hands what the run produced since the last call to the UI
// thread, with a device memory reading.
func (a *App) pushUpdate(buf *streamBuffer, mon inference.DeviceMonitor, start time.Time) {
	text, steps := buf.take()
	var dev *devSample
	if mon != nil {
		if used, total, err := mon.DeviceMemory(); err == nil {
			dev = &devSample{at: time.Since(start), used: used, total: total}
		}
	}
	if text == "" && len(steps) == 0 && dev == nil {
		return
	}
	a.do(func() { a.applyUpdate(text, steps, dev) })
}

func (a *App) applyUpdate(text string, steps []inference.StepStats, dev *devSample) {
	if text != "" {
		a.summary.Append(text)
	}
	for _, s := range steps {
		a.runTokens += s.NewTokens
		secs := s.Elapsed.Seconds()
		if rate, ok := a.meter.add(s.Elapsed, a.runTokens); ok && s.Step > 0 {
			a.tokChart.Append(0, secs, rate)
		}
		a.memChart.Append(0, secs, float64(s.Memory.Current)/(1<<20))
		if a.lookupRun && s.Step > 0 {
			a.accChart.Append(0, float64(s.Step), float64(s.Accepted))
		}
		a.ctxUsed = s.Context
	}
	if dev != nil {
		a.memChart.Append(1, dev.at.Seconds(), float64(dev.used)/(1<<20))
		a.memChart.SetNote("device total " + groupDigits(int(dev.total>>20)) + " MB")
	}
	if len(steps) > 0 || dev != nil {
		a.tokChart.Refresh()
		a.memChart.Refresh()
		a.accChart.Refresh()
	}
	a.updateStatus()
}

func (a *App) finishRun(rep *inference.Report, err error, cancelled bool, info ModelInfo) {
	if rep != nil {
		a.stats.Set(reportRows(rep, info.GPU, a.lookupRun))
	}
	switch {
	case err != nil && !cancelled:
		a.result = "Failed"
		a.showError("Summarizing failed", err)
	case cancelled:
		a.result = fmt.Sprintf("Stopped after %d tokens", a.runTokens)
	case rep != nil:
		a.result = fmt.Sprintf("Done: %d tokens at %.1f tokens/s (stopped by %s)", rep.NewTokens, rep.Throughput, stopReasonText(rep.StopReason))
	}
	switch {
	case strings.TrimSpace(a.summary.Text()) != "":
	case cancelled:
		a.summary.SetHint("Stopped before the model wrote anything.")
	case err != nil:
		a.summary.SetHint("The run failed before the model wrote anything.")
	default:
		a.summary.SetHint("The model ended without writing anything.")
	}
}
