package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sort"
)

// Spec describes a tensor to write.
type Spec struct {
	Name  string
	DType DType
	Shape []int
}

// ByteSize is the number of data bytes the tensor takes.
func (s Spec) ByteSize() (int64, error) {
	es := s.DType.Size()
	if es == 0 {
		return 0, fmt.Errorf("tensor %q: unknown dtype %q", s.Name, string(s.DType))
	}
	n := uint64(es)
	for _, d := range s.Shape {
		if d < 0 {
			return 0, fmt.Errorf("tensor %q: negative dimension in shape %v", s.Name, s.Shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > 1<<62 {
			return 0, fmt.Errorf("tensor %q: shape %v is too large", s.Name, s.Shape)
		}
		n = lo
	}
	return int64(n), nil
}

// Layout places tensors in a file: the header, then every tensor's data back
// to back (no holes, as the reference implementation requires), ordered by
// element size (largest first) and then name so that each tensor starts at a
// multiple of its element size.
type Layout struct {
	Header  []byte  // the 8-byte length and the space-padded JSON header
	Specs   []Spec  // in file order
	Offsets []int64 // absolute file offset of each Specs[i]'s data
	Size    int64   // total file size
}

// NewLayout lays out specs (in any order) with optional metadata.
func NewLayout(specs []Spec, metadata map[string]string) (*Layout, error) {
	l := &Layout{Specs: append([]Spec(nil), specs...)}
	sort.SliceStable(l.Specs, func(i, j int) bool {
		a, b := l.Specs[i], l.Specs[j]
		if a.DType.Size() != b.DType.Size() {
			return a.DType.Size() > b.DType.Size()
		}
		return a.Name < b.Name
	})
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	if len(metadata) > 0 {
		m, err := json.Marshal(metadata)
		if err != nil {
			return nil, err
		}
		hdr.WriteString(`"__metadata__":`)
		hdr.Write(m)
	}
	var pos int64
	sizes := make([]int64, len(l.Specs))
	seen := map[string]bool{}
	for i, s := range l.Specs {
		if s.Name == "" || s.Name == "__metadata__" || seen[s.Name] {
			return nil, fmt.Errorf("tensor name %q is empty, reserved or repeated", s.Name)
		}
		seen[s.Name] = true
		n, err := s.ByteSize()
		if err != nil {
			return nil, err
		}
		sizes[i] = n
		shape := s.Shape
		if shape == nil {
			shape = []int{}
		}
		e, err := json.Marshal(struct {
			DType       DType    `json:"dtype"`
			Shape       []int    `json:"shape"`
			DataOffsets [2]int64 `json:"data_offsets"`
		}{s.DType, shape, [2]int64{pos, pos + n}})
		if err != nil {
			return nil, err
		}
		name, _ := json.Marshal(s.Name)
		if hdr.Len() > 1 {
			hdr.WriteByte(',')
		}
		hdr.Write(name)
		hdr.WriteByte(':')
		hdr.Write(e)
		pos += n
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	if hdr.Len() > MaxHeaderSize {
		return nil, fmt.Errorf("header of %d bytes exceeds the %d-byte limit", hdr.Len(), MaxHeaderSize)
	}
	l.Header = make([]byte, 8, 8+hdr.Len())
	binary.LittleEndian.PutUint64(l.Header, uint64(hdr.Len()))
	l.Header = append(l.Header, hdr.Bytes()...)
	start := int64(len(l.Header))
	l.Offsets = make([]int64, len(l.Specs))
	var off int64
	for i := range l.Specs {
		l.Offsets[i] = start + off
		off += sizes[i]
	}
	l.Size = start + off
	return l, nil
}

// Data is a tensor with its little-endian bytes, for Write.
type Data struct {
	Spec
	Bytes []byte
}

// Write writes a safetensors file holding tensors to w.
func Write(w io.Writer, tensors []Data, metadata map[string]string) error {
	specs := make([]Spec, len(tensors))
	byName := make(map[string][]byte, len(tensors))
	for i, t := range tensors {
		n, err := t.ByteSize()
		if err != nil {
			return err
		}
		if int64(len(t.Bytes)) != n {
			return fmt.Errorf("tensor %q: %d bytes given, %s %v needs %d", t.Name, len(t.Bytes), t.DType, t.Shape, n)
		}
		specs[i] = t.Spec
		byName[t.Name] = t.Bytes
	}
	l, err := NewLayout(specs, metadata)
	if err != nil {
		return err
	}
	if _, err := w.Write(l.Header); err != nil {
		return err
	}
	for _, s := range l.Specs {
		if _, err := w.Write(byName[s.Name]); err != nil {
			return err
		}
	}
	return nil
}

// WriteFile writes tensors to a new file at path.
func WriteFile(path string, tensors []Data, metadata map[string]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Write(f, tensors, metadata); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
