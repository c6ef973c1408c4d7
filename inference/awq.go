package inference

import "github.com/briefapp/brief/inference/f16"

// DequantizeAWQ unpacks l into a row-major float32 matrix W[in][out] with
// W = (q - z) * s, the reference every engine is checked against.
func DequantizeAWQ(l AWQLinear) []float32 {
	w := make([]float32, l.In*l.Out)
	cols := l.Out / 8
	for i := 0; i < l.In; i++ {
		g := i / l.GroupSize
		row := w[i*l.Out : (i+1)*l.Out]
		for c := 0; c < cols; c++ {
			q := uint32(l.QWeight[i*cols+c])
			z := uint32(l.QZeros[g*cols+c])
			for k, o := range AWQOrder {
				col := 8*c + o
				qv := int32(q>>(4*k)) & 15
				zv := int32(z>>(4*k)) & 15
				row[col] = float32(qv-zv) * f16.HalfToFloat32(l.Scales[g*l.Out+col])
			}
		}
	}
	return w
}

// DequantizeDense converts an fp16 tensor to float32.
func DequantizeDense(d Dense) []float32 {
	out := make([]float32, len(d.Data))
	for i, h := range d.Data {
		out[i] = f16.HalfToFloat32(h)
	}
	return out
}
