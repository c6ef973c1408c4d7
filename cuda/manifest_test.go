package cuda

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
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
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, m...)
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(n)
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
