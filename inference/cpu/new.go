package cpu

import (
	"errors"

	"github.com/briefapp/brief/inference"
)

// New dequantizes m's weights into float32 and returns an engine on them.
// m may be closed afterwards.
func New(m *inference.Model, opts Options) (*Engine, error) {
	if m == nil || m.Weights == nil {
		return nil, errors.New("cpu engine: model is not open")
	}
	return NewFromWeights(&m.Config, m.Weights, opts)
}
