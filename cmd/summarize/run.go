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
	"strings"
	"time"
	"unicode/utf8"

	"github.com/briefapp/brief/inference"
	"github.com/briefapp/brief/inference/chat"
	"github.com/briefapp/brief/inference/lookup"
	"github.com/briefapp/brief/inference/tokenizer"
)

func init() {
	register("run", "summarize an article (the default command)", func(args []string) error {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		return runSummarize(ctx, args, os.Stdin, os.Stdout, os.Stderr)
	})
}

// runOptions are the flags of the run command.
type runOptions struct {
	model, article, instruction, system, prompt string
	maxNew, lookupTokens, lookupNgram           int
	strategy, engine                            string
	json                                        bool
}

func parseRun(args []string, stderr io.Writer) (*runOptions, error) {
	o := &runOptions{}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.model, "model", "", "model folder (config.json, model.safetensors, tokenizer)")
	fs.StringVar(&o.article, "article", "", "article to summarize: a text or markdown file, - for stdin")
	fs.StringVar(&o.instruction, "instruction", chat.DefaultInstruction, "request written after the article")
	fs.StringVar(&o.system, "system", chat.DefaultSystem, "system prompt (models with a chat template)")
	fs.StringVar(&o.prompt, "prompt", "", "whole user message, instead of --article and --instruction")
	fs.IntVar(&o.maxNew, "max-new-tokens", 512, "most tokens to generate")
	fs.StringVar(&o.strategy, "strategy", "greedy", "greedy or lookup (prompt lookup decoding; same output, fewer steps)")
	fs.IntVar(&o.lookupTokens, "lookup-tokens", inference.DefaultLookupTokens, fmt.Sprintf("most drafted tokens per step with --strategy lookup (1..%d)", inference.MaxVerify-1))
	fs.IntVar(&o.lookupNgram, "lookup-ngram", lookup.DefaultNgram, "longest n-gram the drafter matches")
	fs.StringVar(&o.engine, "engine", "auto", "auto (CUDA if available, else CPU), cuda or cpu")
	fs.BoolVar(&o.json, "json", false, "print one JSON object (report and token_ids) on stdout at the end; text streams to stderr")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.model == "":
		return nil, errors.New("--model is required")
	case (o.article == "") == (o.prompt == ""):
		return nil, errors.New("give exactly one of --article and --prompt")
	case o.maxNew < 1:
		return nil, fmt.Errorf("--max-new-tokens %d: want at least 1", o.maxNew)
	case o.strategy != "greedy" && o.strategy != "lookup":
		return nil, fmt.Errorf("--strategy %q: want greedy or lookup", o.strategy)
	case o.lookupTokens < 1 || o.lookupTokens > inference.MaxVerify-1:
		return nil, fmt.Errorf("--lookup-tokens %d: want 1..%d (an engine step verifies at most %d tokens)", o.lookupTokens, inference.MaxVerify-1, inference.MaxVerify)
	case o.lookupNgram < 1 || o.lookupNgram > 64:
		return nil, fmt.Errorf("--lookup-ngram %d: want 1..64", o.lookupNgram)
	}
	return o, nil
}

