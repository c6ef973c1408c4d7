package inference

// Weights are views of a checkpoint's tensors, in the layout of the file
// (AWQ GEMM packing, fp16 as raw bits). Engines convert them to whatever
// layout they run on; the views stay valid until the Model is closed.
type Weights struct {
	Embed  Dense   // (vocab, hidden)
	Layers []Layer // (layers)
	Norm   Dense   // (hidden)
	LMHead Dense   // (vocab, hidden); the same view as Embed when tied
}

// Layer holds one decoder block.
type Layer struct {
	AttnNorm Dense     // (hidden)
	MLPNorm  Dense     // (hidden)
	Q        AWQLinear // hidden -> heads*head_dim
	K        AWQLinear // hidden -> kv_heads*head_dim
	V        AWQLinear // hidden -> kv_heads*head_dim
	O        AWQLinear // heads*head_dim -> hidden
	Gate     AWQLinear // hidden -> intermediate
	Up       AWQLinear // hidden -> intermediate
	Down     AWQLinear // intermediate -> hidden
}

// Dense is an fp16 tensor, row-major, as IEEE half-precision bits.
type Dense struct {
	Shape []int
	Data  []uint16
}

// AWQLinear is a 4-bit AWQ (GEMM version) linear layer: y = x W with
// W[in][out] = (q - z) * s. Nibble i (bits 4i..4i+3) of packed column c
// holds output column 8c + AWQOrder[i]; qzeros are packed the same way.
type AWQLinear struct {
	In, Out   int
	GroupSize int
	QWeight   []int32  // (in, out/8)
	QZeros    []int32  // (in/group, out/8)
	Scales    []uint16 // (in/group, out), fp16 bits
}

// AWQOrder maps nibble i of a packed int32 to output column 8c+AWQOrder[i].
var AWQOrder = [8]int{0, 2, 4, 6, 1, 3, 5, 7}
