package main

import (
	"github.com/briefapp/brief/cuda"
	"github.com/briefapp/brief/inference"
)

// The CUDA engine's extras for bench: the NVML monitor, kernel profiles and
// the streaming ceiling.
func init() {
	openBenchMonitor = func() (benchMonitor, error) { return cuda.OpenMonitor(0) }
	profileKernels = func(e inference.Engine, T, steps int) ([]kernelFamily, bool, error) {
		ce, ok := e.(*cuda.Engine)
		if !ok {
			return nil, false, nil
		}
		prof, err := ce.Profile(T, steps)
		if err != nil {
			return nil, true, err
		}
		var out []kernelFamily
		for _, f := range ce.Families(prof, T, ce.Len()) {
			out = append(out, kernelFamily{Name: f.Name, Part: f.Part, MS: f.MS, Bytes: f.Bytes, FLOPs: f.FLOPs})
		}
		return out, true, nil
	}
	streamCeiling = func(e inference.Engine) (*ceilingJSON, bool, error) {
		ce, ok := e.(*cuda.Engine)
		if !ok {
			return nil, false, nil
		}
		c, err := ce.StreamCeiling()
		if err != nil {
			return nil, true, err
		}
		return &ceilingJSON{Position: c.Position, Kernels: c.Kernels, BigKernels: c.BigKernels, Bytes: c.Bytes,
			StepsMS: c.StepsMS, BigMS: c.BigMS, OneMS: c.OneMS, PersistMS: c.PersistMS, PersistBigMS: c.PersistBigMS}, true, nil
	}
}

// What bench finds by type assertion: a rename in cuda must fail the
// build, not silently drop figures.
var (
	_ gpuEngineInfo = (*cuda.Engine)(nil)
	_ stepByter     = (*cuda.Engine)(nil)
	_ chunker       = (*cuda.Engine)(nil)
	_ benchMonitor  = (*cuda.Monitor)(nil)
)
