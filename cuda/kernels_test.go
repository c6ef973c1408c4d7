package cuda

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Each kernel against a float64 CPU reference on random inputs. Tolerances:
// fp16 outputs carry a rounding of 2^-11 relative (about 4.9e-4), so they
// are checked at 1e-3 relative plus a small absolute term for values near 0.

func TestEmbedAndNorm(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, hidden := range []int{64, 4096, 14336} {
		t.Run(fmt.Sprint(hidden), func(t *testing.T) {
			d.bind(t)
			const vocab, T = 97, 5
			table := randHalves(rng, vocab*hidden, -1, 1)
			ids := []int{3, 96, 0, 3, 41}
			pp := d.upI32(t, params(0, ids))
			tp := d.upHalf(t, table)
			h := d.mustAlloc(t, 4*T*hidden)
			if err := d.launch("embed_gather", launchShape{Grid: [3]uint32{T}, Block: [3]uint32{256}}, "test", tp, pp, h, hidden); err != nil {
				t.Fatal(err)
			}
			got := d.downF32(t, h, T*hidden)
			want := make([]float64, T*hidden)
			for i, id := range ids {
				for j := range hidden {
					want[i*hidden+j] = float64(table[id*hidden+j])
				}
			}
			compare(t, "embed", got, want, 0, 0)

			// The first norm with the gather inside (embed_rmsnorm*): the
			// residual and the outputs of embed_gather and then the norm,
			// bit for bit (h here is embed_gather's).
			wf := d.upHalf(t, randHalves(rng, hidden, 0.5, 1.5))
			type pair struct {
				ref, fused string
				shape      launchShape
			}
			pairs := []pair{{"add_rmsnorm", "embed_rmsnorm", launchShape{Grid: [3]uint32{T}, Block: [3]uint32{normThreads(hidden)}}}}
			if normVT4Fits(hidden) {
				pairs = append(pairs, pair{"add_rmsnorm_vt4", "embed_rmsnorm_vt4", launchShape{Grid: [3]uint32{T}, Block: [3]uint32{uint32(hidden / 16)}}})
			}
			for _, p := range pairs {
				o1, o2, h2 := d.mustAlloc(t, 2*T*hidden), d.mustAlloc(t, 2*T*hidden), d.mustAlloc(t, 4*T*hidden)
				if err := d.launch(p.ref, p.shape, "test", h, devPtr(0), wf, o1, hidden, float32(1e-5)); err != nil {
					t.Fatal(err)
				}
				if err := d.launch(p.fused, p.shape, "test", tp, pp, h2, wf, o2, hidden, float32(1e-5)); err != nil {
					t.Fatal(err)
				}
				sameBits(t, p.fused+" residual", d.downF32(t, h2, T*hidden), got)
				sameBits(t, p.fused+" output", d.downHalf(t, o2, T*hidden), d.downHalf(t, o1, T*hidden))
			}

			y := randHalves(rng, T*hidden, -2, 2)
			w := randHalves(rng, hidden, 0.5, 1.5)
			yp, wp := d.upHalf(t, y), d.upHalf(t, w)
			out := d.mustAlloc(t, 2*T*hidden)
			const eps = 1e-5
			for _, withY := range []bool{false, true} {
				arg := devPtr(0)
				if withY {
					arg = yp
				}
				before := d.downF32(t, h, T*hidden)
				if err := d.launch("add_rmsnorm", launchShape{Grid: [3]uint32{T}, Block: [3]uint32{normThreads(hidden)}}, "test", h, arg, wp, out, hidden, float32(eps)); err != nil {
					t.Fatal(err)
				}
				wantH := make([]float64, T*hidden)
				wantO := make([]float64, T*hidden)
				for r := range T {
					ss := 0.0
					for j := range hidden {
						v := before[r*hidden+j]
						if withY {
							v += y[r*hidden+j] // float32 add, as the kernel
						}
						wantH[r*hidden+j] = float64(v)
						ss += float64(v) * float64(v)
					}
					inv := 1 / math.Sqrt(ss/float64(hidden)+eps)
					for j := range hidden {
						wantO[r*hidden+j] = wantH[r*hidden+j] * inv * float64(w[j])
					}
				}
				compare(t, fmt.Sprintf("residual (add %v)", withY), d.downF32(t, h, T*hidden), wantH, 0, 0)
				compare(t, fmt.Sprintf("rmsnorm (add %v)", withY), d.downHalf(t, out, T*hidden), wantO, 1e-4, 1e-3)
			}
		})
	}
}

