package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/briefapp/brief/inference"
	"github.com/briefapp/brief/inference/cpu"
)

// gpuEngine opens the CUDA engine on a model. The CUDA package's wiring
// sets it in an init function; nil means this build has no CUDA engine.
var gpuEngine func(m *inference.Model) (inference.Engine, error)

// engineKinds are the values of --engine.
var engineKinds = []string{"auto", "cuda", "cpu"}

// openEngine picks the engine for kind: "cuda", "cpu", or "auto" (CUDA if
// it opens, else the CPU engine, saying why on log).
func openEngine(kind string, m *inference.Model, log io.Writer) (inference.Engine, error) {
	switch kind {
	case "cpu":
		return openCPU(m)
	case "cuda":
		return openGPU(m)
	case "auto":
		e, gerr := openGPU(m)
		if gerr == nil {
			return e, nil
		}
		e, cerr := openCPU(m)
		if cerr != nil {
			return nil, fmt.Errorf("%w; and %w", gerr, cerr)
		}
		fmt.Fprintf(log, "summarize: %v; using the CPU engine\n", gerr)
		return e, nil
	}
	return nil, fmt.Errorf("unknown engine %q (want auto, cuda or cpu)", kind)
}

func openGPU(m *inference.Model) (inference.Engine, error) {
	if gpuEngine == nil {
		return nil, errors.New("no NVIDIA GPU found: this build has no CUDA engine")
	}
	return gpuEngine(m)
}

func openCPU(m *inference.Model) (inference.Engine, error) {
	e, err := cpu.New(m, cpu.Options{})
	if err != nil {
		return nil, err
	}
	return e, nil
}
