package cuda

import (
	"embed"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
)

// fatbinFS holds the kernels built by `make -C cuda` from cuda/*.cu: one
// fatbin per source (cubins for sm_80/86/89/90, compute_80 PTX for newer
// chips), one PTX module per cuda/*.smNNa.cu (PTX text for that one target,
// compiled by the driver when first needed; see ptxImages), and MANIFEST, the sha256
// of the sources they were built from.
//
//go:embed fatbin/*.fatbin fatbin/*.ptx fatbin/MANIFEST
var fatbinFS embed.FS

type fatbinImage struct {
	name string
	data []byte
}

// fatbins returns every embedded fatbin in name order.
func fatbins() ([]fatbinImage, error) {
	entries, err := fatbinFS.ReadDir("fatbin")
	if err != nil {
		return nil, fmt.Errorf("embedded kernels: %w", err)
	}
	var out []fatbinImage
	for _, e := range entries {
		if path.Ext(e.Name()) != ".fatbin" {
			continue
		}
		b, err := fatbinFS.ReadFile("fatbin/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("embedded kernels: %w", err)
		}
		out = append(out, fatbinImage{name: e.Name(), data: b})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	if len(out) == 0 {
		return nil, fmt.Errorf("no kernels embedded: run make -C cuda")
	}
	return out, nil
}

// ptxTarget is the compute capability a PTX module fatbin/<name>.smNNa.ptx
// is built for (NN), or 0 for a name without that suffix. The "a" says
// arch-specific PTX (.target sm_NNa: wgmma on sm_90a), which runs on that
// chip only.
func ptxTarget(name string) int {
	base, ok := strings.CutSuffix(name, ".ptx")
	if !ok {
		return 0
	}
	i := strings.LastIndex(base, ".sm")
	if i < 0 {
		return 0
	}
	num, ok := strings.CutSuffix(base[i+3:], "a")
	if !ok {
		return 0
	}
	cc, err := strconv.Atoi(num)
	if err != nil || cc <= 0 {
		return 0
	}
	return cc
}

// ptxImages returns the embedded PTX modules a device of compute capability
// cc loads, in name order, each NUL-terminated as cuModuleLoadData wants PTX
// text. A module is for its own target only: its PTX says .target sm_NNa and
// uses that chip's instructions, which an older chip lacks, and a newer one
// would need its own build (and tests) first.
func ptxImages(cc int) ([]fatbinImage, error) {
	entries, err := fatbinFS.ReadDir("fatbin")
	if err != nil {
		return nil, fmt.Errorf("embedded kernels: %w", err)
	}
	var out []fatbinImage
	for _, e := range entries {
		if path.Ext(e.Name()) != ".ptx" || ptxTarget(e.Name()) != cc {
			continue
		}
		b, err := fatbinFS.ReadFile("fatbin/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("embedded kernels: %w", err)
		}
		out = append(out, fatbinImage{name: e.Name(), data: append(b[:len(b):len(b)], 0)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}
