package gui

import (
	"context"

	"github.com/briefapp/brief/inference"
)

// EngineChoice picks the engine a model runs on.
type EngineChoice int

// The engine choices, in the order the window lists them.
const (
	EngineAuto EngineChoice = iota // CUDA when a usable GPU is found, else CPU for small models
	EngineCUDA
	EngineCPU
)

var engineNames = []string{"Auto", "CUDA", "CPU"}

// String names the choice as the window shows it.
func (e EngineChoice) String() string {
	if e < 0 || int(e) >= len(engineNames) {
		return "Auto"
	}
	return engineNames[e]
}

// Backend opens model folders. The real one is Pipeline; tests use a fake.
type Backend interface {
	// Open loads the model folder dir on the chosen engine. It may take
	// seconds (weights are read and uploaded) and is called off the UI
	// thread.
	Open(ctx context.Context, dir string, engine EngineChoice) (Model, error)
}

// Model is a model folder opened on an engine, ready to summarize. One
// goroutine at a time uses it.
type Model interface {
	// Info describes the model and engine for the status line.
	Info() ModelInfo
	// Prompt builds the token ids of the full prompt: the system prompt,
	// the instruction and the article, rendered with the model's chat
	// template.
	Prompt(system, instruction, article string) ([]int, error)
	// Generate runs req, calling emit for every event, and returns the
	// final report. The engine's cache is reset first; req.EOS may be nil
	// (the model's own stop ids are used). It returns when ctx is
	// cancelled, within one engine step.
	Generate(ctx context.Context, req inference.Request, emit func(inference.Event)) (*inference.Report, error)
	// Close frees everything the model and its engine hold.
	Close() error
}

// ModelInfo describes an opened model.
type ModelInfo struct {
	Name       string // the folder's name, e.g. "OpenHermes-2.5-Mistral-7B-AWQ"
	SizeBytes  int64  // bytes of weights on disk
	MaxContext int    // longest sequence the engine accepts
	Engine     string // e.g. "CPU (8 threads)" or "CUDA: NVIDIA H100 80GB HBM3"
	GPU        string // GPU name, "" on the CPU engine
	// Monitor reads device-wide memory; nil without a GPU.
	Monitor inference.DeviceMonitor
}
