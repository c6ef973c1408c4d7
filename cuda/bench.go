package cuda

// Figures for benchmarks (summarize bench): the bytes a step must read and
// the work it does, in total and per kernel family, so that times become
// achieved bandwidth and throughput; and NVML's clock and bandwidth limits.

import (
	"fmt"
	"sort"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/briefapp/brief/inference"
)

// packedBytes is the size of a packed AWQ linear in the device layout
// (weights, then the scale/zero table): what a mat-vec over it reads.
func packedBytes(p *awqPacked) int64 {
	if p.Group <= 0 {
		return 0
	}
	return int64(awqSZOffset(p.In, p.Out)) + int64(p.In/p.Group)*int64(awqOutPad(p.Out))*4
}

// WeightBytes is the bytes of weights one decode step reads: every packed
// AWQ linear in the device layout, the norms and lm_head (one embedding
// row aside).
func (e *Engine) WeightBytes() int64 {
	c := &e.cfg
	var n int64
	for i := range e.layers {
		l := &e.layers[i]
		for _, p := range []*awqPacked{&l.qkv.p, &l.o.p, &l.gu.p, &l.down.p} {
			n += packedBytes(p)
		}
		n += 2 * 2 * int64(c.Hidden)
	}
	return n + 2*int64(c.Hidden) + 2*int64(c.Vocab)*int64(c.Hidden)
}

// visibleKeys is how many cached positions a query at position pos sees.
func (e *Engine) visibleKeys(pos int) int {
	if w := e.cfg.SlidingWindow; w > 0 {
		return min(pos+1, w)
	}
	return pos + 1
}

// kvBytesPerPosition is the fp16 K and V of one position in every layer.
func (e *Engine) kvBytesPerPosition() int64 {
	c := &e.cfg
	return int64(len(e.layers)) * 2 * int64(c.KVHeads) * int64(c.HeadDim) * 2
}

// KVBytes is the bytes of K and V cache a one-token step reads when the
// cache holds context positions (the keys the new token sees, window
// applied).
func (e *Engine) KVBytes(context int) int64 {
	return int64(e.visibleKeys(context)) * e.kvBytesPerPosition()
}

// StepBytes is the least a one-token decode step at context positions must
// read from memory: WeightBytes plus KVBytes. Divided by a step's time it
// gives the achieved bandwidth the memory-bound decode is judged by.
func (e *Engine) StepBytes(context int) int64 { return e.WeightBytes() + e.KVBytes(context) }

// Chunk is the most tokens one forward pass takes (the prefill chunk), and
// so the largest T Profile accepts.
func (e *Engine) Chunk() int { return e.chunk }

// KernelFamily is one group of kernels in a Profile, with what they must
// read and compute per step, for achieved GB/s and TFLOP/s.
type KernelFamily struct {
	Name  string  // "AWQ mat-vec", "attention", ...
	Part  string  // for the AWQ families, the linear ("q|k|v"); else ""
	MS    float64 // mean device milliseconds per step
	Bytes int64   // bytes the kernels must read or write per step (0: not estimated)
	FLOPs float64 // floating-point operations per step (0: not counted)
}

// Kernel families in the order they are listed.
var familyOrder = []string{"AWQ mat-vec", "AWQ GEMM", "attention", "split reduce", "RMSNorm", "RoPE+KV append",
	"SiLU", "lm_head", "argmax", "embed", "other"}

// kernelFamily names the family of a kernel (the profile's name without
// its tag).
func kernelFamily(kernel string) string {
	switch {
	case strings.HasPrefix(kernel, "awq_gemv"):
		return "AWQ mat-vec"
	case strings.HasPrefix(kernel, "awq_gemm"):
		return "AWQ GEMM"
	case strings.HasPrefix(kernel, "attn_reduce"):
		return "split reduce"
	case strings.HasPrefix(kernel, "attn_"):
		return "attention"
	case strings.HasPrefix(kernel, "add_rmsnorm"), strings.HasPrefix(kernel, "embed_rmsnorm"):
		return "RMSNorm"
	case strings.HasPrefix(kernel, "rope_append"):
		return "RoPE+KV append"
	case strings.HasPrefix(kernel, "silu"):
		return "SiLU"
	case strings.HasPrefix(kernel, "lm_head"):
		return "lm_head"
	case strings.HasPrefix(kernel, "argmax"):
		return "argmax"
	case strings.HasPrefix(kernel, "embed"):
		return "embed"
	}
	return "other"
}

// Families groups a Profile(T, ...) result, taken with pos positions in the
// cache, into kernel families (AWQ ones split by linear), in familyOrder,
// each with the bytes and operations of its kernels per step. The byte
// counts are the least the kernels must move (weights once, activations
// once), not what they actually move.
func (e *Engine) Families(profile map[string]float64, T, pos int) []KernelFamily {
	byKey := map[[2]string]*KernelFamily{}
	for name, ms := range profile {
		kernel, tag, _ := strings.Cut(name, " ")
		f := KernelFamily{Name: kernelFamily(kernel)}
		if f.Name == "AWQ mat-vec" || f.Name == "AWQ GEMM" {
			f.Part = tag
		}
		k := [2]string{f.Name, f.Part}
		if byKey[k] == nil {
			byKey[k] = &f
		}
		byKey[k].MS += ms
	}
	out := make([]KernelFamily, 0, len(byKey))
	for _, f := range byKey {
		f.Bytes, f.FLOPs = e.familyWork(f.Name, f.Part, T, pos)
		out = append(out, *f)
	}
	rank := map[string]int{}
	for i, n := range familyOrder {
		rank[n] = i
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return rank[out[i].Name] < rank[out[j].Name]
		}
		return out[i].Part < out[j].Part
	})
	return out
}

