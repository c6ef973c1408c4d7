package synth

import (
	"hash/fnv"
	"math"
)

// chunkElems is the number of elements drawn from one random stream. Each
// chunk of each tensor has its own stream seeded from (seed, tensor name,
// chunk index), so chunks are generated in parallel and the output does not
// depend on the number of workers.
const chunkElems = 1 << 20

// rng is splitmix64: tiny, fast, and good enough for weights.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// uniform returns a float in [0, 1).
func (r *rng) uniform() float32 { return float32(r.next()>>40) / (1 << 24) }

// normal returns an approximately standard normal value: the sum of four
// 16-bit uniforms, centred and scaled to unit variance.
func (r *rng) normal() float32 {
	x := r.next()
	s := float32(x&0xffff) + float32(x>>16&0xffff) + float32(x>>32&0xffff) + float32(x>>48)
	return (s/65536 - 2) * float32(math.Sqrt(3))
}

func stream(seed uint64, name string, chunk int) rng {
	h := fnv.New64a()
	h.Write([]byte(name))
	r := rng{seed ^ h.Sum64()}
	r.s = r.next() + uint64(chunk)*0xd1b54a32d192ed03
	r.next()
	return r
}

// packAWQ moves the nibbles of a logically ordered word (nibble k = column
// 8c+k) to AWQ's packed order (nibble i = column 8c+AWQOrder[i]). That order,
// [0,2,4,6,1,3,5,7], puts the even logical nibbles in the low half and the
// odd ones in the high half, so packing is a nibble unzip.
func packAWQ(logical uint32) uint32 {
	return unzipNibbles(logical&0x0f0f0f0f) | unzipNibbles(logical>>4&0x0f0f0f0f)<<16
}

// unzipNibbles gathers the low nibbles of x's four bytes into 16 bits.
func unzipNibbles(x uint32) uint32 {
	x = (x | x>>4) & 0x00ff00ff
	return (x | x>>8) & 0xffff
}

// Magnitudes. q is uniform on 0..15 and z is 7 or 8, so q-z has mean 0 and
// variance 255/12 + 1/4 = 21.5; a scale of 1/sqrt(21.5*in) gives the weights
// a variance of 1/in, so each linear maps activations of RMS 1 to RMS ~1.
// Through a layer the residual stream grows by about 1 in RMS per block, so
// 32 layers end near RMS 6: nowhere near fp16's range, nowhere near zero.
const qzVariance = 255.0/12 + 0.25

func scaleFor(in int) float32 { return float32(1 / math.Sqrt(qzVariance*float64(in))) }

// headStd gives logits a standard deviation of about 4 (the final norm makes
// the hidden state RMS ~1), so greedy choices are rarely near-ties.
func headStd(hidden int) float32 { return float32(4 / math.Sqrt(float64(hidden))) }

// embedStd: embeddings of RMS 1, comparable to what each block adds.
const embedStd = 1

// qWord and zWord are the logical words of qweight and qzeros.
func qWord(r *rng) uint32 { return uint32(r.next()) }
func zWord(r *rng) uint32 { return 0x77777777 + uint32(r.next())&0x11111111 }

// scale draws one scale: the base scale times 0.75..1.25.
func scale(r *rng, base float32) float32 { return base * (0.75 + 0.5*r.uniform()) }

// normWeight draws one RMSNorm weight: 1 +- 0.1.
func normWeight(r *rng) float32 { return 1 + 0.1*(2*r.uniform()-1) }
