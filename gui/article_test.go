package gui

import (
	"bytes"
	"strings"
	"testing"
)

func TestReadArticle(t *testing.T) {
	tests := []struct {
		name, file string
		data       []byte
		want       string // substring of the text
		err        string // substring of the error; "" for success
	}{
		{"text", "a.txt", []byte("Hello article.\r\nSecond line."), "Hello article.\nSecond line.", ""},
		{"markdown with BOM", "A.MD", []byte("\xef\xbb\xbf# Title\n\nBody"), "# Title", ""},
		{"not UTF-8", "latin1.txt", []byte("caf\xe9 au lait"), "", "latin1.txt: not UTF-8 text (invalid byte at offset 3)"},
		{"empty", "empty.md", []byte(" \n\t\n"), "", "empty.md: the article is empty"},
		{"unknown type", "paper.docx", []byte("PK"), "", "paper.docx: Brief opens .txt, .md and .pdf files"},
		{"pdf", "paper.pdf", makePDF("BT /F1 12 Tf 72 720 Td (Stars shine at night.) Tj ET"), "Stars shine at night.", ""},
		// 0x93 is the "fi" ligature in PDFDocEncoding; NFKC spells it out.
		{"pdf ligature", "lig.pdf", makePDF("BT /F1 12 Tf 72 720 Td (ef\x93cient) Tj ET"), "efficient", ""},
		{"pdf without text", "scan.pdf", makePDF("0 0 1 rg 72 72 200 200 re f"), "", "scan.pdf: the PDF has no text to extract"},
		{"broken pdf", "broken.pdf", []byte("%PDF-1.4\nnonsense"), "", "broken.pdf: cannot read this PDF"},
		{"page tree loop", "loop.pdf", loopPDF(), "", "loop.pdf: cannot read this PDF: its page tree is broken"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readArticle(tc.file, bytes.NewReader(tc.data))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("text = %q, want it to contain %q", got, tc.want)
			}
		})
	}
}

func TestCheckArticle(t *testing.T) {
	if err := checkArticle("  \n"); err == nil {
		t.Error("blank article accepted")
	}
	if err := checkArticle("ok \xff"); err == nil || !strings.Contains(err.Error(), "offset 3") {
		t.Errorf("invalid UTF-8: error = %v", err)
	}
	if err := checkArticle("Fine text."); err != nil {
		t.Error(err)
	}
}

// loopPDF is a PDF whose page tree lists itself as its own kid (found by
// FuzzPDFText: the parser's own page walk never ends on it).
func loopPDF() []byte {
	return bytes.Replace(makePDF("BT /F1 12 Tf 72 720 Td (Hello) Tj ET"), []byte("/Kids [3 0 R]"), []byte("/Kids [2 0 R]"), 1)
}

// FuzzPDFText: no input makes the PDF reader panic through us or hang.
func FuzzPDFText(f *testing.F) {
	f.Add(makePDF("BT /F1 12 Tf 72 720 Td (Hello) Tj ET"))
	f.Add(makePDF("0 0 1 rg 72 72 200 200 re f"))
	f.Add([]byte("%PDF-1.7\n1 0 obj <<>> endobj trailer <<>>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		readArticle("f.pdf", bytes.NewReader(data))
	})
}
