package cuda

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/briefapp/brief/inference"
)

// Tests of add_rmsnorm_vt4 (rmsnorm.cu; forward.go: normVT4, normPlan).
// BRIEF_NORM_VT4=0 (main_test.go) turns the knob off for a whole run.

// TestNormVT4Plan: the sizes add_rmsnorm_vt4 computes add_rmsnorm's row
// of, and which steps run it: every step, with the knob.
func TestNormVT4Plan(t *testing.T) {
	for hid, want := range map[int]bool{4096: true, 2048: true, 1024: true, 512: true, 5120: false, 768: false, 8192: false, 64: false, 4100: false} {
		if got := normVT4Fits(hid); got != want {
			t.Errorf("normVT4Fits(%d) = %v, want %v", hid, got, want)
		}
	}
	for _, on := range []bool{false, true} {
		e := &Engine{cfg: inference.Config{Hidden: 4096}, normVT4: on}
		for _, T := range []int{1, inference.MaxVerify, inference.MaxVerify + 1, 512} {
			k, s := e.normPlan(T)
			want, threads := "add_rmsnorm", uint32(1024)
			if on {
				want, threads = "add_rmsnorm_vt4", 256
			}
			if k != want || s.Grid != [3]uint32{uint32(T)} || s.Block != [3]uint32{threads} {
				t.Errorf("knob %v, %d tokens: %s %+v, want %s with %d threads", on, T, k, s, want, threads)
			}
		}
	}
}

// TestAddRMSNormVT4SameBits: add_rmsnorm_vt4 leaves h and writes out bit
// for bit as add_rmsnorm does, with and without the residual add, at the
// hidden sizes it takes (the 7B's 4096 and the test models').
func TestAddRMSNormVT4SameBits(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(141, 142))
	for _, hid := range []int{4096, 2048, 1024, 512} {
		for _, T := range []int{17, 512} {
			t.Run(fmt.Sprintf("hidden %d tokens %d", hid, T), func(t *testing.T) {
				d.bind(t)
				h0 := randHalves(rng, T*hid, -3, 3)
				yp := d.upHalf(t, randHalves(rng, T*hid, -2, 2))
				wp := d.upHalf(t, randHalves(rng, hid, 0.5, 1.5))
				for _, y := range []devPtr{0, yp} {
					var hs, outs [2][]float32
					for i, k := range []string{"add_rmsnorm", "add_rmsnorm_vt4"} {
						threads := normThreads(hid)
						if i == 1 {
							threads = uint32(hid / 16)
						}
						h := d.upF32(t, h0)
						out := d.mustAlloc(t, 2*T*hid)
						if err := d.launch(k, launchShape{Grid: [3]uint32{uint32(T)}, Block: [3]uint32{threads}}, "test", h, y, wp, out, hid, float32(1e-5)); err != nil {
							t.Fatal(err)
						}
						hs[i], outs[i] = d.downF32(t, h, T*hid), d.downHalf(t, out, T*hid)
					}
					sameBits(t, fmt.Sprintf("h (residual add %v)", y != 0), hs[1], hs[0])
					sameBits(t, fmt.Sprintf("out (residual add %v)", y != 0), outs[1], outs[0])
				}
			})
		}
	}
}

// TestNormVT4Engine: prefills in chunks of 512 and 130, decodes and verify
// steps give the same logits bit for bit with add_rmsnorm_vt4 for the
// layers' norms (every step's since session 25) and without.
func TestNormVT4Engine(t *testing.T) {
	testDevice(t)
	knobSameSteps(t, 143, "add_rmsnorm_vt4", "add_rmsnorm", func(t *testing.T, m *inference.Model, opts Options, on bool) *Engine {
		return withKnob(t, m, opts, "normVT4", &normVT4, on, func(e *Engine) bool { return e.normVT4 })
	})
}
