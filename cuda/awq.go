package cuda

// AWQ linear layers on the device: the load-time repacking of AWQ's file
// layout into the layout the kernels in awq_gemv.cu, awq_gemm.cu and
// awq_gemm_wg.sm90a.cu read, and the launch plans that pick a kernel and
// its shape.
//
// The kernels compute y^T = W^T x^T on the tensor cores
// (mma.sync.m16n8k16, or on sm_90 wgmma.m64n64k16 for prefill; fp16
// inputs, fp32 accumulators) with the weights as the A operand: the output
// columns are the MMA's M dimension and the tokens its N dimension, so one
// decode token pads to 8, not to 16.
//
// Device layout of one packed linear (In, Out, Group; OutP = Out rounded up
// to 16, zero-padded):
//
//	weights  (OutP/16 stripes, In/64 chunks, 32 lanes, 4 words) uint32
//	scales   (In/Group, OutP) uint32 at szOffset: low half the fp16 scale s,
//	         high half the fp16 value 1024+z (AWQ zero points are 0..15)
//
// A stripe is 16 output columns; a chunk is 64 input rows. Lane l = 4g+t of
// a warp holds, for its stripe and chunk, the 16 input rows 16t..16t+15
// of output columns g and g+8: word j covers rows 16t+4j..16t+4j+3 and is
// exactly the lane's A fragment of one m16n8k16 step. Nibble i of word j is
// output column 8*(i&1) + g, input row 16t + 4j + 2*((i>>1)&1) + (i>>2), so
// that (word & 0x000f000f) | 0x64006400 is the fp16 pair 1024+q of A
// fragment register 0, and shifts by 4, 8, 12 give registers 1, 2, 3.
// The MMA's k order is thus permuted inside each chunk; the x side reads
// its 16 contiguous halves per lane in the same order, so the dot product is
// unchanged, each lane's x fragment is two 16-byte loads and each lane's
// weights for a chunk are one coalesced 16-byte load.

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/briefapp/brief/inference"
)

// awqPacked is one AWQ linear, or several that share an input concatenated
// along the output (q|k|v, gate|up), in the device layout.
type awqPacked struct {
	In, Out, Group int
	Bytes          []byte // upload as one device buffer (256-byte aligned)
}

// awqLaunch says how to run y = x W for `tokens` rows on a GPU of compute
// capability cc (e.g. 90 for sm_90).
type awqLaunch struct {
	Kernel      string // function name in the fatbins
	Grid, Block [3]uint32
	Shared      uint32 // dynamic shared memory bytes
	Workspace   int    // bytes of scratch the kernel needs (0 if none)
}

const (
	awqStripe = 16 // output columns per stripe (the MMA's M)
	awqChunk  = 64 // input rows per chunk (four MMA k-steps)
)

// awqGroups are the group sizes the kernels are instantiated for.
var awqGroups = [...]int{32, 64, 128}

// awqOutPad is out rounded up to a whole stripe.
func awqOutPad(out int) int { return (out + awqStripe - 1) / awqStripe * awqStripe }

// awqSZOffset is where the scale/zero table starts in a packed buffer; the
// kernels compute the same expression (awq_common.cuh: sz_offset).
func awqSZOffset(in, out int) int {
	w := awqOutPad(out) / awqStripe * (in / awqChunk) * 32 * 16
	return (w + 255) / 256 * 256
}

// packAWQ repacks file-layout AWQ linears (inference.AWQLinear, same In
// and Group) into the device layout, concatenating their outputs in order.
func packAWQ(ls ...inference.AWQLinear) (awqPacked, error) { return packAWQOrder(nil, ls...) }

