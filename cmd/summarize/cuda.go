package main

import (
	"github.com/briefapp/brief/cuda"
	"github.com/briefapp/brief/inference"
)

// The CUDA engine: opens the driver at run time, so this build runs (and
// reports "no NVIDIA GPU found") on machines without one.
func init() {
	gpuEngine = func(m *inference.Model) (inference.Engine, error) {
		return cuda.New(m, cuda.Options{})
	}
}
