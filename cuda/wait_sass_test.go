package cuda

import (
	"os/exec"
	"regexp"
	"testing"
)

// ptxas may move a read-only global load above griddepcontrol.wait
// (ACQBULK in SASS), where it can read what the kernel before is still
// writing; it did so for attn_reduce's early loads of the partials
// (common.cuh: ld_cg_f32). Kernels that read nothing constant get no
// global load before their wait, in the committed sm_90 cubins. (Kernels
// that read weights or the host-staged params early are held to their
// sources' rules instead: TestKernelsWaitForPredecessor.)
var noEarlyLoads = map[string][]string{
	"attention.fatbin": {"attn_reduce"},
	"argmax.fatbin":    {"argmax_rows", "argmax_chain"},
	"embed.fatbin":     {"embed_gather"},
	"rope.fatbin":      {"rope_append", "rope_append_perm"},
	"silu.fatbin":      {"silu_mul", "silu_mul_perm"},
}

func TestNoLoadBeforeWaitSASS(t *testing.T) {
	tool, err := exec.LookPath("cuobjdump")
	if err != nil {
		t.Skip("cuobjdump (CUDA toolkit) not installed")
	}
	load := regexp.MustCompile(`^(@!?P\d+ )?(LDG|LD\.|LD |LDGSTS)`)
	for file, kernels := range noEarlyLoads {
		funcs := sassFunctions(t, tool, file, "sm_90")
		for _, k := range kernels {
			code, ok := funcs[k]
			if !ok {
				t.Fatalf("%s: no function %s", file, k)
			}
			wait := -1
			for i, l := range code {
				if l == "ACQBULK ;" {
					wait = i
					break
				}
			}
			if wait < 0 {
				t.Fatalf("%s %s: no ACQBULK (griddepcontrol.wait)", file, k)
			}
			for _, l := range code[:wait] {
				if load.MatchString(l) {
					t.Errorf("%s %s: %q before the wait", file, k, l)
				}
			}
		}
	}
}