// packAWQOrder is packAWQ with the output columns reordered: device column m
// holds column order[m] of the concatenation (scales and zeros move with
// it). nil keeps the order; otherwise order must be a permutation of
// 0..Out-1 (ropeOrder's, for the fused-RoPE mat-vec).
func packAWQOrder(order []int, ls ...inference.AWQLinear) (awqPacked, error) {
	if len(ls) == 0 {
		return awqPacked{}, fmt.Errorf("awq pack: no linears")
	}
	in, group := ls[0].In, ls[0].GroupSize
	out := 0
	for i, l := range ls {
		if err := checkAWQ(l); err != nil {
			return awqPacked{}, fmt.Errorf("awq pack: linear %d of %d: %w", i, len(ls), err)
		}
		if l.In != in || l.GroupSize != group {
			return awqPacked{}, fmt.Errorf("awq pack: linear %d has in=%d group=%d, linear 0 in=%d group=%d: fused linears must share both",
				i, l.In, l.GroupSize, in, group)
		}
		out += l.Out
	}
	if in%awqChunk != 0 {
		return awqPacked{}, fmt.Errorf("awq pack: in=%d is not a multiple of %d", in, awqChunk)
	}
	if order != nil {
		if err := checkOrder(order, out); err != nil {
			return awqPacked{}, fmt.Errorf("awq pack: column order: %w", err)
		}
	}
	outP := awqOutPad(out)
	szOff := awqSZOffset(in, out)
	buf := make([]byte, szOff+in/group*outP*4)

	// Columns of the concatenated linear; padded ones stay nil and pack as
	// q = 0, z = 0, s = 0, which dequantize to exact zeros.
	cols := make([]awqCol, outP)
	base := 0
	for li := range ls {
		for n := 0; n < ls[li].Out; n++ {
			cols[base+n] = awqCol{l: &ls[li], n: n}
		}
		base += ls[li].Out
	}
	if order != nil {
		perm := make([]awqCol, outP)
		for m, o := range order {
			perm[m] = cols[o]
		}
		cols = perm
	}
	for gi := 0; gi < in/group; gi++ {
		for m, c := range cols {
			v := uint32(0x6400) << 16
			if c.l != nil {
				pc := c.l.Out / 8
				z := nibble(c.l.QZeros[gi*pc+c.n/8], c.n%8)
				v = uint32(c.l.Scales[gi*c.l.Out+c.n]) | (0x6400|z)<<16
			}
			binary.LittleEndian.PutUint32(buf[szOff+(gi*outP+m)*4:], v)
		}
	}

	// Weights: chunk c (64 input rows) of every stripe is written only from
	// rows 64c..64c+63, so chunks are packed in parallel, each reading its
	// rows in file order (a 7B model has about 3.5e9 weights to move).
	src := make([]awqSrc, outP)
	for n, c := range cols {
		if c.l != nil {
			src[n] = awqSrc{qw: c.l.QWeight, stride: c.l.Out / 8, idx: c.n / 8, shift: uint(4 * nibbleOf[c.n%8])}
		}
	}
	chunks := in / awqChunk
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for c := w; c < chunks; c += workers {
				packChunk(buf, src, c, chunks)
			}
		}(w)
	}
	wg.Wait()
	return awqPacked{In: in, Out: out, Group: group, Bytes: buf}, nil
}

// checkOrder reports whether order is a permutation of 0..n-1.
func checkOrder(order []int, n int) error {
	if len(order) != n {
		return fmt.Errorf("%d columns, the linears have %d", len(order), n)
	}
	seen := make([]bool, n)
	for m, o := range order {
		if o < 0 || o >= n || seen[o] {
			return fmt.Errorf("device column %d takes column %d: not a permutation of 0..%d", m, o, n-1)
		}
		seen[o] = true
	}
	return nil
}

// nibbleOf is the inverse of inference.AWQOrder: output column 8c+o sits in
// nibble nibbleOf[o] of packed column c.
var nibbleOf = func() (inv [8]int) {
	for i, o := range inference.AWQOrder {
		inv[o] = i
	}
	return inv
}()

// nibble extracts output column offset o (0..7) from a file-layout word.
func nibble(w int32, o int) uint32 { return uint32(w) >> (4 * nibbleOf[o]) & 15 }

// awqCol is one output column of a (possibly concatenated) linear.
type awqCol struct {
	l *inference.AWQLinear // nil for padding
	n int                  // column within l
}

