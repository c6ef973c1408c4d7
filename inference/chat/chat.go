// Package chat renders a model's chat template (tokenizer_config.json's
// chat_template) the way transformers does, and builds the prompt of
// Brief's reference workload.
//
// Templates run on github.com/ardanlabs/jinja, a Jinja engine written for
// Hugging Face chat templates: like transformers' environment it applies
// trim_blocks and lstrip_blocks and provides raise_exception; we pass
// messages, add_generation_prompt and the special tokens (bos_token,
// eos_token, unk_token, pad_token) as strings from the config.
package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/ardanlabs/jinja"

	"github.com/briefapp/brief/inference/tokenizer"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"` // "system", "user" or "assistant"
	Content string `json:"content"`
}

// Template is a model's chat template, or the lack of one: a model without
// a template takes its prompt as raw text (see Prompt).
type Template struct {
	source string
	tmpl   *jinja.Template // nil without a template
	tokens map[string]any  // bos_token, eos_token, ... as strings
	file   string          // where the template came from, for errors
}

// Load reads the chat template of the model folder dir: tokenizer_config.json's
// chat_template (a string, or a list of {name, template} of which "default"
// is used), else chat_template.jinja, else chat_template.json. A folder
// without any has no template, which is not an error: see HasTemplate.
func Load(dir string) (*Template, error) {
	return load(os.DirFS(dir), ".", func(n string) string { return filepath.Join(dir, n) })
}

// LoadFS is Load on the folder dir of fsys.
func LoadFS(fsys fs.FS, dir string) (*Template, error) {
	return load(fsys, dir, func(n string) string { return path.Join(dir, n) })
}

func load(fsys fs.FS, dir string, show func(string) string) (*Template, error) {
	read := func(name string) ([]byte, bool, error) {
		b, err := fs.ReadFile(fsys, path.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", show(name), err)
		}
		return b, true, nil
	}
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
		BOS          json.RawMessage `json:"bos_token"`
		EOS          json.RawMessage `json:"eos_token"`
		UNK          json.RawMessage `json:"unk_token"`
		PAD          json.RawMessage `json:"pad_token"`
	}
	t := &Template{tokens: map[string]any{}}
	cfgFile := show("tokenizer_config.json")
	b, ok, err := read("tokenizer_config.json")
	if err != nil {
		return nil, err
	}
	if ok {
		if err := json.Unmarshal(b, &cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", cfgFile, err)
		}
	}
	for name, raw := range map[string]json.RawMessage{"bos_token": cfg.BOS, "eos_token": cfg.EOS, "unk_token": cfg.UNK, "pad_token": cfg.PAD} {
		s, err := tokenString(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", cfgFile, name, err)
		}
		if s != nil {
			t.tokens[name] = *s
		}
	}
	src, err := templateSource(cfg.ChatTemplate)
	if err != nil {
		return nil, fmt.Errorf("%s: chat_template: %w", cfgFile, err)
	}
	t.file = cfgFile
	if src == "" {
		if b, ok, err := read("chat_template.jinja"); err != nil {
			return nil, err
		} else if ok {
			src, t.file = string(b), show("chat_template.jinja")
		}
	}
	if src == "" {
		if b, ok, err := read("chat_template.json"); err != nil {
			return nil, err
		} else if ok {
			var ct struct {
				ChatTemplate json.RawMessage `json:"chat_template"`
			}
			t.file = show("chat_template.json")
			if err := json.Unmarshal(b, &ct); err != nil {
				return nil, fmt.Errorf("%s: %w", t.file, err)
			}
			if src, err = templateSource(ct.ChatTemplate); err != nil {
				return nil, fmt.Errorf("%s: chat_template: %w", t.file, err)
			}
		}
	}
	if src == "" {
		return t, nil
	}
	if err := t.compile(src); err != nil {
		return nil, err
	}
	return t, nil
}

// New returns a template from its source and the special tokens it may
// use; file names it in errors.
func New(file, source, bos, eos string) (*Template, error) {
	t := &Template{file: file, tokens: map[string]any{"bos_token": bos, "eos_token": eos}}
	if err := t.compile(source); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Template) compile(src string) error {
	tmpl, err := jinja.Compile(src)
	if err != nil {
		return fmt.Errorf("%s: chat_template does not compile: %w", t.file, err)
	}
	t.source, t.tmpl = src, tmpl
	return nil
}

// tokenString reads a special token written as a string or as an
// AddedToken object; nil where absent or null.
func tokenString(raw json.RawMessage) (*string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return &s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return nil, fmt.Errorf("want a string or an object with content")
	}
	return obj.Content, nil
}

// templateSource reads chat_template: a string, or a list of named
// templates of which "default" is taken.
func templateSource(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var list []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return "", fmt.Errorf("want a string or a list of {name, template}")
	}
	names := []string{}
	for _, e := range list {
		if e.Name == "default" {
			return e.Template, nil
		}
		names = append(names, e.Name)
	}
	return "", fmt.Errorf("no template named \"default\" among %q", names)
}

// HasTemplate reports whether the model has a chat template.
func (t *Template) HasTemplate() bool { return t != nil && t.tmpl != nil }

// Source returns the template's Jinja source ("" without a template).
func (t *Template) Source() string {
	if t == nil {
		return ""
	}
	return t.source
}

// Render renders msgs through the template. With addGenerationPrompt the
// text ends where the assistant's answer begins. A template's
// raise_exception becomes an error.
func (t *Template) Render(msgs []Message, addGenerationPrompt bool) (string, error) {
	if !t.HasTemplate() {
		return "", fmt.Errorf("chat: the model has no chat template")
	}
	list := make([]any, len(msgs))
	for i, m := range msgs {
		list[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	data := map[string]any{"messages": list, "add_generation_prompt": addGenerationPrompt}
	for k, v := range t.tokens {
		data[k] = v
	}
	out, err := t.tmpl.Render(data)
	if err != nil {
		return "", fmt.Errorf("%s: chat_template: %w", t.file, err)
	}
	return out, nil
}

// Prompt returns the text the model is given for msgs: the rendered
// template with the generation prompt, or, for a model without a template,
// the raw contents of the user messages, joined by blank lines (such a model
// has no place for a system prompt).
func (t *Template) Prompt(msgs []Message) (string, error) {
	if t.HasTemplate() {
		return t.Render(msgs, true)
	}
	var s string
	for _, m := range msgs {
		if m.Role != "user" || m.Content == "" {
			continue
		}
		if s != "" {
			s += "\n\n"
		}
		s += m.Content
	}
	return s, nil
}

// Encode returns the prompt ids of msgs: Prompt tokenized with BOS where
// the tokenizer config asks for it.
func Encode(t *Template, tok *tokenizer.Tokenizer, msgs []Message) ([]int, error) {
	text, err := t.Prompt(msgs)
	if err != nil {
		return nil, err
	}
	return tok.Encode(text, tok.AddBOS()), nil
}