func TestRoPEAppend(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(3, 4))
	cases := []struct{ H, KV, D, T, pos0, cap int }{
		{4, 2, 8, 3, 0, 16},
		{32, 8, 128, 5, 4093, 4113}, // large angles
		{4, 4, 64, 7, 95, 40},       // ring wraps
	}
	const theta = 10000
	for _, c := range cases {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			d.bind(t)
			w := (c.H + 2*c.KV) * c.D
			qkv := randHalves(rng, c.T*w, -1, 1)
			qp := d.upHalf(t, qkv)
			kc := d.mustAlloc(t, 2*c.KV*c.cap*c.D)
			vc := d.mustAlloc(t, 2*c.KV*c.cap*c.D)
			pp := d.upI32(t, params(c.pos0, make([]int, c.T)))
			if err := d.launch("rope_append", launchShape{Grid: [3]uint32{uint32(c.T), uint32(c.H + c.KV)}, Block: [3]uint32{uint32(c.D / 2)}}, "test",
				qp, kc, vc, pp, c.H, c.KV, c.D, c.cap, float32(theta)); err != nil {
				t.Fatal(err)
			}
			rot := func(x []float32, pos int) []float64 {
				out := make([]float64, c.D)
				half := c.D / 2
				for i := range half {
					inv := float32(1 / math.Pow(theta, float64(2*i)/float64(c.D)))
					ang := float64(float32(pos) * inv)
					s, co := math.Sincos(ang)
					out[i] = float64(x[i])*co - float64(x[i+half])*s
					out[i+half] = float64(x[i+half])*co + float64(x[i])*s
				}
				return out
			}
			gotQ := d.downHalf(t, qp, c.T*w)
			gotK := d.downHalf(t, kc, c.KV*c.cap*c.D)
			gotV := d.downHalf(t, vc, c.KV*c.cap*c.D)
			var wq, wk, wv []float64
			var gqf, gkf, gvf []float32
			for tt := range c.T {
				pos := c.pos0 + tt
				row := qkv[tt*w:]
				for h := range c.H {
					wq = append(wq, rot(row[h*c.D:], pos)...)
					gqf = append(gqf, gotQ[tt*w+h*c.D:tt*w+(h+1)*c.D]...)
				}
				for kv := range c.KV {
					slot := (kv*c.cap + pos%c.cap) * c.D
					wk = append(wk, rot(row[(c.H+kv)*c.D:], pos)...)
					gkf = append(gkf, gotK[slot:slot+c.D]...)
					for i := range c.D {
						wv = append(wv, float64(row[(c.H+c.KV+kv)*c.D+i]))
					}
					gvf = append(gvf, gotV[slot:slot+c.D]...)
				}
			}
			compare(t, "q", gqf, wq, 2e-3, 1e-3)
			compare(t, "k", gkf, wk, 2e-3, 1e-3)
			compare(t, "v", gvf, wv, 0, 0)
		})
	}
}

