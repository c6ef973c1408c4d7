package inference

// Config holds the hyperparameters of a Llama/Mistral checkpoint, read from
// config.json (and the quantization config beside it).
type Config struct {
	Architecture  string  // "MistralForCausalLM" or "LlamaForCausalLM"
	Hidden        int     // hidden_size
	Layers        int     // num_hidden_layers
	Heads         int     // num_attention_heads
	KVHeads       int     // num_key_value_heads
	HeadDim       int     // head_dim, or hidden/heads
	Intermediate  int     // intermediate_size
	Vocab         int     // vocab_size
	RMSNormEps    float64 // rms_norm_eps
	RopeTheta     float64 // rope_parameters.rope_theta or rope_theta
	SlidingWindow int     // 0: none. Query i sees keys j with i-W < j <= i.
	MaxPositions  int     // max_position_embeddings
	TieEmbeddings bool    // tie_word_embeddings
	BOS           int     // bos_token_id, -1 if absent
	EOS           []int   // eos_token_id (one or several)
	Quant         Quant
}

// Quant describes AWQ quantization.
type Quant struct {
	Method    string // "awq"
	Bits      int    // 4
	GroupSize int    // 32, 64 or 128
	ZeroPoint bool
	Version   string // "gemm"
}

// GenerationConfig is generation_config.json; zero values mean absent.
type GenerationConfig struct {
	BOS int
	EOS []int
}
