package gui

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/ledongthuc/pdf"
	"golang.org/x/text/unicode/norm"
)

// maxArticleFile bounds what is read from one file: a PDF of a long paper
// is a few MB, and no model's context holds more than a few hundred KB of
// text.
const maxArticleFile = 64 << 20

// articleExtensions are the files the open dialog offers and drops accept.
var articleExtensions = []string{".txt", ".md", ".pdf"}

// errEmptyArticle is returned for an article with no text.
var errEmptyArticle = errors.New("the article is empty: open a file, paste text or drop a file on the window")

// readArticle returns the text of the file called name (its extension picks
// the format) read from r. Errors name the file and what is wrong with it.
func readArticle(name string, r io.Reader) (string, error) {
	base := filepath.Base(name)
	ext := strings.ToLower(filepath.Ext(name))
	known := false
	for _, e := range articleExtensions {
		known = known || e == ext
	}
	if !known {
		return "", fmt.Errorf("%s: Brief opens .txt, .md and .pdf files", base)
	}
	data, err := io.ReadAll(io.LimitReader(r, maxArticleFile+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", base, err)
	}
	if len(data) > maxArticleFile {
		return "", fmt.Errorf("%s: larger than %d MB", base, maxArticleFile>>20)
	}
	var text string
	if ext == ".pdf" {
		text, err = pdfText(data)
		if err != nil {
			return "", fmt.Errorf("%s: %w", base, err)
		}
		if strings.TrimSpace(text) == "" {
			return "", fmt.Errorf("%s: the PDF has no text to extract (a scanned document holds only images); copy its text in by hand or open a text version", base)
		}
	} else {
		data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
		if !utf8.Valid(data) {
			return "", fmt.Errorf("%s: not UTF-8 text (invalid byte at offset %d); save it as UTF-8 and open it again", base, invalidOffset(data))
		}
		text = string(data)
	}
	text = strings.ReplaceAll(text, "\r\n", "\n")
	if strings.TrimSpace(text) == "" {
		return "", fmt.Errorf("%s: %w", base, errEmptyArticle)
	}
	return text, nil
}

// checkArticle validates text typed or pasted into the article pane.
func checkArticle(text string) error {
	if strings.TrimSpace(text) == "" {
		return errEmptyArticle
	}
	if !utf8.ValidString(text) {
		return fmt.Errorf("the article is not valid UTF-8 text (invalid byte at offset %d)", invalidOffset([]byte(text)))
	}
	return nil
}

func invalidOffset(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// Limits on a PDF's page tree: real files nest a few levels and have at
// most thousands of pages; a broken or hostile file may loop.
const (
	maxPDFDepth = 64
	maxPDFNodes = 200_000
)

// pdfText extracts the plain text of a PDF, page by page. The parser panics
// on some malformed files, so it runs under recover; and the page tree is
// walked here, with limits, because the parser's own walk loops forever on
// a tree that refers to itself. Ligatures and other compatibility
// characters (the "ﬁ" of many papers) become plain letters through NFKC.
func pdfText(data []byte) (text string, err error) {
	defer func() {
		if p := recover(); p != nil {
			text, err = "", fmt.Errorf("cannot read this PDF (%v)", p)
		}
	}()
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", fmt.Errorf("cannot read this PDF: %w", err)
	}
	pages, err := pdfPages(r)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i, p := range pages {
		t, err := p.GetPlainText(nil)
		if err != nil {
			return "", fmt.Errorf("cannot extract the text of page %d: %w", i+1, err)
		}
		b.WriteString(t)
		if b.Len() > maxArticleFile {
			break
		}
		b.WriteString("\n")
	}
	raw := b.String()
	if !utf8.ValidString(raw) {
		raw = strings.ToValidUTF8(raw, "\uFFFD")
	}
	return norm.NFKC.String(raw), nil
}

// pdfPages lists the pages of r in order.
func pdfPages(r *pdf.Reader) ([]pdf.Page, error) {
	var pages []pdf.Page
	nodes := 0
	var walk func(v pdf.Value, depth int) error
	walk = func(v pdf.Value, depth int) error {
		nodes++
		if nodes > maxPDFNodes || depth > maxPDFDepth {
			return errors.New("cannot read this PDF: its page tree is broken (it loops or nests too deep)")
		}
		switch v.Key("Type").Name() {
		case "Pages":
			kids := v.Key("Kids")
			for i := 0; i < kids.Len(); i++ {
				if err := walk(kids.Index(i), depth+1); err != nil {
					return err
				}
			}
		case "Page":
			pages = append(pages, pdf.Page{V: v})
		}
		return nil
	}
	if err := walk(r.Trailer().Key("Root").Key("Pages"), 0); err != nil {
		return nil, err
	}
	return pages, nil
}