// attnRef is attention for query token t at position pos over the cache
// ring, in float64.
func attnRef(q []float32, kc, vc []float32, kv, cap, D, pos, window int) []float64 {
	lo := 0
	if window > 0 {
		lo = max(0, pos-window+1)
	}
	scores := make([]float64, 0, pos-lo+1)
	m := math.Inf(-1)
	for j := lo; j <= pos; j++ {
		k := kc[(kv*cap+j%cap)*D:]
		s := 0.0
		for i := range D {
			s += float64(q[i]) * float64(k[i])
		}
		s /= math.Sqrt(float64(D))
		scores = append(scores, s)
		m = math.Max(m, s)
	}
	out := make([]float64, D)
	sum := 0.0
	for n, s := range scores {
		p := math.Exp(s - m)
		sum += p
		v := vc[(kv*cap+(lo+n)%cap)*D:]
		for i := range D {
			out[i] += p * float64(v[i])
		}
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

func TestAttention(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(5, 6))
	cases := []struct{ H, KV, D, T, pos0, cap, window int }{
		{8, 2, 8, 1, 100, 40, 16},          // decode, ring wrapped, window
		{8, 2, 8, 16, 100, 40, 16},         // verify
		{32, 8, 128, 1, 700, 600, 512},     // 7B-like decode
		{32, 8, 128, 11, 700, 600, 512},    // 7B-like verify
		{32, 8, 128, 16, 3, 600, 512},      // verify at the start
		{8, 2, 64, 48, 10, 80, 32},         // prefill chunk, window inside the chunk
		{4, 4, 32, 20, 200, 300, 0},        // no window (Llama), G = 1
		{32, 8, 128, 100, 0, 128, 0},       // prefill from empty
		{6, 2, 16, 7, 33, 64, 0},           // G = 3
		{6, 2, 64, 40, 50, 128, 0},         // tensor-core prefill, G = 3, ragged tile
		{32, 8, 128, 64, 600, 700, 512},    // tensor-core prefill, window, ring
		{8, 2, 128, 512, 4000, 4700, 4096}, // a full 7B-like chunk
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			d.bind(t)
			w := (c.H + 2*c.KV) * c.D
			qkv := randHalves(rng, c.T*w, -1, 1)
			kcH := randHalves(rng, c.KV*c.cap*c.D, -1, 1)
			vcH := randHalves(rng, c.KV*c.cap*c.D, -1, 1)
			qp, kp, vp := d.upHalf(t, qkv), d.upHalf(t, kcH), d.upHalf(t, vcH)
			pp := d.upI32(t, params(c.pos0, make([]int, c.T)))
			keyRange := c.cap
			if c.window > 0 {
				keyRange = min(c.window+15, c.cap)
			}
			p := planAttention(c.T, c.H, c.KV, c.D, d.sms, keyRange)
			rows := c.T * c.H
			out := runAttention(t, d, p, qp, kp, vp, pp, c.T, c.H, c.KV, c.D, c.cap, c.window)
			if strings.HasPrefix(p.kernel, "attn_prefill_") {
				// The other variant must agree too.
				old := prefillVariant
				prefillVariant = map[string]string{"": "_sync", "_sync": ""}[old]
				ps := planAttention(c.T, c.H, c.KV, c.D, d.sms, keyRange)
				prefillVariant = old
				got := d.downHalf(t, runAttention(t, d, ps, qp, kp, vp, pp, c.T, c.H, c.KV, c.D, c.cap, c.window), rows*c.D)
				want := d.downHalf(t, out, rows*c.D)
				for i := range got {
					if math.Abs(float64(got[i]-want[i])) > 2e-3 {
						t.Fatalf("%s and %s differ at %d: %v, %v", ps.kernel, p.kernel, i, got[i], want[i])
					}
				}
			}
			got := d.downHalf(t, out, rows*c.D)
			var want []float64
			G := c.H / c.KV
			for tt := range c.T {
				for h := range c.H {
					want = append(want, attnRef(qkv[tt*w+h*c.D:], kcH, vcH, h/G, c.cap, c.D, c.pos0+tt, c.window)...)
				}
			}
			t.Logf("%s, %d splits of %d keys", p.kernel, p.splits, p.blockKeys)
			compare(t, "attention", got, want, 2e-3, 2e-3)
		})
	}
}