// readArticle reads the article file (or stdin for "-") and checks it is
// non-empty UTF-8 text.
func readArticle(name string, stdin io.Reader) (string, error) {
	var b []byte
	var err error
	if name == "-" {
		name = "stdin"
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return "", fmt.Errorf("article: %w", err)
	}
	if !utf8.Valid(b) {
		off := 0
		for off < len(b) {
			r, n := utf8.DecodeRune(b[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		return "", fmt.Errorf("article %s: not UTF-8 text (invalid byte at offset %d); convert it to UTF-8 or extract the text first", name, off)
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", fmt.Errorf("article %s is empty", name)
	}
	return string(b), nil
}

// buildPrompt tokenizes the conversation the options describe, through
// the model's chat template (raw text for a model without one).
func buildPrompt(o *runOptions, stdin io.Reader) ([]int, *tokenizer.Tokenizer, error) {
	var msgs []chat.Message
	if o.prompt != "" {
		if o.system != "" {
			msgs = append(msgs, chat.Message{Role: "system", Content: o.system})
		}
		msgs = append(msgs, chat.Message{Role: "user", Content: o.prompt})
	} else {
		article, err := readArticle(o.article, stdin)
		if err != nil {
			return nil, nil, err
		}
		msgs = chat.SummaryMessages(o.system, o.instruction, article)
	}
	tok, err := tokenizer.Load(o.model)
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := chat.Load(o.model)
	if err != nil {
		return nil, nil, err
	}
	prompt, err := chat.Encode(tmpl, tok, msgs)
	if err != nil {
		return nil, nil, err
	}
	return prompt, tok, nil
}

func runSummarize(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := parseRun(args, stderr)
	if err != nil {
		return err
	}
	prompt, tok, err := buildPrompt(o, stdin)
	if err != nil {
		return err
	}

	m, err := inference.OpenModel(o.model)
	if err != nil {
		return err
	}
	defer m.Close()
	eng, err := openEngine(o.engine, m, stderr)
	if err != nil {
		return err
	}
	defer eng.Close()

	req := inference.Request{Prompt: prompt, MaxNewTokens: o.maxNew, EOS: m.EOS()}
	if len(req.EOS) == 0 && tok.EOS() >= 0 {
		req.EOS = []int{tok.EOS()}
	}
	if o.strategy == "lookup" {
		req.Strategy = inference.Lookup
		req.LookupTokens = o.lookupTokens
		req.LookupNgram = o.lookupNgram
	}
	textOut := stdout
	if o.json {
		textOut = stderr
	}
	var text strings.Builder
	rep, genErr := inference.Generate(ctx, eng, tokenizer.NewTextStream(tok), req, func(e inference.Event) {
		if e.Text != "" {
			text.WriteString(e.Text)
			io.WriteString(textOut, e.Text)
		}
	})
	if rep == nil {
		return genErr
	}
	if o.json {
		if err := json.NewEncoder(stdout).Encode(newRunJSON(m.Name(), eng.Name(), o.strategy, rep, text.String())); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "\n\nMax memory (MB): %.2f\nThroughput (tokens/sec): %.2f\n", mib(rep.PeakMemory), rep.Throughput)
	}
	if genErr != nil {
		return fmt.Errorf("stopped after %d tokens: %w", rep.NewTokens, genErr)
	}
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// runJSON is what --json prints.
type runJSON struct {
	Model    string     `json:"model"`
	Engine   string     `json:"engine"`
	Strategy string     `json:"strategy"`
	Report   reportJSON `json:"report"`
	TokenIDs []int      `json:"token_ids"`
	Text     string     `json:"text"`
}

// reportJSON is inference.Report with times in milliseconds.
type reportJSON struct {
	PromptTokens    int     `json:"prompt_tokens"`
	NewTokens       int     `json:"new_tokens"`
	StopReason      string  `json:"stop_reason"`
	PrefillMS       float64 `json:"prefill_ms"`
	TimeToFirstMS   float64 `json:"time_to_first_token_ms"`
	TotalMS         float64 `json:"total_ms"`
	PrefillTokensPS float64 `json:"prefill_tokens_per_s"`
	DecodeTokensPS  float64 `json:"decode_tokens_per_s"`
	Throughput      float64 `json:"throughput_tokens_per_s"`
	MaxMemoryMB     float64 `json:"max_memory_mb"`
	PeakMemory      int64   `json:"peak_memory_bytes"`
	Steps           int     `json:"steps"`
	Drafted         int     `json:"drafted"`
	Accepted        int     `json:"accepted"`
	TokensPerStep   float64 `json:"tokens_per_step"`
	Histogram       []int   `json:"histogram"`
}

func newRunJSON(model, engine, strategy string, r *inference.Report, text string) runJSON {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	j := runJSON{Model: model, Engine: engine, Strategy: strategy, TokenIDs: r.TokenIDs, Text: text,
		Report: reportJSON{
			PromptTokens: r.PromptTokens, NewTokens: r.NewTokens, StopReason: r.StopReason,
			PrefillMS: ms(r.Prefill), TimeToFirstMS: ms(r.TimeToFirst), TotalMS: ms(r.Total),
			PrefillTokensPS: r.PrefillTokensPS, DecodeTokensPS: r.DecodeTokensPS, Throughput: r.Throughput,
			MaxMemoryMB: mib(r.PeakMemory), PeakMemory: r.PeakMemory,
			Steps: r.Steps, Drafted: r.Drafted, Accepted: r.Accepted, Histogram: r.Histogram,
		}}
	if r.Steps > 0 {
		// Tokens after the first (which prefill gives) per verify step.
		j.Report.TokensPerStep = float64(r.NewTokens-1) / float64(r.Steps)
	}
	if j.TokenIDs == nil {
		j.TokenIDs = []int{}
	}
	return j
}
