package cuda

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestFatbinsUpToDate fails when a kernel source changed after the embedded
// fatbins were built, or a source has no fatbin: the fix is make -C cuda.
func TestFatbinsUpToDate(t *testing.T) {
	want := map[string]string{}
	var names []string
	for _, pat := range []string{"*.cu", "*.cuh", "Makefile"} {
		m, err := fs.Glob(kernelSources, pat)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, m...)
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := kernelSources.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		want[n] = hex.EncodeToString(sum[:])
	}
	mf, err := fatbinFS.ReadFile("fatbin/MANIFEST")
	if err != nil {
		t.Fatalf("no fatbin/MANIFEST embedded: run make -C cuda (%v)", err)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(mf)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			t.Fatalf("fatbin/MANIFEST: bad line %q: run make -C cuda", sc.Text())
		}
		got[f[1]] = f[0]
	}
	for _, n := range names {
		switch g, ok := got[n]; {
		case !ok:
			t.Errorf("%s is not in fatbin/MANIFEST: the fatbins predate it; run make -C cuda", n)
		case g != want[n]:
			t.Errorf("%s changed since the fatbins were built: run make -C cuda", n)
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("fatbin/MANIFEST lists %s, which no longer exists: run make -C cuda", n)
		}
	}
	for _, n := range names {
		if filepath.Ext(n) != ".cu" {
			continue
		}
		fb := "fatbin/" + strings.TrimSuffix(n, ".cu") + ".fatbin"
		if ptxTarget(strings.TrimSuffix(n, ".cu")+".ptx") != 0 {
			fb = "fatbin/" + strings.TrimSuffix(n, ".cu") + ".ptx" // PTX only (Makefile)
		}
		if _, err := fatbinFS.ReadFile(fb); err != nil {
			t.Errorf("%s has no %s embedded: run make -C cuda", n, fb)
		}
	}
	imgs, err := fatbins()
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		if _, ok := want[strings.TrimSuffix(img.name, ".fatbin")+".cu"]; !ok {
			t.Errorf("fatbin/%s has no source: remove it and run make -C cuda", img.name)
		}
	}
	ptx, err := fatbinFS.ReadDir("fatbin")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ptx {
		if filepath.Ext(e.Name()) != ".ptx" {
			continue
		}
		if _, ok := want[strings.TrimSuffix(e.Name(), ".ptx")+".cu"]; !ok {
			t.Errorf("fatbin/%s has no source: remove it and run make -C cuda", e.Name())
		}
	}
}

// TestPTXModules checks the embedded PTX modules (cuda/*.smNNa.cu built to
// PTX text for the driver to compile): each says PTX ISA 8.0 and its own
// target, and is loaded, NUL-terminated, on that chip only.
func TestPTXModules(t *testing.T) {
	entries, err := fatbinFS.ReadDir("fatbin")
	if err != nil {
		t.Fatal(err)
	}
	byTarget := map[int][]string{}
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".ptx" {
			continue
		}
		cc := ptxTarget(e.Name())
		if cc == 0 {
			t.Errorf("fatbin/%s: a PTX module's name must end in .smNNa.ptx", e.Name())
			continue
		}
		byTarget[cc] = append(byTarget[cc], e.Name())
		b, err := fatbinFS.ReadFile("fatbin/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		// The directives, in order, after nvcc's comment header.
		var dirs []string
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "//") {
				continue
			}
			dirs = append(dirs, line)
			if len(dirs) == 3 {
				break
			}
		}
		want := []string{".version 8.0", fmt.Sprintf(".target sm_%da", cc), ".address_size 64"}
		if !slices.Equal(dirs, want) {
			t.Errorf("fatbin/%s starts with %q, want %q: run make -C cuda", e.Name(), dirs, want)
		}
		if bytes.IndexByte(b, 0) >= 0 {
			t.Errorf("fatbin/%s holds a NUL byte: the driver would stop reading there", e.Name())
		}
	}
	if len(byTarget[90]) == 0 {
		t.Fatalf("no sm_90 PTX module embedded (want fatbin/awq_gemm_wg.sm90a.ptx): run make -C cuda")
	}
	for _, cc := range []int{80, 86, 89, 90, 100, 120} {
		imgs, err := ptxImages(cc)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, img := range imgs {
			names = append(names, img.name)
			if n := len(img.data); n == 0 || img.data[n-1] != 0 || bytes.IndexByte(img.data, 0) != n-1 {
				t.Errorf("sm_%d: %s is not one NUL-terminated string", cc, img.name)
			}
			if !bytes.HasPrefix(img.data, []byte("//")) && !bytes.HasPrefix(img.data, []byte(".version")) {
				t.Errorf("sm_%d: %s does not look like PTX text", cc, img.name)
			}
		}
		if !slices.Equal(names, byTarget[cc]) {
			t.Errorf("sm_%d loads PTX modules %q, want %q (only those built for it)", cc, names, byTarget[cc])
		}
	}
	// The embedded bytes stay as built: the loader appends the NUL to a copy.
	imgs, _ := ptxImages(90)
	for _, img := range imgs {
		b, _ := fatbinFS.ReadFile("fatbin/" + img.name)
		if len(b) != len(img.data)-1 {
			t.Errorf("%s: embedded %d bytes, image %d", img.name, len(b), len(img.data))
		}
	}
}

func TestPTXTarget(t *testing.T) {
	for _, tc := range []struct {
		name string
		want int
	}{
		{"awq_gemm_wg.sm90a.ptx", 90},
		{"x.sm100a.ptx", 100},
		{"awq_gemm_wg.sm90.ptx", 0},
		{"awq_gemv.fatbin", 0},
		{"awq_gemv.ptx", 0},
		{"a.smx.ptx", 0},
		{"a.sm.ptx", 0},
		{"a.sm-90.ptx", 0},
		{"a.sm90a.cu", 0},
		{"a.sma.ptx", 0},
	} {
		if got := ptxTarget(tc.name); got != tc.want {
			t.Errorf("ptxTarget(%q) = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// fatbinHas returns whether a kernel name is an entry of an embedded
// fatbin (a stale or partial build would fail at its first launch on the
// GPU).
func fatbinHas(t *testing.T) func(name string) bool {
	t.Helper()
	imgs, err := fatbins()
	if err != nil {
		t.Fatal(err)
	}
	return func(name string) bool {
		for _, img := range imgs {
			if bytes.Contains(img.data, []byte("\x00"+name+"\x00")) {
				return true
			}
		}
		return false
	}
}