// runAttention launches attention and its reduce with fresh workspace and
// returns out.
func runAttention(t *testing.T, d *device, p attnPlan, qp, kp, vp, pp devPtr, T, H, KV, D, cap, window int) devPtr {
	t.Helper()
	rows := T * H
	wsAcc := d.mustAlloc(t, 4*p.splits*rows*D)
	wsML := d.mustAlloc(t, 4*p.splits*rows*2)
	out := d.mustAlloc(t, 2*rows*D)
	if err := d.launch(p.kernel, p.shape, "test", qp, kp, vp, pp, T, H, KV, cap, window,
		float32(1/math.Sqrt(float64(D))), p.blockKeys, wsAcc, wsML); err != nil {
		t.Fatal(err)
	}
	if err := d.launch("attn_reduce", launchShape{Grid: [3]uint32{uint32(rows)}, Block: [3]uint32{uint32(D)}}, "test",
		wsAcc, wsML, out, rows, p.splits, D); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAttentionBatchInvariant: a verify step of k tokens gives each token
// bit for bit what k single-token steps give it (prompt lookup's output is
// greedy decoding's only if this holds). Head dims 64 and 128; steps of 1
// to 8 tokens leave some of attn_verify2's four warps without rows, 11 and
// 16 none.
func TestAttentionBatchInvariant(t *testing.T) {
	for _, D := range []int{64, 128} {
		t.Run(fmt.Sprint("d", D), func(t *testing.T) { attentionBatchInvariant(t, D) })
	}
}

func attentionBatchInvariant(t *testing.T, D int) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(13, 14))
	const H, KV, capN, window, pos0 = 32, 8, 700, 512, 600
	w := (H + 2*KV) * D
	kp := d.upHalf(t, randHalves(rng, KV*capN*D, -1, 1))
	vp := d.upHalf(t, randHalves(rng, KV*capN*D, -1, 1))
	keyRange := window + 15
	for _, k := range []int{2, 5, 8, 11, 16} {
		qkv := randHalves(rng, k*w, -1, 1)
		qp := d.upHalf(t, qkv)
		pp := d.upI32(t, params(pos0, make([]int, k)))
		all := d.downHalf(t, runAttention(t, d, planAttention(k, H, KV, D, d.sms, keyRange), qp, kp, vp, pp, k, H, KV, D, capN, window), k*H*D)
		for i := range k {
			q1 := d.upHalf(t, qkv[i*w:(i+1)*w])
			p1 := d.upI32(t, params(pos0+i, []int{0}))
			one := d.downHalf(t, runAttention(t, d, planAttention(1, H, KV, D, d.sms, keyRange), q1, kp, vp, p1, 1, H, KV, D, capN, window), H*D)
			for j := range one {
				if math.Float32bits(one[j]) != math.Float32bits(all[i*H*D+j]) {
					t.Fatalf("verify of %d, token %d, element %d: %v alone, %v in the step", k, i, j, one[j], all[i*H*D+j])
				}
			}
		}
	}
}

// TestAttentionVerifyKernel runs attn_verify.cu's kernels for verify steps
// of 1..16 tokens against the float64 reference: ring wrapped, window edge,
// the start of the cache, no window (with key blocks of several tiles per
// warp), head dims 64 and 128, and 8 query heads per KV head (two row tiles).
func TestAttentionVerifyKernel(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(21, 22))
	defer func(v string) { verifyKernel = v }(verifyKernel)
	type shape struct{ H, KV, D, pos0, cap, window int }
	shapes := []shape{
		{32, 8, 128, 700, 600, 512}, // 7B-like, ring wrapped
		{32, 8, 128, 759, 700, 512}, // window start crosses a key block within the step
		{32, 8, 128, 3, 600, 512},   // the start of the cache
		{8, 2, 64, 300, 200, 128},   // head dim 64, ring wrapped
		{32, 4, 64, 400, 600, 256},  // G = 8: 16 tokens are two row tiles
		{8, 2, 64, 32900, 33000, 0}, // no window: 512-key blocks, several tiles per warp
		{32, 8, 128, 1000, 1200, 0}, // no window, 7B-like
	}
	for _, c := range shapes {
		w := (c.H + 2*c.KV) * c.D
		kcH := randHalves(rng, c.KV*c.cap*c.D, -1, 1)
		vcH := randHalves(rng, c.KV*c.cap*c.D, -1, 1)
		keyRange := c.cap
		if c.window > 0 {
			keyRange = min(c.window+15, c.cap)
		}
		var kp, vp devPtr
		for _, T := range []int{1, 2, 5, 11, 16} {
			if c.window == 0 && c.pos0 > 10000 && T > 5 {
				continue // the float64 reference of 33k keys is slow; 1, 2 and 5 tokens cover it
			}
			for _, k := range slices.Sorted(maps.Keys(verifyKernels)) {
				t.Run(fmt.Sprintf("%s/%+v/T%d", k, c, T), func(t *testing.T) {
					d.bind(t)
					if kp == 0 {
						kp, vp = d.upHalf(t, kcH), d.upHalf(t, vcH)
					}
					verifyKernel = k
					p := planAttention(T, c.H, c.KV, c.D, d.sms, keyRange)
					if !strings.HasPrefix(p.kernel, k+"_d") {
						t.Fatalf("plan runs %s, want %s", p.kernel, k)
					}
					qkv := randHalves(rng, T*w, -1, 1)
					qp := d.upHalf(t, qkv)
					pp := d.upI32(t, params(c.pos0, make([]int, T)))
					rows := T * c.H
					got := d.downHalf(t, runAttention(t, d, p, qp, kp, vp, pp, T, c.H, c.KV, c.D, c.cap, c.window), rows*c.D)
					var want []float64
					G := c.H / c.KV
					for tt := range T {
						for h := range c.H {
							want = append(want, attnRef(qkv[tt*w+h*c.D:], kcH, vcH, h/G, c.cap, c.D, c.pos0+tt, c.window)...)
						}
					}
					t.Logf("%s, %d splits of %d keys", p.kernel, p.splits, p.blockKeys)
					compare(t, "attention", got, want, 2e-3, 2e-3)
				})
			}
		}
	}
}

