package chat

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzTemplate compiles and renders arbitrary template sources, as a
// tokenizer_config.json from anywhere may hold: errors are fine, panics
// are not.
func FuzzTemplate(f *testing.F) {
	f.Add("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
	f.Add("{{ raise_exception('no') }}")
	f.Add("{% set ns = namespace(x=1) %}{% for m in messages if m.role != 'system' %}{{ m.content|tojson }}{{ loop.index0 % 2 }}{% endfor %}{{ bos_token * 3 }}")
	f.Add("{{ messages[1:][0]['content'].strip().split(' ')|join('-') }}")
	f.Fuzz(func(t *testing.T, src string) {
		tmpl, err := New("fuzz.jinja", src, "<s>", "</s>")
		if err != nil {
			return
		}
		tmpl.Render([]Message{{"system", "s"}, {"user", "u v"}, {"assistant", "a"}}, true)
	})
}

// FuzzLoad reads arbitrary tokenizer_config.json bytes.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"chat_template": "{{ bos_token }}{{ messages[0].content }}", "bos_token": {"content": "<s>"}}`))
	f.Add([]byte(`{"chat_template": [{"name": "default", "template": "x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		tmpl, err := Load(dir)
		if err != nil {
			return
		}
		tmpl.Prompt([]Message{{"user", "u"}})
	})
}
