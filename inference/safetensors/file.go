// Package safetensors reads and writes the safetensors format: an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype,
// shape and byte range, then the raw little-endian data.
//
// Files are memory-mapped and every header is validated before any tensor is
// handed out, so a corrupt or hostile file yields an error naming the file and
// tensor, never a panic or an oversized allocation. Tensor views alias the
// read-only mapping: they stay valid until Close and must never be written.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"
	"unsafe"
)

// MaxHeaderSize is the largest JSON header accepted (the reference
// implementation uses the same 100 MB cap).
const MaxHeaderSize = 100 << 20

// Tensor is one tensor of a file: a view of its bytes in the mapping.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Bytes []byte // little-endian elements, row-major; read-only
	file  string
}

// File is an open, validated safetensors file.
type File struct {
	path     string
	data     []byte // the whole mapping
	tensors  map[string]*Tensor
	names    []string // sorted
	metadata map[string]string
}

// Open maps path and validates its header.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("%s: %d bytes is too short for a safetensors file (it starts with an 8-byte header length)", path, size)
	}
	if uint64(size) > math.MaxInt {
		return nil, fmt.Errorf("%s: %d bytes is too large to map", path, size)
	}
	data, err := mapFile(f, size)
	if err != nil {
		return nil, fmt.Errorf("%s: map: %w", path, err)
	}
	sf, err := parse(path, data)
	if err != nil {
		unmap(data)
		return nil, err
	}
	return sf, nil
}

// entry is one tensor's header record.
type entry struct {
	DType       *DType   `json:"dtype"`
	Shape       *[]int64 `json:"shape"`
	DataOffsets *[]int64 `json:"data_offsets"`
}

// parse validates the header of data (a whole file) and builds the views.
func parse(path string, data []byte) (*File, error) {
	size := uint64(len(data))
	if size < 8 {
		return nil, fmt.Errorf("%s: %d bytes is too short for a safetensors file (it starts with an 8-byte header length)", path, size)
	}
	n := binary.LittleEndian.Uint64(data)
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("%s: header length %d exceeds the %d-byte limit (not a safetensors file?)", path, n, MaxHeaderSize)
	}
	if 8+n > size {
		return nil, fmt.Errorf("%s: header length %d runs past the end of the file (%d bytes)", path, n, size)
	}
	header := data[8 : 8+n]
	body := data[8+n:]
	sf := &File{path: path, data: data, tensors: map[string]*Tensor{}}

	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	bad := func(err error) error {
		return fmt.Errorf("%s: header is not valid JSON: %w", path, err)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, bad(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%s: header is not a JSON object", path)
	}
	type span struct {
		begin, end uint64
		name       string
	}
	var spans []span
	seenMeta := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bad(err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, bad(fmt.Errorf("object key is %v", tok))
		}
		if name == "__metadata__" {
			if seenMeta {
				return nil, fmt.Errorf("%s: header has __metadata__ twice", path)
			}
			seenMeta = true
			if err := dec.Decode(&sf.metadata); err != nil {
				return nil, fmt.Errorf("%s: __metadata__ must map strings to strings: %w", path, err)
			}
			continue
		}
		if _, dup := sf.tensors[name]; dup {
			return nil, fmt.Errorf("%s: tensor %q appears twice in the header", path, name)
		}
		var e entry
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: bad header entry: %w", path, name, err)
		}
		t, begin, end, err := check(name, e, uint64(len(body)), size, 8+n)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", path, name, err)
		}
		t.file = path
		t.Bytes = body[begin:end:end]
		sf.tensors[name] = t
		sf.names = append(sf.names, name)
		spans = append(spans, span{begin, end, name})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, bad(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: header has data after its JSON object", path)
	}

	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].end < spans[j].end
	})
	for i := 1; i < len(spans); i++ {
		p, c := spans[i-1], spans[i]
		if c.begin < p.end && c.begin != c.end {
			return nil, fmt.Errorf("%s: tensors %q (bytes %d..%d) and %q (bytes %d..%d) overlap", path, p.name, p.begin, p.end, c.name, c.begin, c.end)
		}
	}
	sort.Strings(sf.names)
	return sf, nil
}