// TestAttentionVerifyBatchInvariant is TestAttentionBatchInvariant for
// attn_verify.cu's kernels, at positions where the window's first key block
// changes within the step.
func TestAttentionVerifyBatchInvariant(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(23, 24))
	defer func(v string) { verifyKernel = v }(verifyKernel)
	const H, KV, capN, window = 32, 8, 700, 512
	keyRange := window + 15
	for _, D := range []int{64, 128} {
		w := (H + 2*KV) * D
		kp := d.upHalf(t, randHalves(rng, KV*capN*D, -1, 1))
		vp := d.upHalf(t, randHalves(rng, KV*capN*D, -1, 1))
		for _, k := range slices.Sorted(maps.Keys(verifyKernels)) {
			verifyKernel = k
			for _, pos0 := range []int{600, 759} {
				for _, n := range []int{2, 5, 11, 16} {
					qkv := randHalves(rng, n*w, -1, 1)
					qp := d.upHalf(t, qkv)
					pp := d.upI32(t, params(pos0, make([]int, n)))
					all := d.downHalf(t, runAttention(t, d, planAttention(n, H, KV, D, d.sms, keyRange), qp, kp, vp, pp, n, H, KV, D, capN, window), n*H*D)
					for i := range n {
						q1 := d.upHalf(t, qkv[i*w:(i+1)*w])
						p1 := d.upI32(t, params(pos0+i, []int{0}))
						one := d.downHalf(t, runAttention(t, d, planAttention(1, H, KV, D, d.sms, keyRange), q1, kp, vp, p1, 1, H, KV, D, capN, window), H*D)
						for j := range one {
							if math.Float32bits(one[j]) != math.Float32bits(all[i*H*D+j]) {
								t.Fatalf("%s, head dim %d, verify of %d at %d, token %d, element %d: %v alone, %v in the step", k, D, n, pos0, i, j, one[j], all[i*H*D+j])
							}
						}
					}
				}
			}
		}
	}
}

func TestSiluMul(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(7, 8))
	const T, I = 3, 1000
	gu := randHalves(rng, T*2*I, -6, 6)
	gp := d.upHalf(t, gu)
	out := d.mustAlloc(t, 2*T*I)
	if err := d.launch("silu_mul", launchShape{Grid: [3]uint32{(I + 255) / 256, T}, Block: [3]uint32{256}}, "test", gp, out, I); err != nil {
		t.Fatal(err)
	}
	want := make([]float64, T*I)
	for r := range T {
		for j := range I {
			g, u := float64(gu[r*2*I+j]), float64(gu[r*2*I+I+j])
			want[r*I+j] = g / (1 + math.Exp(-g)) * u
		}
	}
	compare(t, "silu", d.downHalf(t, out, T*I), want, 1e-4, 1e-3)
}

func TestArgmax(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(9, 10))
	const rows, V = 5, 32002
	logits := make([]float32, rows*V)
	for i := range logits {
		logits[i] = rng.Float32()*20 - 10
	}
	want := make([]int, rows)
	for r := range rows {
		// A tie at two places: the lower index must win.
		a, b := rng.IntN(V), rng.IntN(V)
		if r == 0 {
			a, b = 0, V-1 // the ends
		}
		lo := min(a, b)
		logits[r*V+a], logits[r*V+b] = 11, 11
		want[r] = lo
		if a == b {
			want[r] = a
		}
	}
	lp := d.upF32(t, logits)
	out := d.mustAlloc(t, 4*rows)
	if err := d.launch("argmax_rows", launchShape{Grid: [3]uint32{rows}, Block: [3]uint32{1024}}, "test", lp, out, V); err != nil {
		t.Fatal(err)
	}
	got := d.downI32(t, out, rows)
	for r := range rows {
		if got[r] != want[r] {
			t.Errorf("row %d: argmax %d, want %d", r, got[r], want[r])
		}
	}
}