// awqSrc says where one output column's nibbles are in the file layout:
// row k's nibble is qw[k*stride+idx] >> shift & 15 (qw nil: padding).
type awqSrc struct {
	qw          []int32
	stride, idx int
	shift       uint
}

// packChunk writes chunk c of every stripe. Input row 64c+16t+4j+p of
// stripe column 8h+g goes to lane 4g+t, word j, nibble h | (p>>1)<<1 | (p&1)<<2:
// the inverse of "nibble i is column 8*(i&1)+g, row 16t+4j+2*((i>>1)&1)+(i>>2)".
// A stripe's 64 rows are 64 cache lines that the next stripes reuse.
func packChunk(buf []byte, src []awqSrc, c, chunks int) {
	var words [32 * 4]uint32 // (lane, word) of one stripe's chunk
	for s := 0; s < len(src)/awqStripe; s++ {
		words = [32 * 4]uint32{}
		for r, cs := range src[s*awqStripe : (s+1)*awqStripe] {
			if cs.qw == nil {
				continue
			}
			g, h := r%8, r/8
			for kc := 0; kc < awqChunk; kc++ {
				q := uint32(cs.qw[(c*awqChunk+kc)*cs.stride+cs.idx]) >> cs.shift & 15
				t, j, p := kc/16, kc%16/4, kc%4
				words[(4*g+t)*4+j] |= q << (4 * (h | (p>>1)<<1 | (p&1)<<2))
			}
		}
		out := buf[(s*chunks+c)*512:]
		for i, w := range words {
			binary.LittleEndian.PutUint32(out[4*i:], w)
		}
	}
}

// checkAWQ validates one file-layout linear's shapes.
func checkAWQ(l inference.AWQLinear) error {
	ok := false
	for _, g := range awqGroups {
		ok = ok || l.GroupSize == g
	}
	switch {
	case !ok:
		return fmt.Errorf("group size %d not supported (want 32, 64 or 128)", l.GroupSize)
	case l.In <= 0 || l.Out <= 0 || l.In%l.GroupSize != 0 || l.Out%8 != 0:
		return fmt.Errorf("shape in=%d out=%d group=%d: in must be a multiple of the group, out of 8", l.In, l.Out, l.GroupSize)
	case len(l.QWeight) != l.In*l.Out/8:
		return fmt.Errorf("qweight has %d words, want in*out/8 = %d", len(l.QWeight), l.In*l.Out/8)
	case len(l.QZeros) != l.In/l.GroupSize*l.Out/8:
		return fmt.Errorf("qzeros has %d words, want in/group*out/8 = %d", len(l.QZeros), l.In/l.GroupSize*l.Out/8)
	case len(l.Scales) != l.In/l.GroupSize*l.Out:
		return fmt.Errorf("scales has %d values, want in/group*out = %d", len(l.Scales), l.In/l.GroupSize*l.Out)
	}
	return nil
}

// Launch shapes. The kernels' constants live in awq_gemv.cu / awq_gemm.cu;
// these must match them (the lab checks results at every shape it times,
// and awq_test.go checks the names).
const (
	awqGemvMaxTokens = 16 // tokens <= this run the mat-vec
	// Warps per block, measured on an H200 (NOTES-awq.md, runs 5-6): group
	// 128 (kernel v5, whole groups per warp) was fastest with ~2048 warps in
	// the grid (qkv 4, o 8, gate|up 4, down 8), groups 32/64 (kernel v4) with
	// ~4096; at least 4, at most 16 for one n-tile and 8 for two (registers;
	// 8 for v5).
	awqGemvTargetWarps    = 4096
	awqGemvTargetWarps128 = 2048
	awqGemvMinWarps       = 4
	awqGemmTokens         = 64 // kGemmNTok: tokens per GEMM block
	// Large GEMM tile: 8 stripes (128 outputs) per block, 8 warps, 3 stages.
	awqGemmStripes = 8
	awqGemmThreads = 256
	awqGemmShared  = 43008 // kGemmShared
	// Small GEMM tile: 4 stripes, 4 warps, 4 stages (kGemmSmall*), for grids
	// of fewer large-tile blocks than awqGemmFill at under awqGemmBigTokens
	// tokens (NOTES-awq.md, run 7: o/down/qkv at 128 tokens 1.1-1.5x).
	awqGemmSmallStripes = 4
	awqGemmSmallThreads = 128
	awqGemmSmallShared  = 47104
	awqGemmFill         = 264 // two large-tile blocks per SM of a 132-SM H100/H200
	awqGemmBigTokens    = 384
)

