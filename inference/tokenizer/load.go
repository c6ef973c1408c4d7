package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
)

// Load reads the tokenizer of the model folder dir: tokenizer.json if
// present, else tokenizer.model with added_tokens.json, and in both cases
// tokenizer_config.json and special_tokens_map.json where present.
func Load(dir string) (*Tokenizer, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("model folder %s: %w", dir, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("model folder %s: not a folder", dir)
	}
	return load(os.DirFS(dir), ".", func(name string) string { return filepath.Join(dir, name) })
}

// LoadFS is Load on the folder dir of fsys (an embedded model folder, say).
func LoadFS(fsys fs.FS, dir string) (*Tokenizer, error) {
	return load(fsys, dir, func(name string) string { return path.Join(dir, name) })
}

// maxFileSize bounds what is read of any tokenizer file.
const maxFileSize = 256 << 20

func load(fsys fs.FS, dir string, show func(string) string) (*Tokenizer, error) {
	read := func(name string) ([]byte, error) {
		f, err := fsys.Open(path.Join(dir, name))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			return nil, fmt.Errorf("%s: %w", show(name), err)
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", show(name), err)
		}
		if len(data) > maxFileSize {
			return nil, fmt.Errorf("%s: larger than %d MiB, too large for a tokenizer file", show(name), maxFileSize>>20)
		}
		return data, nil
	}
	cfg, err := readConfig(read, show)
	if err != nil {
		return nil, err
	}
	if data, err := read("tokenizer.json"); err == nil {
		return fromJSON(show("tokenizer.json"), data, cfg)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	data, err := read("tokenizer.model")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: no tokenizer.json or tokenizer.model", show("."))
	}
	if err != nil {
		return nil, err
	}
	return fromSentencePiece(show("tokenizer.model"), data, cfg)
}

// config is what tokenizer_config.json, special_tokens_map.json and
// added_tokens.json say about the tokenizer.
type config struct {
	bos, eos       *string // token contents
	addBOS         *bool
	legacy         *bool
	addPrefixSpace *bool
	added          []addedToken // added_tokens_decoder and added_tokens.json
	file           string       // tokenizer_config.json's path, for errors
}

// tokenSpec is a special token as the config files write it: a string or
// an AddedToken object.
type tokenSpec struct{ content *string }

func (s *tokenSpec) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		s.content = &str
		return nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("want a string or an object with content")
	}
	s.content = obj.Content
	return nil
}