// familyWork estimates the bytes and FLOPs per step of one family (and AWQ
// linear) for a forward pass of T tokens at position pos, as forward runs it.
func (e *Engine) familyWork(family, part string, T, pos int) (bytes int64, flops float64) {
	c := &e.cfg
	L := int64(len(e.layers))
	t := int64(T)
	hid, H, KV, D, I := int64(c.Hidden), int64(c.Heads), int64(c.KVHeads), int64(c.HeadDim), int64(c.Intermediate)
	// Rows that get logits: all of a verify step, the last of a prefill chunk.
	n := t
	if T > inference.MaxVerify {
		n = 1
	}
	switch family {
	case "AWQ mat-vec", "AWQ GEMM":
		if len(e.layers) == 0 {
			return 0, 0
		}
		l := &e.layers[0]
		var p *awqPacked
		switch part {
		case "q|k|v":
			p = &l.qkv.p
		case "o_proj":
			p = &l.o.p
		case "gate|up":
			p = &l.gu.p
		case "down_proj":
			p = &l.down.p
		default:
			return 0, 0
		}
		return L * packedBytes(p), 2 * float64(L) * float64(t) * float64(p.In) * float64(p.Out)
	case "attention":
		// Keys and values of the union of the step's windows, once; queries
		// read and outputs written; 4*D operations per query head and key.
		keys := int64(pos + T)
		if w := c.SlidingWindow; w > 0 {
			keys = min(keys, int64(w)+t-1)
		}
		var qk float64
		for i := range T {
			qk += float64(e.visibleKeys(pos + i))
		}
		bytes = L * (keys*2*KV*D*2 + t*H*D*2*2)
		return bytes, 4 * float64(L) * float64(H) * float64(D) * qk
	case "split reduce":
		p := e.attnPlan(T)
		rows := t * H
		return L * (int64(p.splits)*rows*(D+2)*4 + rows*D*2), 0
	case "RMSNorm":
		// Residual in and out (fp32), projection in and normalized out (fp16);
		// the first norm reads the embedding rows instead (embed_rmsnorm).
		return (2*L+1)*t*hid*12 + n*hid*12, 0
	case "RoPE+KV append":
		return L * t * (H + 2*KV) * D * 2 * 2, 0
	case "SiLU":
		return L * t * I * 6, 0
	case "lm_head":
		return int64(c.Vocab)*hid*2 + n*int64(c.Vocab)*4, 2 * float64(n) * float64(c.Vocab) * float64(hid)
	case "argmax":
		return n * int64(c.Vocab) * 4, 0
	case "embed":
		return t * hid * (2 + 4), 0
	}
	return 0, 0
}

// MaxClocks returns the highest SM and memory clocks in MHz the GPU
// supports.
func (m *Monitor) MaxClocks() (sm, mem int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ret := m.dev.GetMaxClockInfo(nvml.CLOCK_SM)
	if ret != nvml.SUCCESS {
		return 0, 0, fmt.Errorf("NVML: max SM clock of %s: %v", m.name, ret)
	}
	mm, ret := m.dev.GetMaxClockInfo(nvml.CLOCK_MEM)
	if ret != nvml.SUCCESS {
		return 0, 0, fmt.Errorf("NVML: max memory clock of %s: %v", m.name, ret)
	}
	return int(s), int(mm), nil
}

// PeakBandwidth is the GPU's theoretical memory bandwidth in bytes per
// second: bus width × max memory clock × 2 (double data rate) / 8. An H100
// SXM gives 5120 bits × 2619 MHz × 2 / 8 = 3.35 TB/s.
func (m *Monitor) PeakBandwidth() (float64, error) {
	_, mem, err := m.MaxClocks()
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	bits, ret := m.dev.GetMemoryBusWidth()
	if ret != nvml.SUCCESS {
		return 0, fmt.Errorf("NVML: memory bus width of %s: %v", m.name, ret)
	}
	return float64(bits) * float64(mem) * 1e6 * 2 / 8, nil
}

// ThrottleReasons returns NVML's current clock event reasons as a bit mask
// (0: none; 1: idle; others mean a power, thermal or applications-clock
// limit held the clocks down).
func (m *Monitor) ThrottleReasons() (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ret := m.dev.GetCurrentClocksEventReasons()
	if ret != nvml.SUCCESS {
		return 0, fmt.Errorf("NVML: clock event reasons of %s: %v", m.name, ret)
	}
	return r, nil
}

// Power returns the board's power draw and the enforced power limit in
// watts. A prefill that holds the card at its limit runs at lower SM
// clocks than the maximum, so its figures need both.
func (m *Monitor) Power() (watts, limit float64, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ret := m.dev.GetPowerUsage()
	if ret != nvml.SUCCESS {
		return 0, 0, fmt.Errorf("NVML: power draw of %s: %v", m.name, ret)
	}
	l, ret := m.dev.GetEnforcedPowerLimit()
	if ret != nvml.SUCCESS {
		return 0, 0, fmt.Errorf("NVML: power limit of %s: %v", m.name, ret)
	}
	return float64(p) / 1e3, float64(l) / 1e3, nil
}
