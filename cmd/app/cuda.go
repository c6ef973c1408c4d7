package main

import (
	"github.com/briefapp/brief/inference"
)

// openCUDA opens the GPU engine; nil until the CUDA engine is wired in.
var openCUDA func(m *inference.Model) (inference.Engine, inference.DeviceMonitor, error)
