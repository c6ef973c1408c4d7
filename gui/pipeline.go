package gui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/briefapp/brief/inference"
	"github.com/briefapp/brief/inference/chat"
	"github.com/briefapp/brief/inference/cpu"
	"github.com/briefapp/brief/inference/tokenizer"
)

// Pipeline is the real Backend: model folders, tokenizer and chat template
// through package inference, the CPU reference engine, and the CUDA engine
// where the app provides one.
type Pipeline struct {
	// CUDA opens the GPU engine on m, with a monitor of its device (nil
	// if NVML is unavailable). Nil means this build has no CUDA engine.
	CUDA func(m *inference.Model) (inference.Engine, inference.DeviceMonitor, error)
	// CPU configures the CPU engine.
	CPU cpu.Options
}

// Open implements Backend.
func (p Pipeline) Open(ctx context.Context, dir string, choice EngineChoice) (Model, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("model folder: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("%s: not a folder; choose the folder that holds config.json and model.safetensors", dir)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, inFolder(dir, err)
	}
	tmpl, err := chat.Load(dir)
	if err != nil {
		return nil, inFolder(dir, err)
	}
	m, err := inference.OpenModel(dir)
	if err != nil {
		return nil, inFolder(dir, err)
	}
	if err := ctx.Err(); err != nil {
		m.Close()
		return nil, err
	}
	eng, mon, err := p.engine(m, choice)
	if err != nil {
		m.Close()
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		eng.Close()
		closeMonitor(mon)
		m.Close()
		return nil, err
	}
	return &pipelineModel{m: m, tok: tok, tmpl: tmpl, eng: eng, mon: mon}, nil
}

// inFolder makes sure err says which folder it is about.
func inFolder(dir string, err error) error {
	if strings.Contains(err.Error(), dir) {
		return err
	}
	return fmt.Errorf("model folder %s: %w", dir, err)
}

// engine opens the chosen engine: Auto tries CUDA, then the CPU engine
// (which refuses models too big for it, saying so).
func (p Pipeline) engine(m *inference.Model, choice EngineChoice) (inference.Engine, inference.DeviceMonitor, error) {
	switch choice {
	case EngineCPU:
		e, err := cpu.New(m, p.CPU)
		return e, nil, err
	case EngineCUDA:
		return p.gpu(m)
	}
	e, mon, gerr := p.gpu(m)
	if gerr == nil {
		return e, mon, nil
	}
	c, cerr := cpu.New(m, p.CPU)
	if cerr != nil {
		return nil, nil, fmt.Errorf("%w; the CPU engine cannot run it either: %w", gerr, cerr)
	}
	return c, nil, nil
}

func (p Pipeline) gpu(m *inference.Model) (inference.Engine, inference.DeviceMonitor, error) {
	if p.CUDA == nil {
		return nil, nil, errors.New("no NVIDIA GPU found: this build of Brief has no CUDA engine")
	}
	return p.CUDA(m)
}

func closeMonitor(mon inference.DeviceMonitor) {
	if c, ok := mon.(io.Closer); ok {
		c.Close()
	}
}

// pipelineModel is an open model folder on an engine.
type pipelineModel struct {
	m    *inference.Model
	tok  *tokenizer.Tokenizer
	tmpl *chat.Template
	eng  inference.Engine
	mon  inference.DeviceMonitor // nil without NVML
}

func (p *pipelineModel) Info() ModelInfo {
	info := ModelInfo{
		Name:       p.m.Name(),
		SizeBytes:  p.m.SizeBytes(),
		MaxContext: p.eng.MaxContext(),
		Engine:     p.eng.Name(),
		Monitor:    p.mon,
	}
	if p.mon != nil {
		info.GPU = p.mon.DeviceName()
	} else if d, ok := p.eng.(interface{ DeviceName() string }); ok {
		info.GPU = d.DeviceName()
	}
	return info
}

// Prompt builds the reference workload's conversation around the article.
// The reference article brings its own leading and trailing space (it is
// glued between the preamble and the instruction); other text gets one.
func (p *pipelineModel) Prompt(system, instruction, article string) ([]int, error) {
	if r, _ := utf8.DecodeRuneInString(article); !unicode.IsSpace(r) {
		article = " " + article
	}
	if r, _ := utf8.DecodeLastRuneInString(article); !unicode.IsSpace(r) {
		article += " "
	}
	return chat.Encode(p.tmpl, p.tok, chat.SummaryMessages(system, instruction, article))
}

func (p *pipelineModel) Generate(ctx context.Context, req inference.Request, emit func(inference.Event)) (*inference.Report, error) {
	if req.EOS == nil {
		req.EOS = p.m.EOS()
		if len(req.EOS) == 0 && p.tok.EOS() >= 0 {
			req.EOS = []int{p.tok.EOS()}
		}
	}
	p.eng.Reset()
	return inference.Generate(ctx, p.eng, tokenizer.NewTextStream(p.tok), req, emit)
}

func (p *pipelineModel) Close() error {
	err := p.eng.Close()
	closeMonitor(p.mon)
	if cerr := p.m.Close(); err == nil {
		err = cerr
	}
	return err
}
