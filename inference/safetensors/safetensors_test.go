package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func i32bytes(v ...int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

func u16bytes(v ...uint16) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], x)
	}
	return b
}

func f32bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// raw builds a file from a header string (not padded) and a data section.
func raw(header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func writeTemp(t *testing.T, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sample() []Data {
	return []Data{
		{Spec{"b.scales", F16, []int{2, 3}}, u16bytes(0x3c00, 0x4000, 0x4200, 0xbc00, 0, 0x7bff)},
		{Spec{"a.qweight", I32, []int{3, 1}}, i32bytes(-1, 0x12345678, 7)},
		{Spec{"c.f32", F32, []int{2}}, f32bytes(1.5, -2.25)},
		{Spec{"d.scalar", F32, nil}, f32bytes(42)},
		{Spec{"e.empty", I32, []int{0, 5}}, nil},
		{Spec{"f.bytes", U8, []int{3}}, []byte{1, 2, 3}},
	}
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	meta := map[string]string{"format": "pt"}
	if err := Write(&buf, sample(), meta); err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(buf.Bytes())
	if (8+n)%8 != 0 {
		t.Errorf("data section starts at %d, not a multiple of 8", 8+n)
	}
	p := writeTemp(t, "model.safetensors", buf.Bytes())
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, want := f.Names(), []string{"a.qweight", "b.scales", "c.f32", "d.scalar", "e.empty", "f.bytes"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	if !reflect.DeepEqual(f.Metadata(), meta) {
		t.Errorf("Metadata() = %v", f.Metadata())
	}
	for _, d := range sample() {
		tn, ok := f.Tensor(d.Name)
		if !ok {
			t.Fatalf("tensor %q missing", d.Name)
		}
		if tn.DType != d.DType || !reflect.DeepEqual(tn.Bytes, d.Bytes) && len(d.Bytes) > 0 {
			t.Errorf("%s: got %s %v, want %s %v", d.Name, tn.DType, tn.Bytes, d.DType, d.Bytes)
		}
		want := d.Shape
		if want == nil {
			want = []int{}
		}
		if !reflect.DeepEqual(tn.Shape, want) {
			t.Errorf("%s: shape %v, want %v", d.Name, tn.Shape, want)
		}
	}
	q, _ := f.Tensor("a.qweight")
	if v, err := q.Int32s(); err != nil || !reflect.DeepEqual(v, []int32{-1, 0x12345678, 7}) {
		t.Errorf("Int32s() = %v, %v", v, err)
	}
	if _, err := q.Uint16s(); err == nil || !strings.Contains(err.Error(), `"a.qweight" is I32`) {
		t.Errorf("Uint16s on I32: err = %v", err)
	}
	s, _ := f.Tensor("b.scales")
	if v, err := s.Uint16s(); err != nil || !reflect.DeepEqual(v, []uint16{0x3c00, 0x4000, 0x4200, 0xbc00, 0, 0x7bff}) {
		t.Errorf("Uint16s() = %v, %v", v, err)
	}
	c, _ := f.Tensor("c.f32")
	if v, err := c.Float32s(); err != nil || !reflect.DeepEqual(v, []float32{1.5, -2.25}) {
		t.Errorf("Float32s() = %v, %v", v, err)
	}
	e, _ := f.Tensor("e.empty")
	if v, err := e.Int32s(); err != nil || len(v) != 0 {
		t.Errorf("empty Int32s() = %v, %v", v, err)
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
}

// TestUnalignedViewsCopy puts the data section at an odd offset, so the views
// cannot alias the mapping and must be decoded copies.
func TestUnalignedViewsCopy(t *testing.T) {
	header := `{"q":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},"h":{"dtype":"F16","shape":[1],"data_offsets":[8,10]},"f":{"dtype":"F32","shape":[1],"data_offsets":[10,14]}}`
	for len(header)%8 != 1 {
		header += " "
	}
	data := append(append(i32bytes(5, -6), u16bytes(0x3c00)...), f32bytes(0.5)...)
	f, err := Open(writeTemp(t, "odd.safetensors", raw(header, data)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	q, _ := f.Tensor("q")
	if v, err := q.Int32s(); err != nil || !reflect.DeepEqual(v, []int32{5, -6}) {
		t.Errorf("Int32s() = %v, %v", v, err)
	}
	h, _ := f.Tensor("h")
	if v, err := h.Uint16s(); err != nil || !reflect.DeepEqual(v, []uint16{0x3c00}) {
		t.Errorf("Uint16s() = %v, %v", v, err)
	}
	fl, _ := f.Tensor("f")
	if v, err := fl.Float32s(); err != nil || !reflect.DeepEqual(v, []float32{0.5}) {
		t.Errorf("Float32s() = %v, %v", v, err)
	}
}

func TestCorruptFiles(t *testing.T) {
	ok := `{"t":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}`
	huge := make([]byte, 8)
	binary.LittleEndian.PutUint64(huge, 1<<40)
	past := make([]byte, 16)
	binary.LittleEndian.PutUint64(past, 1000)
	tests := []struct {
		name    string
		content []byte
		want    string
	}{
		{"empty file", nil, "0 bytes is too short"},
		{"short file", []byte{1, 2, 3}, "3 bytes is too short"},
		{"header length past EOF", past, "header length 1000 runs past the end of the file (16 bytes)"},
		{"header length over cap", huge, "exceeds the 104857600-byte limit"},
		{"bad JSON", raw(`{,}`, nil), "header is not valid JSON"},
		{"truncated JSON", raw(`{"t":{"dtype":`, nil), `tensor "t": bad header entry: unexpected EOF`},
		{"not an object", raw(`[1,2]`, nil), "not a JSON object"},
		{"trailing data", raw(ok+`{}`, i32bytes(1, 2)), "data after its JSON object"},
		{"unknown dtype", raw(`{"t":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}`, i32bytes(1, 2)), `tensor "t": unknown dtype "Q4"`},
		{"negative shape", raw(`{"t":{"dtype":"I32","shape":[-2],"data_offsets":[0,8]}}`, i32bytes(1, 2)), `tensor "t": shape [-2] has a negative dimension`},
		{"shape overflow", raw(`{"t":{"dtype":"I32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, i32bytes(1, 2)), `tensor "t": shape [4294967296 4294967296] overflows`},
		{"byte size overflow", raw(`{"t":{"dtype":"I64","shape":[4611686018427387904],"data_offsets":[0,8]}}`, i32bytes(1, 2)), `overflows`},
		{"size mismatch", raw(`{"t":{"dtype":"I32","shape":[3],"data_offsets":[0,8]}}`, i32bytes(1, 2)), `tensor "t": data_offsets [0 8] hold 8 bytes but I32 [3] needs 12`},
		{"data past end", raw(ok, i32bytes(1)), `tensor "t": data ends at byte 70 past the end of the file (66 bytes)`},
		{"reversed offsets", raw(`{"t":{"dtype":"I32","shape":[0],"data_offsets":[8,0]}}`, i32bytes(1, 2)), `not an ordered pair`},
		{"negative offset", raw(`{"t":{"dtype":"I32","shape":[2],"data_offsets":[-8,0]}}`, i32bytes(1, 2)), `not an ordered pair`},
		{"one offset", raw(`{"t":{"dtype":"I32","shape":[2],"data_offsets":[8]}}`, i32bytes(1, 2)), `must be [begin, end]`},
		{"missing field", raw(`{"t":{"dtype":"I32","data_offsets":[0,8]}}`, i32bytes(1, 2)), `tensor "t": header entry needs dtype, shape and data_offsets`},
		{"overlap", raw(`{"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[2],"data_offsets":[4,12]}}`, i32bytes(1, 2, 3)), `tensors "a" (bytes 0..8) and "b" (bytes 4..12) overlap`},
		{"duplicate tensor", raw(`{"t":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}}`, i32bytes(1, 2)), `tensor "t" appears twice`},
		{"bad metadata", raw(`{"__metadata__":{"a":1}}`, nil), `__metadata__ must map strings to strings`},
		{"entry not an object", raw(`{"t":[1]}`, nil), `tensor "t": bad header entry`},
		{"float shape", raw(`{"t":{"dtype":"I32","shape":[1.5],"data_offsets":[0,4]}}`, i32bytes(1)), `tensor "t": bad header entry`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeTemp(t, "model.safetensors", tt.content)
			f, err := Open(p)
			if err == nil {
				f.Close()
				t.Fatalf("Open succeeded, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), p+": ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q: want the file name and %q", err, tt.want)
			}
		})
	}
}

func TestEmptyTensorsMayShareOffsets(t *testing.T) {
	h := `{"a":{"dtype":"I32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}`
	f, err := Open(writeTemp(t, "x.safetensors", raw(h, i32bytes(1, 2))))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "nope.safetensors")); err == nil {
		t.Error("Open of a missing file succeeded")
	}
	if _, err := Open(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open of a folder: %v", err)
	}
}

func writeFolderFile(t *testing.T, dir, name string, data []Data) {
	t.Helper()
	if err := WriteFile(filepath.Join(dir, name), data, nil); err != nil {
		t.Fatal(err)
	}
}

func TestOpenFolder(t *testing.T) {
	d := sample()
	t.Run("single", func(t *testing.T) {
		dir := t.TempDir()
		writeFolderFile(t, dir, "model.safetensors", d)
		s, err := OpenFolder(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if len(s.Names()) != len(d) {
			t.Errorf("Names() = %v", s.Names())
		}
		if s.SizeBytes() != 12+12+8+4+0+3 {
			t.Errorf("SizeBytes() = %d", s.SizeBytes())
		}
	})
	t.Run("only other file", func(t *testing.T) {
		dir := t.TempDir()
		writeFolderFile(t, dir, "awq.safetensors", d)
		s, err := OpenFolder(dir)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})
	t.Run("none", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := OpenFolder(dir); err == nil || !strings.Contains(err.Error(), "no model.safetensors") {
			t.Errorf("err = %v", err)
		}
	})
	shard := func(t *testing.T, index string) (string, error) {
		dir := t.TempDir()
		writeFolderFile(t, dir, "model-00001-of-00002.safetensors", d[:3])
		writeFolderFile(t, dir, "model-00002-of-00002.safetensors", d[3:])
		if err := os.WriteFile(filepath.Join(dir, IndexFile), []byte(index), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := OpenFolder(dir)
		if err == nil {
			defer s.Close()
			if len(s.Names()) != len(d) || len(s.Files()) != 2 {
				t.Errorf("Names() = %v, Files() = %v", s.Names(), s.Files())
			}
			if q, ok := s.Tensor("a.qweight"); !ok || filepath.Base(q.FileOf()) != "model-00001-of-00002.safetensors" {
				t.Errorf("a.qweight: %v", q)
			}
		}
		return dir, err
	}
	good := `{"metadata":{},"weight_map":{"a.qweight":"model-00001-of-00002.safetensors","b.scales":"model-00001-of-00002.safetensors","c.f32":"model-00001-of-00002.safetensors","d.scalar":"model-00002-of-00002.safetensors","e.empty":"model-00002-of-00002.safetensors","f.bytes":"model-00002-of-00002.safetensors"}}`
	if _, err := shard(t, good); err != nil {
		t.Fatalf("sharded: %v", err)
	}
	bad := []struct{ name, index, want string }{
		{"wrong shard", strings.Replace(good, `"d.scalar":"model-00002`, `"d.scalar":"model-00001`, 1), `tensor "d.scalar" should be in model-00001-of-00002.safetensors but is not`},
		{"missing shard", strings.Replace(good, `"f.bytes":"model-00002-of-00002`, `"f.bytes":"model-00003-of-00003`, 1), "model-00003-of-00003.safetensors: no such file"},
		{"traversal", strings.Replace(good, `"f.bytes":"model-00002-of-00002.safetensors"`, `"f.bytes":"../x.safetensors"`, 1), `shard "../x.safetensors" is not a file name`},
		{"empty map", `{"weight_map":{}}`, "weight_map is missing or empty"},
		{"bad json", `{"weight_map":`, IndexFile},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := shard(t, tt.index)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("duplicate across shards", func(t *testing.T) {
		dir := t.TempDir()
		writeFolderFile(t, dir, "s1.safetensors", d[:2])
		writeFolderFile(t, dir, "s2.safetensors", d[1:3])
		os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"weight_map":{"a.qweight":"s1.safetensors","b.scales":"s2.safetensors"}}`), 0o644)
		if _, err := OpenFolder(dir); err == nil || !strings.Contains(err.Error(), "is in both") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestWriteRejects(t *testing.T) {
	tests := []struct {
		name string
		data []Data
		want string
	}{
		{"wrong length", []Data{{Spec{"x", I32, []int{2}}, []byte{1}}}, "1 bytes given"},
		{"unknown dtype", []Data{{Spec{"x", "Q4", []int{2}}, nil}}, "unknown dtype"},
		{"negative", []Data{{Spec{"x", I32, []int{-1}}, nil}}, "negative dimension"},
		{"repeated", []Data{{Spec{"x", U8, []int{1}}, []byte{1}}, {Spec{"x", U8, []int{1}}, []byte{1}}}, "repeated"},
	}
	for _, tt := range tests {
		if err := Write(&bytes.Buffer{}, tt.data, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestLayoutIsContiguousAndAligned(t *testing.T) {
	specs := []Spec{{"h1", F16, []int{3}}, {"i", I32, []int{5}}, {"b", U8, []int{1}}, {"h2", F16, []int{1}}, {"d", F64, []int{1}}}
	l, err := NewLayout(specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	pos := int64(len(l.Header))
	for i, s := range l.Specs {
		if l.Offsets[i] != pos {
			t.Errorf("%s at %d, want %d (no holes)", s.Name, l.Offsets[i], pos)
		}
		if l.Offsets[i]%int64(s.DType.Size()) != 0 {
			t.Errorf("%s at %d is not aligned to %d", s.Name, l.Offsets[i], s.DType.Size())
		}
		n, _ := s.ByteSize()
		pos += n
	}
	if l.Size != pos {
		t.Errorf("Size = %d, want %d", l.Size, pos)
	}
}

// FuzzSafetensorsHeader feeds arbitrary bytes as a whole file: parsing must
// not panic, and every view it hands out must be readable.
func FuzzSafetensorsHeader(f *testing.F) {
	var buf bytes.Buffer
	Write(&buf, sample(), map[string]string{"format": "pt"})
	f.Add(buf.Bytes())
	f.Add(raw(`{"t":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}`, i32bytes(1, 2)))
	f.Add(raw(`{"a":{"dtype":"F16","shape":[1,1],"data_offsets":[0,2]},"b":{"dtype":"BF16","shape":[],"data_offsets":[2,4]}}`, u16bytes(1, 2)))
	f.Add(raw(`{}`, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := parse("fuzz.safetensors", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.safetensors: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, n := range sf.Names() {
			tn, _ := sf.Tensor(n)
			if tn.Elements()*tn.DType.Size() != len(tn.Bytes) {
				t.Fatalf("%s: %d elements of %s in %d bytes", n, tn.Elements(), tn.DType, len(tn.Bytes))
			}
			var sum int64
			if v, err := tn.Int32s(); err == nil {
				for _, x := range v {
					sum += int64(x)
				}
			}
			if v, err := tn.Uint16s(); err == nil {
				for _, x := range v {
					sum += int64(x)
				}
			}
			if v, err := tn.Float32s(); err == nil {
				for _, x := range v {
					sum += int64(math.Float32bits(x))
				}
			}
			_ = sum
		}
	})
}