// check validates one header entry against a data section of dataLen bytes
// that starts at byte dataStart of a file of fileSize bytes.
func check(name string, e entry, dataLen, fileSize, dataStart uint64) (*Tensor, uint64, uint64, error) {
	if e.DType == nil || e.Shape == nil || e.DataOffsets == nil {
		return nil, 0, 0, errors.New("header entry needs dtype, shape and data_offsets")
	}
	dt := *e.DType
	esize := dt.Size()
	if esize == 0 {
		return nil, 0, 0, fmt.Errorf("unknown dtype %q", string(dt))
	}
	shape := make([]int, len(*e.Shape))
	count := uint64(1)
	for i, d := range *e.Shape {
		if d < 0 {
			return nil, 0, 0, fmt.Errorf("shape %v has a negative dimension", *e.Shape)
		}
		if uint64(d) > math.MaxInt {
			return nil, 0, 0, fmt.Errorf("shape %v has a dimension too large", *e.Shape)
		}
		shape[i] = int(d)
		hi, lo := bits.Mul64(count, uint64(d))
		if hi != 0 {
			return nil, 0, 0, fmt.Errorf("shape %v overflows", *e.Shape)
		}
		count = lo
	}
	hi, nbytes := bits.Mul64(count, uint64(esize))
	if hi != 0 {
		return nil, 0, 0, fmt.Errorf("shape %v of %s overflows", *e.Shape, dt)
	}
	off := *e.DataOffsets
	if len(off) != 2 {
		return nil, 0, 0, fmt.Errorf("data_offsets %v must be [begin, end]", off)
	}
	if off[0] < 0 || off[1] < 0 || off[0] > off[1] {
		return nil, 0, 0, fmt.Errorf("data_offsets %v are not an ordered pair of byte offsets", off)
	}
	begin, end := uint64(off[0]), uint64(off[1])
	if end > dataLen {
		return nil, 0, 0, fmt.Errorf("data ends at byte %d past the end of the file (%d bytes)", dataStart+end, fileSize)
	}
	if end-begin != nbytes {
		return nil, 0, 0, fmt.Errorf("data_offsets %v hold %d bytes but %s %v needs %d", off, end-begin, dt, *e.Shape, nbytes)
	}
	return &Tensor{Name: name, DType: dt, Shape: shape}, begin, end, nil
}

// Path is the file's path as given to Open.
func (f *File) Path() string { return f.path }

// Names lists the tensors, sorted.
func (f *File) Names() []string { return append([]string(nil), f.names...) }

// Tensor returns the named tensor.
func (f *File) Tensor(name string) (*Tensor, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

// Metadata is the header's __metadata__ (nil if absent).
func (f *File) Metadata() map[string]string { return f.metadata }

// Close unmaps the file; views handed out become invalid.
func (f *File) Close() error {
	if f.data == nil {
		return nil
	}
	err := unmap(f.data)
	f.data = nil
	return err
}

// Elements is the number of elements, the product of the shape.
func (t *Tensor) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

func (t *Tensor) wrongType(want string) error {
	return fmt.Errorf("%s: tensor %q is %s, not %s", t.file, t.Name, t.DType, want)
}

// hostLittle reports whether the host stores numbers little-endian, as
// safetensors does, so views can alias the file.
var hostLittle = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// aligned reports whether b can be viewed as elements of size n in place.
func aligned(b []byte, n int) bool {
	return hostLittle && len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%uintptr(n) == 0
}

// Int32s returns an I32 tensor's elements: a view of the mapping when
// aligned (never write to it), otherwise a copy.
func (t *Tensor) Int32s() ([]int32, error) {
	if t.DType != I32 {
		return nil, t.wrongType("I32")
	}
	n := len(t.Bytes) / 4
	if aligned(t.Bytes, 4) {
		return unsafe.Slice((*int32)(unsafe.Pointer(&t.Bytes[0])), n), nil
	}
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(t.Bytes[4*i:]))
	}
	return out, nil
}

// Uint16s returns an F16 or BF16 tensor's raw bits (or U16/I16 elements): a
// view of the mapping when aligned (never write to it), otherwise a copy.
func (t *Tensor) Uint16s() ([]uint16, error) {
	if t.DType.Size() != 2 {
		return nil, t.wrongType("a 16-bit type")
	}
	n := len(t.Bytes) / 2
	if aligned(t.Bytes, 2) {
		return unsafe.Slice((*uint16)(unsafe.Pointer(&t.Bytes[0])), n), nil
	}
	out := make([]uint16, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(t.Bytes[2*i:])
	}
	return out, nil
}

// Float32s returns an F32 tensor's elements: a view of the mapping when
// aligned (never write to it), otherwise a copy.
func (t *Tensor) Float32s() ([]float32, error) {
	if t.DType != F32 {
		return nil, t.wrongType("F32")
	}
	n := len(t.Bytes) / 4
	if aligned(t.Bytes, 4) {
		return unsafe.Slice((*float32)(unsafe.Pointer(&t.Bytes[0])), n), nil
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Bytes[4*i:]))
	}
	return out, nil
}
