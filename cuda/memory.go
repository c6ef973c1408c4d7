package cuda

import "github.com/briefapp/brief/inference"

// What the engine allocates, sized before it allocates anything.

// freeMemoryLimit, when positive, caps the free memory setup sees (tests
// of a GPU without room for everything).
var freeMemoryLimit int64

// memoryNeed is what setup will allocate: need for the engine, pipe for
// the pipelined prefill's second lane on top.
func (e *Engine) memoryNeed() (need, pipe int64) {
	c := &e.cfg
	hid, H, KV, D, I := c.Hidden, c.Heads, c.KVHeads, c.HeadDim, c.Intermediate
	qkvW := (H + 2*KV) * D
	for range c.Layers {
		need += awqBytes(hid, qkvW, c.Quant.GroupSize) + awqBytes(H*D, hid, c.Quant.GroupSize) +
			awqBytes(hid, 2*I, c.Quant.GroupSize) + awqBytes(I, hid, c.Quant.GroupSize) + 4*int64(hid)
		need += 2 * 2 * int64(KV) * int64(e.cap) * int64(D)
	}
	need += 2 * 2 * int64(c.Vocab) * int64(hid)
	ch := int64(e.chunk)
	guCols := e.guCols()
	chunkBytes := ch*int64(hid)*(4+2+2) + ch*int64(qkvW)*2 + ch*int64(H*D)*2 + ch*int64(I+guCols)*2
	wsAcc, wsML := e.attnWorkspace()
	need += chunkBytes + wsAcc + wsML + int64(inference.MaxVerify)*int64(c.Vocab)*4
	altAcc, altML := e.altWorkspace()
	return need, chunkBytes + altAcc + altML
}

// guCols is the width of gate|up's output buffer: none where every step
// writes the activations straight from the fused-SiLU mat-vec or GEMM.
func (e *Engine) guCols() int {
	if e.siluFused && e.gemmEpilogue {
		return 0
	}
	return 2 * e.cfg.Intermediate
}

// altWorkspace is the attention workspace of the pipelined prefill's second
// lane, which runs only whole chunks before the last (Prefill): none where
// the direct kernel runs them.
func (e *Engine) altWorkspace() (acc, ml int64) {
	if e.prefillDirect && e.attnPlan(e.chunk).direct {
		return 0, 0
	}
	return e.attnWorkspaceFor(e.chunk)
}
