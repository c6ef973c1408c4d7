// Package inference is Brief's model-agnostic pipeline: model folders
// (config, safetensors, AWQ tensors), the Engine interface that runs the
// network, the generation loop (greedy and prompt lookup decoding) with its
// streamed events and statistics, and the pure-Go CPU reference engine.
//
// Data flows one way: prompt tokens -> Engine -> token stream -> text
// stream; statistics flow beside it as Events.
package inference