type addedJSON struct {
	ID         *int   `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	Lstrip     bool   `json:"lstrip"`
	Rstrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

func readConfig(read func(string) ([]byte, error), show func(string) string) (*config, error) {
	cfg := &config{file: show("tokenizer_config.json")}
	var tc struct {
		BOS            *tokenSpec           `json:"bos_token"`
		EOS            *tokenSpec           `json:"eos_token"`
		AddBOS         *bool                `json:"add_bos_token"`
		Legacy         *bool                `json:"legacy"`
		AddPrefixSpace *bool                `json:"add_prefix_space"`
		Decoder        map[string]addedJSON `json:"added_tokens_decoder"`
	}
	if data, err := read("tokenizer_config.json"); err == nil {
		if err := json.Unmarshal(data, &tc); err != nil {
			return nil, fmt.Errorf("%s: %w", show("tokenizer_config.json"), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var sm struct {
		BOS *tokenSpec `json:"bos_token"`
		EOS *tokenSpec `json:"eos_token"`
	}
	if data, err := read("special_tokens_map.json"); err == nil {
		if err := json.Unmarshal(data, &sm); err != nil {
			return nil, fmt.Errorf("%s: %w", show("special_tokens_map.json"), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	// tokenizer_config.json wins; a null there counts as absent.
	pick := func(a, b *tokenSpec) *string {
		if a != nil {
			return a.content
		}
		if b != nil {
			return b.content
		}
		return nil
	}
	cfg.bos, cfg.eos = pick(tc.BOS, sm.BOS), pick(tc.EOS, sm.EOS)
	cfg.addBOS, cfg.legacy, cfg.addPrefixSpace = tc.AddBOS, tc.Legacy, tc.AddPrefixSpace

	keys := make([]string, 0, len(tc.Decoder))
	for k := range tc.Decoder {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		id, err := strconv.Atoi(k)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("%s: added_tokens_decoder key %q is not a token id", show("tokenizer_config.json"), k)
		}
		a := tc.Decoder[k]
		cfg.added = append(cfg.added, addedToken{id: id, content: a.Content, special: a.Special,
			lstrip: a.Lstrip, rstrip: a.Rstrip, singleWord: a.SingleWord, normalized: a.Normalized})
	}
	if data, err := read("added_tokens.json"); err == nil {
		var m map[string]int
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", show("added_tokens.json"), err)
		}
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if m[k] < 0 {
				return nil, fmt.Errorf("%s: %q has negative id %d", show("added_tokens.json"), k, m[k])
			}
			cfg.added = append(cfg.added, addedToken{id: m[k], content: k})
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return cfg, nil
}

// finish fills in what both file formats share: the id table, added tokens
// (the config's after the tokenizer's own, first one for an id wins),
// matchers, and BOS/EOS.
func (t *Tokenizer) finish(file string, added []addedToken, cfg *config, bos, eos int, addBOS bool) error {
	seen := map[int]bool{}
	var all []addedToken
	for _, list := range [][]addedToken{added, cfg.added} {
		for _, a := range list {
			if seen[a.id] || a.content == "" {
				continue
			}
			seen[a.id] = true
			all = append(all, a)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].id < all[j].id })
	t.added = all

	n := len(t.vocab) + len(all)
	limit := 2*n + 256 // ids must be dense enough that the id table stays small
	maxID := -1
	for p, id := range t.vocab {
		if id < 0 || id >= limit {
			return fmt.Errorf("%s: vocab id %d of %q is out of range (%d entries)", file, id, p, n)
		}
		maxID = max(maxID, id)
	}
	for _, a := range all {
		if a.id >= limit {
			return fmt.Errorf("%s: added token %q has id %d, out of range (%d entries)", file, a.content, a.id, n)
		}
		maxID = max(maxID, a.id)
	}
	t.pieces = make([]string, maxID+1)
	for p, id := range t.vocab {
		t.pieces[id] = p
	}
	t.special = map[int]bool{}
	t.addedID = map[string]int{}
	var raw, normed []*addedToken
	for i := range t.added {
		a := &t.added[i]
		t.pieces[a.id] = a.content
		if _, dup := t.addedID[a.content]; !dup {
			t.addedID[a.content] = a.id
		}
		if a.special {
			t.special[a.id] = true
		}
		if a.normalized {
			// tokenizers matches and decodes such a token as its
			// normalized content ("▁<tok>" under the legacy normalizer).
			cp := *a
			cp.content = t.normalize(a.content)
			t.pieces[a.id] = cp.content
			normed = append(normed, &cp)
		} else {
			raw = append(raw, a)
		}
	}
	t.raw, t.normed = newMatcher(raw), newMatcher(normed)

	resolve := func(what string, s *string, fallback int) (int, error) {
		if s == nil {
			return fallback, nil
		}
		id, ok := t.TokenID(*s)
		if !ok {
			return 0, fmt.Errorf("%s: %s %q is not in the vocabulary", cfg.file, what, *s)
		}
		return id, nil
	}
	var err error
	if t.bos, err = resolve("bos_token", cfg.bos, bos); err != nil {
		return err
	}
	if t.eos, err = resolve("eos_token", cfg.eos, eos); err != nil {
		return err
	}
	for _, id := range []int{t.bos, t.eos} {
		if id >= len(t.pieces) {
			return fmt.Errorf("%s: special token id %d is out of range (%d ids)", file, id, len(t.pieces))
		}
	}
	t.addBOS = addBOS
	if cfg.addBOS != nil {
		t.addBOS = *cfg.addBOS
	}
	if t.bos < 0 {
		t.addBOS = false
	}
	return nil
}

// newBPE returns a model over vocab with byte pieces looked up.
func newBPE(vocab map[string]int) bpeModel {
	m := bpeModel{vocab: vocab, merges: map[uint64]merge{}, unk: -1}
	for b := 0; b < 256; b++ {
		m.byteIDs[b] = -1
		if id, ok := vocab[byteToken(byte(b))]; ok {
			m.byteIDs[b] = id
		}
	}
	return m
}