// TestArgmaxChain: a greedy step's last kernel gives argmax_rows' id (ties
// to the lowest index), moves params to the next position with that id as
// its token, and stores the id in the host ring's slot of its position.
func TestArgmaxChain(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(13, 14))
	const V, slots = 32002, 4
	for _, pos := range []int{0, 6, 4097} {
		t.Run(fmt.Sprint(pos), func(t *testing.T) {
			d.bind(t)
			logits := make([]float32, V)
			for i := range logits {
				logits[i] = rng.Float32()*20 - 10
			}
			a, b := rng.IntN(V), rng.IntN(V)
			logits[a], logits[b] = 11, 11
			want := min(a, b)
			lp := d.upF32(t, logits)
			out, ids := d.upI32(t, []int{-1}), d.upI32(t, []int{-1, -1, -1, -1})
			pp := d.upI32(t, params(pos, []int{7}))
			if err := d.launch("argmax_chain", launchShape{Grid: [3]uint32{1}, Block: [3]uint32{1024}}, "test", lp, out, V, pp, ids, slots); err != nil {
				t.Fatal(err)
			}
			if got := d.downI32(t, out, 1)[0]; got != want {
				t.Errorf("argmax %d, want %d", got, want)
			}
			wantP := params(pos+1, []int{want})
			if got := d.downI32(t, pp, len(wantP)); !slices.Equal(got, wantP) {
				t.Errorf("params %v, want %v", got, wantP)
			}
			wantIDs := []int{-1, -1, -1, -1}
			wantIDs[pos%slots] = want
			if got := d.downI32(t, ids, slots); !slices.Equal(got, wantIDs) {
				t.Errorf("host ring %v, want %v", got, wantIDs)
			}
		})
	}
}

func TestLMHead(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(11, 12))
	const V, hidden = 1003, 512
	W := randHalves(rng, V*hidden, -1, 1)
	wp := d.upHalf(t, W)
	for _, T := range []int{1, 2, 3, 8, 11, 16} {
		t.Run(fmt.Sprint(T), func(t *testing.T) {
			d.bind(t)
			x := randHalves(rng, T*hidden, -1, 1)
			xp := d.upHalf(t, x)
			out := d.mustAlloc(t, 4*T*V)
			nt := 1
			for nt < T {
				nt *= 2
			}
			if err := d.launch(fmt.Sprintf("lm_head_%d", nt), lmHeadShape(nt, V), "test", wp, xp, out, T, V, hidden); err != nil {
				t.Fatal(err)
			}
			want := make([]float64, T*V)
			for r := range T {
				for v := range V {
					s := 0.0
					for i := range hidden {
						s += float64(W[v*hidden+i]) * float64(x[r*hidden+i])
					}
					want[r*V+v] = s
				}
			}
			compare(t, "logits", d.downF32(t, out, T*V), want, 1e-3, 1e-4)
		})
	}
}

// TestLMHeadBatchInvariant: a token's logits are the same bits whichever
// lm_head instance (rows per warp, token slots) computes them.
func TestLMHeadBatchInvariant(t *testing.T) {
	d := testDevice(t)
	d.bind(t)
	rng := rand.New(rand.NewPCG(13, 14))
	const V, hidden, T = 1003, 512, 16
	wp := d.upHalf(t, randHalves(rng, V*hidden, -1, 1))
	xp := d.upHalf(t, randHalves(rng, T*hidden, -1, 1))
	run := func(nt, tokens int) []float32 {
		out := d.mustAlloc(t, 4*tokens*V)
		if err := d.launch(fmt.Sprintf("lm_head_%d", nt), lmHeadShape(nt, V), "test", wp, xp, out, tokens, V, hidden); err != nil {
			t.Fatal(err)
		}
		return d.downF32(t, out, tokens*V)
	}
	ref := run(16, T)
	for _, nt := range []int{1, 2, 4, 8} {
		got := run(nt, nt)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(ref[i]) {
				t.Fatalf("lm_head_%d: logit %d of token %d is %v, lm_head_16 gives %v", nt, i%V, i/V, got[i], ref[i])
			}
		}
	}
}
