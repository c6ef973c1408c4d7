// Package assets holds what is bundled into Brief: the icon, the sample
// article, and the OpenHermes-2.5-Mistral-7B folder without its weights
// (config and tokenizer, as published), which the synthetic checkpoint
// writer and tokenizer tests use.
package assets

import "embed"

// OpenHermes is the OpenHermes-2.5-Mistral-7B-AWQ model folder without
// weights, under "openhermes/".
//
//go:embed openhermes
var OpenHermes embed.FS