// awqGemvWarps picks the warps per block (one block per stripe) for a
// mat-vec of p with nt n-tiles.
func awqGemvWarps(p *awqPacked, nt int) int {
	stripes := awqOutPad(p.Out) / awqStripe
	maxW, target, units := 16, awqGemvTargetWarps, p.In/awqChunk // v4: warps share chunks
	if nt == 2 {
		maxW = 8
	}
	if p.Group == 128 {
		maxW, target, units = 8, awqGemvTargetWarps128, p.In/128 // v5: warps share whole groups
	}
	w := awqGemvMinWarps
	for w*2 <= maxW && stripes*w*2 <= target {
		w *= 2
	}
	// Every warp needs work; small linears (tests, tiny models) get fewer warps.
	for w > 1 && w > units {
		w /= 2
	}
	return w
}

// gemvTokenInvariant reports whether the mat-vec kernels for 1..8 and
// 9..16 tokens give every token bitwise the same result on p. With group 128
// both hand each warp the same run of whole groups when they have the same
// warp count, each token is its own MMA column, and the warps' partial sums
// are added in warp order; groups 32 and 64 split 64-row chunks among up to
// 16 warps for one n-tile but 8 for two.
func gemvTokenInvariant(p *awqPacked) bool {
	return p.Group == 128 && awqGemvWarps(p, 1) == awqGemvWarps(p, 2)
}

// awqPlan says how to run y = x W for tokens rows of x. Tokens 1..16 run
// the mat-vec (weights read once for all tokens), more the tensor-core GEMM.
// tokens < 1 gives the zero awqLaunch (nothing to run). The plan is the same
// for every compute capability so far (sm_80..sm_90 run the same kernels;
// only an H200 has been measured).
func awqPlan(p *awqPacked, tokens, cc int) awqLaunch {
	if p == nil || tokens < 1 || p.In < awqChunk {
		return awqLaunch{}
	}
	stripes := awqOutPad(p.Out) / awqStripe
	if tokens <= awqGemvMaxTokens {
		nt := 1
		if tokens > 8 {
			nt = 2
		}
		warps := awqGemvWarps(p, nt)
		return awqLaunch{
			Kernel: fmt.Sprintf("awq_gemv_g%d_n%d", p.Group, nt),
			Grid:   [3]uint32{uint32(stripes), 1, 1},
			Block:  [3]uint32{uint32(32 * warps), 1, 1},
			Shared: uint32(warps * nt * 4 * 32 * 4), // gemv_shared: the warps' partial sums
		}
	}
	tb := (tokens + awqGemmTokens - 1) / awqGemmTokens
	big := (stripes + awqGemmStripes - 1) / awqGemmStripes
	if tokens < awqGemmBigTokens && big*tb < awqGemmFill {
		return awqLaunch{
			Kernel: fmt.Sprintf("awq_gemm_small_g%d", p.Group),
			Grid:   [3]uint32{uint32((stripes + awqGemmSmallStripes - 1) / awqGemmSmallStripes), uint32(tb), 1},
			Block:  [3]uint32{awqGemmSmallThreads, 1, 1},
			Shared: awqGemmSmallShared,
		}
	}
	return awqLaunch{
		Kernel: fmt.Sprintf("awq_gemm_g%d", p.Group),
		Grid:   [3]uint32{uint32(big), uint32(tb), 1},
		Block:  [3]uint32{awqGemmThreads, 1, 1},
		Shared: awqGemmShared,
	}
}

