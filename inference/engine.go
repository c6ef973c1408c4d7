package inference

import "context"

// MaxVerify is the most tokens one Verify step takes: 1 accepted token plus
// up to 15 drafted ones.
const MaxVerify = 16

// Engine runs the network for one sequence at a time. Positions are counted
// from the start of the sequence; the engine owns its KV cache.
//
// Engines are not safe for concurrent use: one goroutine drives an engine.
type Engine interface {
	// Name describes the engine for a status line, e.g. "CPU (8 threads)" or
	// "CUDA: NVIDIA H100 80GB HBM3".
	Name() string
	// Prefill appends tokens to the cache (in chunks, checking ctx between
	// them) and returns the greedy next token after the last one.
	Prefill(ctx context.Context, tokens []int) (next int, err error)
	// Verify appends 1..MaxVerify tokens in one step and returns, for each of
	// them, the greedy next token after it.
	Verify(tokens []int) (next []int, err error)
	// Rollback truncates the cache to its first n positions, n <= Len(). It
	// undoes at most the last Verify step.
	Rollback(n int) error
	// Len is the number of positions held in the cache.
	Len() int
	// MaxContext is the longest sequence the engine accepts.
	MaxContext() int
	// Reset empties the cache for a new sequence.
	Reset()
	// Memory reports the bytes the engine has allocated now and at its peak.
	Memory() Memory
	// Close frees everything the engine holds.
	Close() error
}

// LogitsReader is implemented by engines that can hand back the logits of
// the last position of the last step (tests and cross-checks only: the fast
// path never copies logits to the host).
type LogitsReader interface {
	LastLogits() ([]float32, error)
}

// Pipelined is implemented by engines that can run greedy one-token steps
// back to back on the device, each step taking its token from the one
// before there, so that the host's turn between steps costs no device time.
// Generate uses it for greedy runs; the tokens are those of Verify steps.
type Pipelined interface {
	// Greedy appends first, then the greedy token after it, and so on, one
	// step each, for at most n steps (Len()+n <= MaxContext()), and calls
	// each with every new greedy token in order; it stops early when each
	// returns false. At the k-th call of each the cache holds k positions
	// more than before Greedy: first and the k-1 tokens before this one.
	// Steps queued beyond the last token read are discarded.
	Greedy(first, n int, each func(next int) bool) error
}

// Memory is an engine's own accounting of what it allocated.
type Memory struct {
	Current int64 // bytes held now
	Peak    int64 // most bytes held at once since the engine was created
}

// DeviceMonitor reads device-wide figures (NVML on NVIDIA GPUs). Kept behind
// an interface so the GUI and tests run on machines without a GPU.
type DeviceMonitor interface {
	// DeviceName is the GPU's marketing name.
	DeviceName() string
	// DeviceMemory returns the bytes in use on the device by all processes
	// and the device's total.
	DeviceMemory() (used, total int64, err error)
}
