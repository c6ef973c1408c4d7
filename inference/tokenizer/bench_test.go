package tokenizer

import "testing"

// BenchmarkEncodeArticle encodes the 6,435-token reference prompt.
func BenchmarkEncodeArticle(b *testing.B) {
	tok := openHermes(b)
	text := readGolden(b).SeedPrompt.Rendered
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		tok.Encode(text, true)
	}
}

// BenchmarkLoad loads the bundled OpenHermes tokenizer.
func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		openHermes(b)
	}
}
