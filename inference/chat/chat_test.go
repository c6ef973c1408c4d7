package chat

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/briefapp/brief/assets"
	"github.com/briefapp/brief/inference/tokenizer"
	"github.com/briefapp/brief/internal/testdata"
)

// TestReferencePrompt builds the reference workload's prompt and checks
// the rendered text and the 6,435 ids against transformers' golden output.
func TestReferencePrompt(t *testing.T) {
	article, err := os.ReadFile(testdata.Path(t, "llama2_article.txt"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join("..", "tokenizer", "testdata", "golden_tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		SeedPrompt struct {
			Chat     []Message `json:"chat"`
			Rendered string    `json:"rendered"`
			IDs      []int     `json:"ids"`
		} `json:"seed_prompt"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	tmpl, err := LoadFS(assets.OpenHermes, "openhermes")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.LoadFS(assets.OpenHermes, "openhermes")
	if err != nil {
		t.Fatal(err)
	}
	msgs := SummaryMessages(DefaultSystem, DefaultInstruction, string(article))
	if !slices.Equal(msgs, g.SeedPrompt.Chat) {
		t.Errorf("SummaryMessages differ from the golden chat")
	}
	text, err := tmpl.Render(msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	if text != g.SeedPrompt.Rendered {
		t.Errorf("rendered prompt differs from golden (%d vs %d bytes)", len(text), len(g.SeedPrompt.Rendered))
	}
	ids, err := Encode(tmpl, tok, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.SeedPrompt.IDs) != 6435 || !slices.Equal(ids, g.SeedPrompt.IDs) {
		t.Errorf("got %d ids, want the golden %d", len(ids), len(g.SeedPrompt.IDs))
	}
}

// TestTemplates renders templates against Python jinja2 configured as
// transformers configures it (testdata/gen.py), raise_exception included.
func TestTemplates(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "templates.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Templates map[string]string    `json:"templates"`
		Convs     map[string][]Message `json:"convs"`
		Cases     []struct {
			Template string `json:"template"`
			Conv     string `json:"conv"`
			AGP      bool   `json:"agp"`
			Out      string `json:"out"`
			Error    string `json:"error"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	errors := 0
	for _, c := range e.Cases {
		tmpl, err := New("test.jinja", e.Templates[c.Template], "<s>", "</s>")
		if err != nil {
			t.Fatalf("%s: %v", c.Template, err)
		}
		got, err := tmpl.Render(e.Convs[c.Conv], c.AGP)
		switch {
		case c.Error != "":
			errors++
			if err == nil || !strings.Contains(err.Error(), c.Error) {
				t.Errorf("%s/%s: error %v, want one saying %q", c.Template, c.Conv, err, c.Error)
			}
		case err != nil:
			t.Errorf("%s/%s: %v", c.Template, c.Conv, err)
		case got != c.Out:
			t.Errorf("%s/%s/%v: got %q, want %q", c.Template, c.Conv, c.AGP, got, c.Out)
		}
	}
	if errors == 0 || len(e.Cases) < 30 {
		t.Errorf("%d cases, %d raising: testdata/templates.json lost its cases", len(e.Cases), errors)
	}
}

func writeFolder(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, s := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestNoTemplate(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"no config":   {},
		"no template": {"tokenizer_config.json": `{"bos_token": "<s>", "eos_token": "</s>"}`},
		"null":        {"tokenizer_config.json": `{"chat_template": null}`},
	} {
		tmpl, err := Load(writeFolder(t, files))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tmpl.HasTemplate() {
			t.Errorf("%s: HasTemplate", name)
		}
		if _, err := tmpl.Render([]Message{{"user", "x"}}, true); err == nil {
			t.Errorf("%s: Render without a template did not fail", name)
		}
		got, err := tmpl.Prompt(SummaryMessages("sys", " I.", "A."))
		if want := DefaultPreamble + "A. I."; err != nil || got != want {
			t.Errorf("%s: Prompt = %q, %v; want %q", name, got, err, want)
		}
	}
}

func TestLoadForms(t *testing.T) {
	msgs := []Message{{"user", "hi"}}
	for _, c := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"list", map[string]string{"tokenizer_config.json": `{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "{{ bos_token }}D{{ messages[0].content }}"}], "bos_token": {"content": "<B>", "lstrip": false}}`}, "<B>Dhi"},
		{"jinja file", map[string]string{"chat_template.jinja": "J{{ eos_token }}", "tokenizer_config.json": `{"eos_token": "<E>"}`}, "J<E>"},
		{"json file", map[string]string{"chat_template.json": `{"chat_template": "K{% if add_generation_prompt %}!{% endif %}"}`}, "K!"},
	} {
		tmpl, err := Load(writeFolder(t, c.files))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := tmpl.Render(msgs, true)
		if err != nil || got != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	for _, c := range []struct {
		name, config, want string
	}{
		{"bad json", `{"chat_template": `, "tokenizer_config.json"},
		{"no default", `{"chat_template": [{"name": "tool_use", "template": "T"}]}`, `no template named "default"`},
		{"bad type", `{"chat_template": 3}`, "chat_template"},
		{"bad token", `{"chat_template": "x", "bos_token": 3}`, "bos_token"},
		{"bad syntax", `{"chat_template": "{% for m in messages %}"}`, "does not compile"},
	} {
		dir := writeFolder(t, map[string]string{"tokenizer_config.json": c.config})
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "tokenizer_config.json") {
			t.Errorf("%s: error %v, want one naming tokenizer_config.json and saying %q", c.name, err, c.want)
		}
	}
}