// Fused RoPE (NOTES-rope-fused.md). With ropeFused on, an engine whose
// q|k|v projection qualifies (ropeFusable) packs it in ropeOrder and runs
// decode and verify steps through awq_gemv_g128_n<NT>_rope, which rotates q
// and k and appends k and v to the cache in its epilogue, instead of the
// mat-vec and rope_append; longer steps (prefill) run the GEMM on the same
// permuted weights and rope_append_perm. Every GPU test passes with it on
// and off (H200); it saves 0.06-0.09 ms a step (BenchmarkRopeFused: 2.340
// against 2.397 ms for 1 token, 2.888 against 2.981 for 11).
var ropeFused = true

// ropeFusable reports whether a q|k|v projection of heads, kvHeads heads
// of headDim with this group size can run the fused-RoPE mat-vec: group
// 128 (the kernel extends gemv_g128) and a head of 64 or 128 (a head is
// whole stripes and its half whole 8-column runs).
func ropeFusable(group, heads, kvHeads, headDim int) bool {
	return group == 128 && (headDim == 64 || headDim == 128) && heads > 0 && kvHeads > 0
}

// ropeOrder is the fused-RoPE column order of a q|k|v projection: order[m]
// is the column of the concatenation q|k|v that device column m holds. In
// each q and k head (D = headDim, half D/2), the 16 columns of stripe j of
// the head are 8j..8j+7 then their rotate-half partners half+8j..half+8j+7,
// so that device row r < 8 of the stripe holds column 8j+r and row r+8 its
// partner: one lane's accumulators for rows g and g+8 are a RoPE pair. The v
// columns keep their order.
func ropeOrder(heads, kvHeads, headDim int) []int {
	D, half := headDim, headDim/2
	order := make([]int, (heads+2*kvHeads)*D)
	for m := range order {
		order[m] = m
	}
	for m := 0; m < (heads+kvHeads)*D; m++ {
		head, r := m/D, m%D
		j, row := r/awqStripe, r%awqStripe
		c := 8*j + row%8
		if row >= 8 {
			c += half
		}
		order[m] = head*D + c
	}
	return order
}

// invertOrder is the inverse permutation: inv[order[m]] = m.
func invertOrder(order []int) []int {
	inv := make([]int, len(order))
	for m, o := range order {
		inv[o] = m
	}
	return inv
}

// awqRopePlan is the launch of the fused-RoPE mat-vec for tokens (1..16)
// rows on a q|k|v projection packed in ropeOrder: the group-128 mat-vec's
// shape (awqPlan) under the kernel's _rope name. The zero awqLaunch where it
// does not apply (another group, more tokens than the mat-vec takes).
func awqRopePlan(p *awqPacked, tokens, cc int) awqLaunch {
	if p == nil || p.Group != 128 || tokens > awqGemvMaxTokens {
		return awqLaunch{}
	}
	l := awqPlan(p, tokens, cc)
	if l.Kernel == "" {
		return l
	}
	l.Kernel += "_rope"
	return l
}

// Fused SiLU (NOTES-silu-fused.md). With siluFused on, an engine whose
// gate|up projection qualifies (siluFusable) packs it in siluOrder and runs
// decode and verify steps through awq_gemv_g128_n<NT>_silu, which writes
// silu(gate) * up to the MLP activations in its epilogue, instead of the
// mat-vec and silu_mul; longer steps (prefill) run the GEMM on the same
// permuted weights and silu_mul_perm. The same logits bit for bit; a
// replayed step at the reference context, off -> on, 8 tokens 2.389 ->
// 2.284 ms, 16 tokens 3.043 -> 2.919, 1 token within noise (H200,
// BenchmarkSiluFused, session 5). BRIEF_SILU_FUSED=0 turns it off for a
// test run.
var siluFused = true

// siluFusable reports whether a gate|up projection of two inter-column
// linears with this group size can run the fused-SiLU mat-vec: group 128
// (the kernel extends gemv_g128) and inter a multiple of 8, so that the
// 2*inter columns are whole stripes of 8 gate and 8 up columns.
func siluFusable(group, inter int) bool {
	return group == 128 && inter > 0 && inter%8 == 0
}

