package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// IndexFile names the weight map of a sharded checkpoint.
const IndexFile = "model.safetensors.index.json"

// maxIndexSize caps the index JSON (real ones are well under 1 MB).
const maxIndexSize = 64 << 20

// Set is the tensors of a model folder: one model.safetensors or the shards
// an index names.
type Set struct {
	files   []*File
	tensors map[string]*Tensor
	names   []string // sorted
}

// OpenFolder opens dir's weights: the shards of model.safetensors.index.json
// if present, else model.safetensors, else the folder's only .safetensors
// file.
func OpenFolder(dir string) (*Set, error) {
	index := filepath.Join(dir, IndexFile)
	if _, err := os.Stat(index); err == nil {
		return openIndex(dir, index)
	}
	single := filepath.Join(dir, "model.safetensors")
	if _, err := os.Stat(single); err != nil {
		found, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
		if len(found) != 1 {
			return nil, fmt.Errorf("%s: no model.safetensors or %s (found %d other .safetensors files)", dir, IndexFile, len(found))
		}
		single = found[0]
	}
	f, err := Open(single)
	if err != nil {
		return nil, err
	}
	s := &Set{files: []*File{f}, tensors: f.tensors, names: f.names}
	return s, nil
}

func openIndex(dir, index string) (*Set, error) {
	raw, err := readCapped(index, maxIndexSize)
	if err != nil {
		return nil, err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", index, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: weight_map is missing or empty", index)
	}
	var shards []string
	seen := map[string]bool{}
	for name, shard := range idx.WeightMap {
		if shard == "" || filepath.Base(shard) != shard || shard == "." || shard == ".." || strings.ContainsAny(shard, `/\`) {
			return nil, fmt.Errorf("%s: tensor %q: shard %q is not a file name in the folder", index, name, shard)
		}
		if !seen[shard] {
			seen[shard] = true
			shards = append(shards, shard)
		}
	}
	sort.Strings(shards)
	s := &Set{tensors: map[string]*Tensor{}}
	for _, shard := range shards {
		f, err := Open(filepath.Join(dir, shard))
		if err != nil {
			s.Close()
			return nil, err
		}
		s.files = append(s.files, f)
		for _, name := range f.names {
			if prev, dup := s.tensors[name]; dup {
				s.Close()
				return nil, fmt.Errorf("%s: tensor %q is in both %s and %s", index, name, prev.file, f.path)
			}
			s.tensors[name] = f.tensors[name]
			s.names = append(s.names, name)
		}
	}
	for name, shard := range idx.WeightMap {
		t, ok := s.tensors[name]
		if !ok || filepath.Base(t.file) != shard {
			s.Close()
			return nil, fmt.Errorf("%s: tensor %q should be in %s but is not", index, name, shard)
		}
	}
	sort.Strings(s.names)
	return s, nil
}

// readCapped reads a small file, refusing one larger than limit.
func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

// Tensor returns the named tensor.
func (s *Set) Tensor(name string) (*Tensor, bool) {
	t, ok := s.tensors[name]
	return t, ok
}

// Names lists every tensor of every file, sorted.
func (s *Set) Names() []string { return append([]string(nil), s.names...) }

// Files lists the paths of the files opened, in order.
func (s *Set) Files() []string {
	var p []string
	for _, f := range s.files {
		p = append(p, f.path)
	}
	return p
}

// FileOf names the file that holds t.
func (t *Tensor) FileOf() string { return t.file }

// SizeBytes is the total size of all tensors' data.
func (s *Set) SizeBytes() int64 {
	var n int64
	for _, t := range s.tensors {
		n += int64(len(t.Bytes))
	}
	return n
}

// Close unmaps every file.
func (s *Set) Close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	s.files = nil
	return errors.Join(errs...)
}
