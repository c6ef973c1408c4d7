package cuda

import (
	"math"
	"testing"

	"github.com/briefapp/brief/inference"
)

// fakeOpenHermes is an Engine with the 7B's shapes and no device: enough
// for the benchmark figures, which need only shapes.
func fakeOpenHermes() *Engine {
	c := inference.Config{Hidden: 4096, Layers: 32, Heads: 32, KVHeads: 8, HeadDim: 128, Intermediate: 14336,
		Vocab: 32002, SlidingWindow: 4096, MaxPositions: 32768, Quant: inference.Quant{GroupSize: 128}}
	e := &Engine{cfg: c, chunk: 512, cap: 4096 + 513}
	e.layers = make([]layerBufs, c.Layers)
	for i := range e.layers {
		l := &e.layers[i]
		l.qkv.p = awqPacked{In: 4096, Out: 6144, Group: 128}
		l.o.p = awqPacked{In: 4096, Out: 4096, Group: 128}
		l.gu.p = awqPacked{In: 4096, Out: 2 * 14336, Group: 128}
		l.down.p = awqPacked{In: 14336, Out: 4096, Group: 128}
	}
	return e
}

// TestStepBytes checks the figures against the shapes by hand: int4
// weights plus a 4-byte scale/zero entry per group and output, fp16 norms
// and lm_head; 128 KiB of KV per visible position (DESIGN.md).
func TestStepBytes(t *testing.T) {
	e := fakeOpenHermes()
	lin := func(in, out int64) int64 { return in*out/2 + in/128*out*4 }
	perLayer := lin(4096, 6144) + lin(4096, 4096) + lin(4096, 28672) + lin(14336, 4096) + 2*4096*2
	want := 32*perLayer + 4096*2 + 32002*4096*2
	if got := e.WeightBytes(); got != want {
		t.Errorf("WeightBytes = %d, want %d", got, want)
	}
	const perPos = 128 << 10
	for _, c := range []struct{ context, keys int }{{0, 1}, {6434, 4096}, {100, 101}, {4095, 4096}} {
		if got := e.KVBytes(c.context); got != int64(c.keys)*perPos {
			t.Errorf("KVBytes(%d) = %d, want %d keys of %d bytes", c.context, got, c.keys, perPos)
		}
	}
	if got := e.StepBytes(6435); got != want+4096*perPos {
		t.Errorf("StepBytes(6435) = %d", got)
	}
	// About 3.97 GB of weights in our layout (3.89 GB in the file's, with
	// 2.5 bytes per group and output) and 0.54 GB of KV at the window.
	if gb := float64(e.StepBytes(6435)) / 1e9; gb < 4.4 || gb > 4.6 {
		t.Errorf("StepBytes(6435) = %.3f GB", gb)
	}
}

func TestFamilies(t *testing.T) {
	e := fakeOpenHermes()
	prof := map[string]float64{
		"awq_gemv_g128_n1 q|k|v":     0.10,
		"awq_gemv_g128_n1 gate|up":   0.40,
		"attn_prefill_sync_d128":     0.05,
		"attn_reduce":                0.01,
		"add_rmsnorm":                0.02,
		"rope_append":                0.01,
		"silu_mul":                   0.01,
		"lm_head_1":                  0.08,
		"argmax_rows":                0.01,
		"embed_gather":               0.001,
		"something_new":              0.002,
		"awq_gemm_small_g128 o_proj": 0.03,
	}
	fs := e.Families(prof, 1, 6435)
	var names []string
	total := 0.0
	for _, f := range fs {
		names = append(names, f.Name+"/"+f.Part)
		total += f.MS
	}
	want := []string{"AWQ mat-vec/gate|up", "AWQ mat-vec/q|k|v", "AWQ GEMM/o_proj", "attention/", "split reduce/",
		"RMSNorm/", "RoPE+KV append/", "SiLU/", "lm_head/", "argmax/", "embed/", "other/"}
	if len(names) != len(want) {
		t.Fatalf("families %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("families %v, want %v", names, want)
		}
	}
	sum := 0.0
	for _, ms := range prof {
		sum += ms
	}
	if math.Abs(total-sum) > 1e-9 {
		t.Errorf("family times sum to %v, want the profile's %v", total, sum)
	}
	// The mat-vec of gate|up reads its 32 packed linears; attention at
	// 6435 reads the window's 4096 positions.
	if fs[0].Bytes != 32*(4096*28672/2+32*28672*4) {
		t.Errorf("gate|up bytes %d", fs[0].Bytes)
	}
	if fs[2].FLOPs != 2*32*1*4096*4096 {
		t.Errorf("o_proj GEMM flops %v", fs[2].FLOPs)
	}
	if kv := int64(4096 * 128 << 10); fs[3].Bytes < kv || fs[3].Bytes > kv+kv/100 {
		t.Errorf("attention bytes %d, want about %d", fs[3].Bytes, kv)
	}
	if fs[len(fs)-1].Bytes != 0 {
		t.Errorf("other: bytes %d, want 0 (unknown)", fs[len(fs)-1].Bytes)
	}
}