// siluOrder is the fused-SiLU column order of a gate|up projection (gate
// columns 0..inter-1, up columns inter..2*inter-1): order[m] is the column
// device column m holds. Stripe s holds gate columns 8s..8s+7 in rows 0..7
// and up columns 8s..8s+7 in rows 8..15, so that one lane's accumulators
// for rows g and g+8 are the gate and up of activation 8s+g. inter must be
// a multiple of 8 (siluFusable).
func siluOrder(inter int) []int {
	order := make([]int, 2*inter)
	for m := range order {
		s, r := m/awqStripe, m%awqStripe
		order[m] = 8*s + r%8
		if r >= 8 {
			order[m] += inter
		}
	}
	return order
}

// awqSiluPlan is the launch of the fused-SiLU mat-vec for tokens (1..16)
// rows on a gate|up projection packed in siluOrder: the group-128 mat-vec's
// shape (awqPlan) under the kernel's _silu name. The zero awqLaunch where it
// does not apply (another group, out not 2x a multiple of 8, more tokens
// than the mat-vec takes).
func awqSiluPlan(p *awqPacked, tokens, cc int) awqLaunch {
	if p == nil || p.Group != 128 || p.Out%awqStripe != 0 || tokens > awqGemvMaxTokens {
		return awqLaunch{}
	}
	l := awqPlan(p, tokens, cc)
	if l.Kernel == "" {
		return l
	}
	l.Kernel += "_silu"
	return l
}

// Fused GEMM epilogues (NOTES-gemm-epilogue.md). With gemmEpilogue on, an
// engine that packs gate|up in siluOrder (siluFused) or q|k|v in ropeOrder
// (ropeFused) also runs steps of more than 16 tokens (prefill chunks)
// through awq_gemm[_small]_g128_silu / _rope, whose epilogue does what
// silu_mul_perm / rope_append_perm would do after the plain GEMM, instead of
// launching those kernels. The same logits bit for bit; the 6,435-token
// prefill 424.0 -> 410.8 ms and 423.5 -> 409.3 ms, off -> on (H200,
// BenchmarkGemmEpilogue, session 5). BRIEF_GEMM_EPILOGUE=0 turns it off for
// a test run (main_test.go).
var gemmEpilogue = true

// GEMM epilogue kinds, the suffix of the fused GEMM kernels' names.
const (
	epiSilu = "_silu" // gate|up in siluOrder -> silu(gate) * up
	epiRope = "_rope" // q|k|v in ropeOrder -> RoPE and the KV append
)

// awqGemmEpiPlan is the launch of the fused-epilogue GEMM (epi: epiSilu or
// epiRope) for tokens (> 16) rows of a group-128 projection packed in the
// matching order: awqPlan's GEMM shape (large or small tile) under the
// kernel's name plus epi. The zero awqLaunch where it does not apply
// (another group, a step the mat-vec takes, for epiSilu an out that is not
// whole stripes, an unknown epi).
func awqGemmEpiPlan(p *awqPacked, tokens, cc int, epi string) awqLaunch {
	if p == nil || p.Group != 128 || tokens <= awqGemvMaxTokens {
		return awqLaunch{}
	}
	switch {
	case epi == epiSilu && p.Out%awqStripe == 0:
	case epi == epiRope:
	default:
		return awqLaunch{}
	}
	l := awqPlan(p, tokens, cc)
	if l.Kernel == "" {
		return l
	}
	l.Kernel += epi
	return l
}

// gemmWg12: with gemmWgmma, a q|k|v projection's fused-RoPE GEMM runs in
// blocks of 12 stripes (awq_gemm_wg12_g128_rope, three warpgroups) where
// they round to fewer stripes a multiprocessor than blocks of 16 (the 7B's
// 384 stripes at 512 tokens: 256 blocks, two of 12 an SM of 132, against
// 192 blocks, two of 16). Every stripe is computed as in blocks of 16, so
// the bits are the same (TestWg12SameBits). BRIEF_GEMM_WG12=0 turns it off
// for a test run.
var gemmWg12 = true

