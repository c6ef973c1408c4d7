package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

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

// printBench writes the human-readable report.
func printBench(w io.Writer, r *benchJSON, o *benchOptions) {
	card := r.Card
	if d := r.Device; d != nil {
		line := fmt.Sprintf("%s, compute capability %d.%d", r.Engine, d.ComputeCapability/10, d.ComputeCapability%10)
		if d.PeakBandwidthGBps > 0 {
			line += fmt.Sprintf(", peak memory bandwidth %.0f GB/s", d.PeakBandwidthGBps)
		}
		if d.PrefillGEMM != "" {
			line += "; prefill GEMM: " + d.PrefillGEMM
		}
		if d.PrefillAttention != "" {
			line += "; prefill attention: " + d.PrefillAttention
		}
		if d.PrefillChunks != "" {
			line += "; prefill chunks: " + d.PrefillChunks
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
		for _, p := range d.Phases {
			fmt.Fprintln(w, phaseLine(p))
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

	if c := r.Ceiling; c != nil {
		fmt.Fprintf(w, "\ndecode ceiling (%s): the one-token step's %d kernels at position %d as plain reads of their %.3f GB, launched as the engine launches them:\n",
			card, c.Kernels, c.Position, float64(c.Bytes)/1e9)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "step\tms\tGB/s\tsteps/s\t")
		row := func(what string, ms float64) {
			if ms > 0 {
				fmt.Fprintf(tw, "%s\t%.3f\t%.0f\t%.1f\t\n", what, ms, float64(c.Bytes)/ms/1e6, 1e3/ms)
			}
		}
		if v.Context == c.Position {
			row("the engine's 1-token step (verify figure above)", v.SingleMS)
		}
		row(fmt.Sprintf("all %d kernels as plain reads", c.Kernels), c.StepsMS)
		row(fmt.Sprintf("the %d of a megabyte or more only", c.BigKernels), c.BigMS)
		row("one read of all the bytes", c.OneMS)
		row(fmt.Sprintf("one persistent kernel, a grid barrier for each of the %d", c.Kernels), c.PersistMS)
		row(fmt.Sprintf("one persistent kernel, a grid barrier for each of the %d big ones", c.BigKernels), c.PersistBigMS)
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

// phaseLine says what the clocks and the power did during one part of the
// run.
func phaseLine(p phaseJSON) string {
	line := fmt.Sprintf("  during the %s: SM %d-%d MHz (mean %.0f, %d samples)", p.Name, p.SMClockMHz[0], p.SMClockMHz[1], p.SMClockMean, p.Samples)
	if p.PowerLimitW > 0 {
		line += fmt.Sprintf(", power up to %.0f of %.0f W", p.PowerMaxW, p.PowerLimitW)
	}
	if p.PowerCapped > 0 {
		line += fmt.Sprintf(", held by the power limit in %d of %d samples", p.PowerCapped, p.Samples)
	}
	if r := p.EventReasons &^ (1 | powerReasons); r != 0 {
		line += fmt.Sprintf(", other clock event reasons 0x%x", r)
	}
	return line
}
