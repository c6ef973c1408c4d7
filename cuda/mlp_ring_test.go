package cuda

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// mlpBench runs the MLP of every layer of an engine (the fused-SiLU gate|up
// mat-vec, then down, one token, each layer's output the next one's input,
// no norms) two ways: as the chain of kernels the engine launches, and as
// one persistent kernel (awq_mlp_ring.cu). Its methods run on a
// thread where the engine's device is current.
type mlpBench struct {
	e                    *Engine
	wts, xs, acts, count devPtr
	layers               int
}

// awq_mlp_ring's shape: warps a block, groups in flight a warp, blocks a
// multiprocessor.
const ringWarps, ringDepth, ringBlocks = 8, 4, 2

func newMLPBench(e *Engine, seed uint64) (*mlpBench, error) {
	c := &e.cfg
	if !e.siluFused || c.Quant.GroupSize != 128 {
		return nil, fmt.Errorf("awq_mlp_ring needs group 128 and the fused-SiLU packing (group %d, fused %v)", c.Quant.GroupSize, e.siluFused)
	}
	m := &mlpBench{e: e, layers: len(e.layers)}
	var err error
	alloc := func(p *devPtr, n int, what string) {
		if err == nil {
			*p, err = e.d.alloc(int64(n), what)
		}
	}
	alloc(&m.wts, 16*m.layers, "mlp weights' addresses")
	alloc(&m.xs, 2*(m.layers+1)*c.Hidden, "mlp inputs")
	alloc(&m.acts, 2*m.layers*c.Intermediate, "mlp activations")
	alloc(&m.count, 8, "mlp barrier")
	if err != nil {
		return nil, errors.Join(err, m.close())
	}
	wts := make([]byte, 16*m.layers)
	for i := range e.layers {
		binary.LittleEndian.PutUint64(wts[16*i:], uint64(e.layers[i].gu.ptr))
		binary.LittleEndian.PutUint64(wts[16*i+8:], uint64(e.layers[i].down.ptr))
	}
	// x_0: fp16 values of about the size a normed row has.
	rng := rand.New(rand.NewPCG(seed, 1))
	x0 := make([]byte, 2*c.Hidden)
	for i := range c.Hidden {
		binary.LittleEndian.PutUint16(x0[2*i:], f2h(float32(rng.NormFloat64())))
	}
	// The barrier's count starts at zero, a multiple of the grid (common.cuh).
	if err := errors.Join(e.d.upload(m.wts, wts), e.d.upload(m.xs, x0), e.d.memset(m.count, 0, 8)); err != nil {
		return nil, errors.Join(err, m.close())
	}
	return m, nil
}

func (m *mlpBench) close() error {
	var err error
	for _, p := range []devPtr{m.wts, m.xs, m.acts, m.count} {
		err = errors.Join(err, m.e.d.free(p))
	}
	return err
}

// clear zeroes every output, so that a run must write them all.
func (m *mlpBench) clear() error {
	c := &m.e.cfg
	return errors.Join(m.e.d.memset(m.xs.at(2*c.Hidden), 0, int64(2*m.layers*c.Hidden)),
		m.e.d.memset(m.acts, 0, int64(2*m.layers*c.Intermediate)))
}

// outputs are every layer's output and activations, after the stream's work.
func (m *mlpBench) outputs() ([]byte, error) {
	c := &m.e.cfg
	nx := 2 * (m.layers + 1) * c.Hidden
	out := make([]byte, nx+2*m.layers*c.Intermediate)
	err := m.e.d.download(out[:nx], m.xs)
	return out, errors.Join(err, m.e.d.download(out[nx:], m.acts))
}

// chain queues the layers' kernels, launched as the engine launches them,
// with warpsGU and warpsDown warps a stripe (the engine's plan, or the ring
// kernel's for the same sums).
func (m *mlpBench) chain(warpsGU, warpsDown int) error {
	c, d := &m.e.cfg, m.e.d
	H, I := c.Hidden, c.Intermediate
	shape := func(out, warps int) launchShape {
		return launchShape{Grid: [3]uint32{uint32(awqOutPad(out) / awqStripe)}, Block: [3]uint32{uint32(32 * warps)},
			Shared: uint32(warps * 4 * 32 * 4)}
	}
	for li := range m.layers {
		x, act, y := m.xs.at(2*li*H), m.acts.at(2*li*I), m.xs.at(2*(li+1)*H)
		if err := d.launch("awq_gemv_g128_n1_silu", shape(2*I, warpsGU), "mlp gate|up", m.e.layers[li].gu.ptr, x, act, devPtr(0), 1, H, 2*I); err != nil {
			return err
		}
		if err := d.launch("awq_gemv_g128_n1", shape(H, warpsDown), "mlp down", m.e.layers[li].down.ptr, act, y, devPtr(0), 1, I, H); err != nil {
			return err
		}
	}
	return nil
}