// awqWg12Plan moves l, the wgmma fused-RoPE GEMM for tokens rows of p, to
// blocks of 12 stripes where the last round of blocks over sms
// multiprocessors holds fewer stripes an SM; anything else is returned as
// it is.
func awqWg12Plan(l awqLaunch, p *awqPacked, tokens, sms int) awqLaunch {
	if l.Kernel != "awq_gemm_wg_g128_rope" || p == nil || sms <= 0 {
		return l
	}
	stripes := awqOutPad(p.Out) / awqStripe
	tiles := (tokens + awqWgTokens - 1) / awqWgTokens
	rounds := func(per int) int { // stripes an SM runs, in rounds of one block an SM
		blocks := (stripes + per - 1) / per * tiles
		return (blocks + sms - 1) / sms * per
	}
	if rounds(awqWg12Stripes) >= rounds(awqWgStripes) {
		return l
	}
	l.Kernel = "awq_gemm_wg12_g128_rope"
	l.Grid[0] = uint32((stripes + awqWg12Stripes - 1) / awqWg12Stripes)
	l.Block[0] = awqWg12Stripes * 32
	return l
}

const awqWg12Stripes = 12

// Prefill GEMMs on Hopper's warpgroup MMA (awq_gemm_wg.sm90a.cu, shipped as
// PTX the driver compiles). With gemmWgmma on, an engine on an sm_90 GPU
// whose driver compiled those kernels runs every group-128 step of more
// than 16 tokens through them instead of the mma.sync GEMM, epilogues
// included: the same bits, the 6,435-token prefill 408-412 -> 331-336 ms
// on an H200, and 313 ms since the kernel meets at a barrier every second
// chunk (NOTES-gemm-wgmma.md, runs 36 and 44). BRIEF_GEMM_WGMMA=0 turns it
// off for a test run (main_test.go).
var gemmWgmma = true

// The wgmma GEMM's tile (awq_gemm_wg.sm90a.cu: kWgTokens, kWgWarps,
// kWgThreads, kWgShared): 64 tokens by 16 stripes, 512 threads.
const (
	awqWgTokens  = 64
	awqWgStripes = 16
	awqWgThreads = 512
	awqWgShared  = 5*awqWgTokens*128 + 1024
)

// awqWgmmaPlan moves base, a group-128 GEMM launch (awqPlan or
// awqGemmEpiPlan, tokens > 16), to the wgmma kernel with the same epilogue
// and arguments: grid (block columns of 16 stripes, 64-token tiles).
// Anything else (a mat-vec, another group) is returned as it is.
func awqWgmmaPlan(base awqLaunch, p *awqPacked, tokens int) awqLaunch {
	if base.Kernel == "" || p == nil || p.Group != 128 || tokens <= awqGemvMaxTokens || p.In%128 != 0 {
		return base
	}
	i := strings.Index(base.Kernel, "_g128")
	if !strings.HasPrefix(base.Kernel, "awq_gemm") || i < 0 {
		return base
	}
	stripes := awqOutPad(p.Out) / awqStripe
	return awqLaunch{
		Kernel: "awq_gemm_wg_g128" + base.Kernel[i+len("_g128"):],
		Grid:   [3]uint32{uint32((stripes + awqWgStripes - 1) / awqWgStripes), uint32((tokens + awqWgTokens - 1) / awqWgTokens), 1},
		Block:  [3]uint32{awqWgThreads, 1, 1},
		Shared: awqWgShared,
	}
}

// gemmXP: prefill GEMMs run awq_gemm_xp's kernels (awq_gemm_xp.sm90a.cu:
// one warpgroup stages x, the others only load and dequantize their
// weights and issue m64nNTk16 wgmmas) in place of awq_gemm_wg's, where the
// driver compiled them. The same bits (TestGemmXpMatches, TestGemmXpEngine).
// It took a 512-token chunk's four GEMMs from 18.9 to 14.9 ms and the
// prefill of the 6,435-token prompt from 296 to 244 ms (H100, run 114;
// NOTES-gemm-wgmma.md). BRIEF_GEMM_XP=0 turns it off for a test run
// (main_test.go).
var gemmXP = true

