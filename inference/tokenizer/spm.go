package tokenizer

import (
	"fmt"
	"math"
	"sort"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// SentencePiece piece types (sentencepiece_model.proto).
const (
	spNormal      = 1
	spUnknown     = 2
	spControl     = 3
	spUserDefined = 4
	spByte        = 6
)

// spModel is what we read of a SentencePiece ModelProto.
type spModel struct {
	pieces         []spPiece
	modelType      int // TrainerSpec.model_type: 1 unigram, 2 BPE
	byteFallback   bool
	unk, bos, eos  int
	addDummyPrefix bool
}

type spPiece struct {
	piece string
	score float32
	typ   int
}

// parseSentencePiece decodes the fields of a ModelProto we need: pieces
// (1), trainer_spec (2) and normalizer_spec (3).
func parseSentencePiece(data []byte) (*spModel, error) {
	m := &spModel{modelType: 1, unk: 0, bos: 1, eos: 2, addDummyPrefix: true}
	err := walk(data, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			p := spPiece{typ: spNormal}
			err := walk(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch {
				case num == 1 && typ == protowire.BytesType:
					p.piece = string(v)
				case num == 2 && typ == protowire.Fixed32Type:
					p.score = math.Float32frombits(uint32(x))
				case num == 3 && typ == protowire.VarintType:
					p.typ = int(int32(x))
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("piece %d: %w", len(m.pieces), err)
			}
			m.pieces = append(m.pieces, p)
		case num == 2 && typ == protowire.BytesType:
			return walk(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				if typ != protowire.VarintType {
					return nil
				}
				switch num {
				case 3:
					m.modelType = int(int32(x))
				case 35:
					m.byteFallback = x != 0
				case 40:
					m.unk = int(int32(x))
				case 41:
					m.bos = int(int32(x))
				case 42:
					m.eos = int(int32(x))
				}
				return nil
			})
		case num == 3 && typ == protowire.BytesType:
			return walk(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				if num == 3 && typ == protowire.VarintType {
					m.addDummyPrefix = x != 0
				}
				return nil
			})
		}
		return nil
	})
	return m, err
}

// walk calls f for each field of a protobuf message: v holds the bytes of a
// length-delimited field, x the value of a varint or fixed field.
func walk(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad field tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x32 uint32
			x32, n = protowire.ConsumeFixed32(b)
			x = uint64(x32)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// fromSentencePiece builds the tokenizer transformers' LlamaConverter makes
// of a tokenizer.model: BPE over the pieces with merges ordered by the
// merged piece's score, byte fallback, and the legacy normalizer (or, with
// legacy false in tokenizer_config.json, a Metaspace pre-tokenizer).
func fromSentencePiece(file string, data []byte, cfg *config) (*Tokenizer, error) {
	sp, err := parseSentencePiece(data)
	if err != nil {
		return nil, fmt.Errorf("%s: not a SentencePiece model: %w", file, err)
	}
	if len(sp.pieces) == 0 {
		return nil, fmt.Errorf("%s: no pieces", file)
	}
	if sp.modelType != 2 {
		names := map[int]string{1: "Unigram", 3: "Word", 4: "Char"}
		return nil, fmt.Errorf("%s: model_type %d (%s) is not supported (want BPE)", file, sp.modelType, names[sp.modelType])
	}
	vocab := make(map[string]int, len(sp.pieces))
	scores := make([]float32, len(sp.pieces))
	var added []addedToken
	hasBytes := false
	for i, p := range sp.pieces {
		if !utf8.ValidString(p.piece) {
			return nil, fmt.Errorf("%s: piece %d is not valid UTF-8", file, i)
		}
		if _, dup := vocab[p.piece]; !dup {
			vocab[p.piece] = i
		}
		scores[i] = p.score
		switch {
		case p.typ == spByte:
			hasBytes = true
		case p.typ == spUserDefined:
			added = append(added, addedToken{id: i, content: p.piece})
		case i == sp.unk || i == sp.bos || i == sp.eos:
			added = append(added, addedToken{id: i, content: p.piece, special: true})
		}
	}
	t := &Tokenizer{vocab: vocab, bos: -1, eos: -1}
	t.bpe = newBPE(vocab)
	t.bpe.byteFallback = sp.byteFallback || hasBytes
	t.bpe.fuseUnk = true
	if sp.unk >= 0 && sp.unk < len(sp.pieces) {
		t.bpe.unk = sp.unk
	}
	for rank, mg := range spMerges(sp.pieces, vocab, scores) {
		t.bpe.merges[pairKey(mg[0], mg[1])] = merge{rank: int32(rank), id: mg[2]}
	}

	prefix := sp.addDummyPrefix
	if cfg.addPrefixSpace != nil {
		prefix = *cfg.addPrefixSpace
	}
	if cfg.legacy == nil || *cfg.legacy {
		if prefix {
			t.norm = append(t.norm, normStep{prepend: "▁"})
		}
		t.norm = append(t.norm, normStep{from: " ", to: "▁"})
	} else {
		t.meta = &metaspace{replacement: "▁", prepend: "first", split: false}
		if !prefix {
			t.meta.prepend = "never"
		}
	}
	t.dec = []decStep{{kind: decReplace, from: "▁", to: " "}, {kind: decByteFallback}, {kind: decFuse}}
	if prefix {
		t.dec = append(t.dec, decStep{kind: decStrip, content: ' ', start: 1})
	}
	inRange := func(id int) int {
		if id >= 0 && id < len(sp.pieces) {
			return id
		}
		return -1
	}
	if err := t.finish(file, added, cfg, inRange(sp.bos), inRange(sp.eos), true); err != nil {
		return nil, err
	}
	return t, nil
}

// spMerges derives BPE merges from SentencePiece pieces as transformers'
// SentencePieceExtractor does: every split of a piece into two pieces of
// the vocabulary is a merge; merges are ordered by the merged piece's score
// (highest first), then by the ids of the left and right pieces. Each entry
// is {left, right, merged} ids.
func spMerges(pieces []spPiece, vocab map[string]int, scores []float32) [][3]int32 {
	type cand struct {
		l, r, m int32
		score   float32
	}
	var all []cand
	for id, p := range pieces {
		if vocab[p.piece] != id {
			continue // a duplicate piece; the first id holds it
		}
		s := p.piece
		for i := range s {
			if i == 0 {
				continue
			}
			l, okL := vocab[s[:i]]
			r, okR := vocab[s[i:]]
			if okL && okR {
				all = append(all, cand{int32(l), int32(r), int32(id), scores[id]})
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if a.score != b.score {
			return a.score > b.score
		}
		if a.m != b.m {
			return a.m < b.m
		}
		if a.l != b.l {
			return a.l < b.l
		}
		return a.r < b.r
	})
	out := make([][3]int32, len(all))
	for i, c := range all {
		out[i] = [3]int32{c.l, c.r, c.m}
	}
	return out
}