// ringShared is awq_mlp_ring's dynamic shared memory (awq_mlp_ring.cu:
// ring_shared).
func (m *mlpBench) ringShared() int {
	const slot, redSlots = 2*32*16 + 2*32*4, 2
	inMax := max(m.e.cfg.Hidden, m.e.cfg.Intermediate)
	return ringWarps*(ringDepth*slot+(inMax/ringWarps+128)*2) + redSlots*ringWarps*4*32*4 + 2*redSlots*4
}

// ring queues awq_mlp_ring.
func (m *mlpBench) ring() error {
	c, d := &m.e.cfg, m.e.d
	return d.launch("awq_mlp_ring", launchShape{Grid: [3]uint32{uint32(ringBlocks * d.sms)}, Block: [3]uint32{32 * ringWarps},
		Shared: uint32(m.ringShared()), Cooperative: true}, "mlp ring",
		m.wts, m.xs, m.acts, m.layers, c.Hidden, c.Intermediate, m.count)
}

// checkRing compares every output bit of awq_mlp_ring, over two launches
// (the barrier's count carries on from one to the next), with the chain of
// 8-warp mat-vecs'.
func (m *mlpBench) checkRing() error {
	if err := errors.Join(m.clear(), m.chain(ringWarps, ringWarps)); err != nil {
		return err
	}
	want, err := m.outputs()
	if err != nil {
		return err
	}
	c := &m.e.cfg
	if first := want[2*c.Hidden : 4*c.Hidden]; bytes.Count(first, []byte{0}) == len(first) {
		return errors.New("the chain wrote zeros into layer 0's output")
	}
	for launch := range 2 {
		if err := errors.Join(m.clear(), m.ring()); err != nil {
			return err
		}
		got, err := m.outputs()
		if err != nil {
			return err
		}
		if i := firstDiff(got, want); i >= 0 {
			return fmt.Errorf("awq_mlp_ring, launch %d: byte %d of %d differs from the chain's", launch, i, len(got))
		}
	}
	return nil
}

// TestMLPRingSameBits: awq_mlp_ring writes every activation and output bit
// of the chain of mat-vecs with its warps, on a model with fewer down
// stripes than the grid has blocks, and where one warp in eight has no
// group of gate|up's input.
func TestMLPRingSameBits(t *testing.T) {
	testDevice(t)
	m := synthModel(t, "small", 11)
	e := testEngine(t, m, Options{})
	defer e.Close()
	err := e.w.do(func() error {
		mb, err := newMLPBench(e, 3)
		if err != nil {
			return err
		}
		return errors.Join(mb.checkRing(), mb.close())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkMLPRing times the MLPs of every layer of the synthetic 7B
// ($BRIEF_SYNTH_DIR), one token, 64 mat-vecs reading 2.99 GB: as the
// engine's chain of kernels (its warps a stripe), as the chain with 8 warps
// a stripe (awq_mlp_ring's sums), and as awq_mlp_ring, after checking its
// bits against the 8-warp chain's. H100, session 9: 1.199, 1.329 and 1.179
// ms.
func BenchmarkMLPRing(b *testing.B) {
	m := benchModel(b)
	e := benchEngine(b, m, benchPrompt(m)[:16])
	defer e.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := e.d.makeCurrent(); err != nil {
		b.Fatal(err)
	}
	mb, err := newMLPBench(e, 3)
	if err != nil {
		b.Fatal(err)
	}
	defer mb.close()
	if err := mb.checkRing(); err != nil {
		b.Fatal(err)
	}
	var bytesRead int64
	for i := range e.layers {
		bytesRead += packedBytes(&e.layers[i].gu.p) + packedBytes(&e.layers[i].down.p)
	}
	sb := &streamBench{d: e.d}
	chain := func(gu, down int) func() (float64, error) {
		return func() (float64, error) {
			g, err := e.d.captureGraph("mlp", func() error { return mb.chain(gu, down) })
			if err != nil {
				return 0, err
			}
			defer g.destroy()
			return sb.time(func() error { return e.d.launchGraph(g, "mlp") })
		}
	}
	warpsGU, warpsDown := awqGemvWarps(&e.layers[0].gu.p, 1), awqGemvWarps(&e.layers[0].down.p, 1)
	cases := []struct {
		name string
		time func() (float64, error)
	}{
		{fmt.Sprintf("chain/engine_warps_%d_%d", warpsGU, warpsDown), chain(warpsGU, warpsDown)},
		{"chain/8warps", chain(ringWarps, ringWarps)},
		// One launch a run: cooperative launches stay out of graphs.
		{"ring", func() (float64, error) { return sb.time(mb.ring) }},
	}
	for _, tc := range cases {
		measureSub(b, e.d, tc.name, tc.time, func(b *testing.B, ms float64) {
			b.ReportMetric(ms, "ms/run")
			b.ReportMetric(float64(bytesRead)/ms/1e6, "GB/s")
		})
	}
}