// xpPerm: in steps of more than 16 tokens the GEMM inputs that the
// x-producer GEMMs read (the layers' norms' outputs and the fused SiLU
// epilogue's activations) are stored with each 64-element chunk's pairs in
// the order the kernel stages them (xp_perm_pair, common.cuh), and its
// _px kernels copy x by cp.async instead of permuting it through the
// producer's registers. The same values in other places, so the same bits
// (TestXpPermEngine). o_proj's input, the attention's output, stays in
// order. The register trip was 8 of the 20 ms the prefill's x loads cost
// at the power limit (probe, run 247); without it the prefill took 207.0
// ms against 213.1 in one call on an H200 (run 248). BRIEF_XP_PERM=0
// turns it off for a test run (main_test.go).
var xpPerm = true

// awqXpStages is the kernels' x stages (awq_gemm_xp.sm90a.cu: kXpStages).
const awqXpStages = 4

// An awqXpTile is one of the tiles awq_gemm_xp is built for: cw consumer
// warpgroups (4 cw stripes) by nt tokens. cost is the time a block takes
// per stripe and token, relative to the first tile's (H100, run 113, 512
// tokens: three warpgroups by 128 tokens streamed 1,536 stripe-tokens a
// block in the time two by 128 took for about 1.2 x 1,024, and three by 96
// for 1.1-1.2 x 1,152: fewer warps hide less latency, fewer tokens give a
// dequantized weight less work).
type awqXpTile struct {
	cw, nt int
	cost   float64
}

// awqXpTiles are the tiles the kernels are built for, the preferred one
// first.
var awqXpTiles = []awqXpTile{{3, 128, 1}, {2, 128, 1.2}, {3, 96, 1.2}}

// kernel is the tile's kernel with the epilogue suffix epi.
func (t awqXpTile) kernel(epi string) string {
	return fmt.Sprintf("awq_gemm_xp_c%dn%d_g128%s", t.cw, t.nt, epi)
}

// launch is the tile's launch of kernel for tokens rows of p: grid (token
// tiles, blocks of 4 cw stripes), the token tiles of one column block next
// to each other, so that its weights come from L2 after the first.
func (t awqXpTile) launch(kernel string, p *awqPacked, tokens int) awqLaunch {
	stripes := awqOutPad(p.Out) / awqStripe
	return awqLaunch{
		Kernel: kernel,
		Grid:   [3]uint32{uint32((tokens + t.nt - 1) / t.nt), uint32((stripes + 4*t.cw - 1) / (4 * t.cw)), 1},
		Block:  [3]uint32{uint32((t.cw + 1) * 128), 1, 1},
		Shared: uint32(awqXpStages*t.nt*128 + 4*t.cw*t.nt*32 + 1024), // xp_shared
	}
}

// time is what a launch of the tile takes on sms multiprocessors, in
// units of the first tile's block time per stripe-token: one block fits a
// multiprocessor (its registers), so the blocks run in ceil(blocks/sms)
// rounds.
func (t awqXpTile) time(p *awqPacked, tokens, sms int) float64 {
	l := t.launch("", p, tokens)
	blocks := int(l.Grid[0] * l.Grid[1])
	return float64((blocks+sms-1)/sms) * float64(4*t.cw*t.nt) * t.cost
}

// awqXpPlan moves base as awqWgmmaPlan does, to the x-producer kernel with
// the same epilogue and the tile that takes least time on a GPU of sms
// multiprocessors (the 7B at a 512-token chunk on 132: q|k|v and gate|up
// in blocks of 12 stripes by 128 tokens, o_proj and down_proj, whose 256
// stripes make 88 such blocks, in 128 blocks of 8 by 128).
func awqXpPlan(base awqLaunch, p *awqPacked, tokens, sms int) awqLaunch {
	l := awqWgmmaPlan(base, p, tokens)
	if l == base || sms <= 0 {
		return base
	}
	best := awqXpTiles[0]
	for _, t := range awqXpTiles[1:] {
		if t.time(p, tokens, sms) < best.time(p, tokens, sms) {
			best = t
		}
	}
	return best.launch(best.kernel(strings.TrimPrefix(l.Kernel, "awq_gemm_wg_g128")), p, tokens)
}
