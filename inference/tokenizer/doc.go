// Package tokenizer is a pure-Go tokenizer that reproduces Hugging Face
// `tokenizers` exactly for Llama and Mistral SentencePiece-BPE models.
//
// It reads a model folder's tokenizer.json (the legacy layout, whose
// normalizer prepends "▁" and replaces spaces, and the newer layout with a
// Metaspace pre-tokenizer), or, where a folder has none, tokenizer.model (the
// SentencePiece protobuf, converted the way transformers converts it) plus
// added_tokens.json. Special tokens and the BOS setting come from
// tokenizer_config.json and special_tokens_map.json.
//
// Encoding follows tokenizers step by step: added and special tokens are
// split out of the text first, each remaining piece is normalized and
// pre-tokenized, and BPE merges it by merge rank, falling back to <0xNN>
// byte pieces for characters outside the vocabulary. Decoding runs the
// tokenizer.json decoder chain (Replace, ByteFallback, Fuse, Strip,
// Metaspace), as tokenizers' decode with skip_special_tokens=False does.
// Stream decodes token by token without ever emitting broken UTF-8.
//
// Why not github.com/daulet/tokenizers: it binds the Rust library through a
// static library that must be built with cargo from crates.io, which none of
// our machines can reach; a pure-Go package also keeps `go build` free of
// native dependencies.
package tokenizer
