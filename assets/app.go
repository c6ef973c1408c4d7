package assets

import (
	_ "embed"
)

// SampleArticle is the article Brief shows on first start: a short text of
// our own (free to use), so a new user can press Summarize right away.
//
//go:embed sample_article.md
var SampleArticle string

// Icon is Brief's application icon, a 512x512 PNG drawn by ./iconmaker.
//
//go:embed icon.png
var Icon []byte
