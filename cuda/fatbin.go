package cuda

import (
	"embed"
	"fmt"
	"path"
	"sort"
)

// fatbinFS holds the kernels built by `make -C cuda` from cuda/*.cu: one
// fatbin per source (cubins for sm_80/86/89/90, compute_80 PTX for newer
// chips) and MANIFEST, the sha256 of the sources they were built from.
//
//go:embed fatbin/*.fatbin fatbin/MANIFEST
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
