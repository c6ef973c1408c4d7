// Generates inference/tokenizer/testdata/crosscheck.json.gz: a few thousand
// varied strings with the ids and decoded text that Hugging Face's own
// tokenizers binding (npm "tokenizers") gives them on the OpenHermes
// tokenizer.json, plus random id sequences with their decoded text.
// Deterministic: the same inputs and seed give the same file.
//
//   cd tools/tokcheck && npm ci && node gen.js
//
// Reads ../../assets/openhermes/tokenizer.json and, for words, the shared
// reference article ($BRIEF_TESTDATA or ../../../shared/testdata); without
// the article it uses the vocabulary alone.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { Tokenizer } = require('tokenizers');

const repo = path.resolve(__dirname, '..', '..');
const tokFile = path.join(repo, 'assets', 'openhermes', 'tokenizer.json');
const shared = process.env.BRIEF_TESTDATA || path.join(repo, '..', 'shared', 'testdata');
const out = path.join(repo, 'inference', 'tokenizer', 'testdata', 'crosscheck.json.gz');
const N_TEXT = 3600;
const N_IDS = 600;
const N_VARIANT = 400;

// Variants of the tokenizer.json: top-level keys replaced (added_tokens
// given as per-content flag overrides), each checked on N_VARIANT texts.
const metaspaceDecoder = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true };
const variants = {
  // The newer layout (transformers with legacy=false).
  metaspace_first: { normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false } },
  metaspace_always_split: { normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true }, decoder: metaspaceDecoder },
  // Added-token flags.
  token_flags: {
    added_tokens: {
      '<|im_end|>': { lstrip: true },
      '<|im_start|>': { rstrip: true },
      '</s>': { single_word: true },
      '<unk>': { lstrip: true, rstrip: true },
    },
  },
  // A token matched on normalized text ("▁" for spaces, "▁" prepended).
  normalized_token: { added_tokens: { '<|im_start|>': { normalized: true }, '<|im_end|>': { normalized: true, special: false } } },
};

function applyVariant(base, v) {
  const j = JSON.parse(JSON.stringify(base));
  for (const [k, val] of Object.entries(v)) {
    if (k === 'added_tokens') {
      for (const t of j.added_tokens) Object.assign(t, val[t.content] || {});
    } else {
      j[k] = val;
    }
  }
  return j;
}

// mulberry32: a small seeded PRNG, so the file is reproducible.
let seed = 0x5eed2026;
function rand() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(rand() * n);
const pick = (a) => a[int(a.length)];

const json = JSON.parse(fs.readFileSync(tokFile, 'utf8'));
const vocab = Object.keys(json.model.vocab).sort();
const specials = json.added_tokens.map((t) => t.content);

let words = [];
const articleFile = path.join(shared, 'llama2_article.txt');
if (fs.existsSync(articleFile)) {
  words = [...new Set(fs.readFileSync(articleFile, 'utf8').split(/\s+/).filter(Boolean))].sort();
} else {
  console.error(`note: ${articleFile} not found; using vocabulary words only`);
}
if (words.length === 0) words = vocab.filter((p) => /^▁[a-zA-Z]+$/.test(p)).map((p) => p.slice(1));

const scripts = [
  '镇日本語のテキストと中文文本漢字かなカナ', // CJK
  '한국어 텍스트입니다', // Hangul
  'مرحبا بالعالم العربية', // Arabic (RTL)
  'שלום עולם עברית', // Hebrew (RTL)
  'Здравствуй, мир! Ёжик', // Cyrillic
  'नमस्ते दुनिया हिन्दी', // Devanagari
  'สวัสดีชาวโลก', // Thai
  'Ελληνικά γράμματα αβγ', // Greek
  'naïve café résumé Ümlaut ÆØÅ ß ﬁ ﬂ', // Latin accents, ligatures
  '∑∫√∞≠≤≥±×÷∂∆∇∈∉⊂⊃∀∃', // math
  '“quotes” ‘single’ — – … • † ‡ § ¶ © ® ™ € £ ¥', // punctuation
  '🦙👍🏽👨‍👩‍👧🇫🇷🇯🇵😀🤖🧠💡❤️✨🔥', // emoji, skin tone, ZWJ, flags, variation selector
  'Ꙋ𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 𓀀 𝄞', // rare planes
];
const combining = ['\u0301', '\u0308', '\u0327', '\u0336', '\u20dd', '\u0489', '\u200d', '\u200b', '\u200c', '\ufe0f', '\u00ad'];
const spaces = [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', '\u00a0', '\u3000', '\u2028', '\u2002', '\u202f', '\u0085', '\u000b', '\u000c'];
const code = [
  'def f(x):\n    return x**2  # square\n',
  'for (let i = 0; i < n; i++) { sum += a[i]; }',
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); }',
  'SELECT id, name FROM users WHERE age >= 18 ORDER BY name;',
  '```go\nfunc main() {\n\tfmt.Println("hi")\n}\n```',
  '<div class="x">&amp; &lt;tag&gt;</div>',
  '{"key": [1, 2.5, null, true], "nested": {"a": "b"}}',
  'https://example.com/path?q=1&r=%20x#frag',
  '$ ls -la | grep "\\.go$" > out.txt 2>&1',
  '| col | col2 |\n|-----|------|\n| 1 | 2 |',
];
const tricky = ['\ud83e', '<0x0A>', '<0xFF>', '<0xZZ>', '<0x', '▁', '▁▁', '▁the', '<', '>', '<|', '|>', '<|im_', '<s', '</s ', '<unk', '< s>'];

function piece() {
  const p = pick(vocab);
  return rand() < 0.7 ? p.replace(/▁/g, ' ') : p;
}
function word() {
  return pick(words);
}
function number() {
  switch (int(4)) {
    case 0: return String(int(100000));
    case 1: return (rand() * 1000).toFixed(int(5));
    case 2: return `${int(3000)}-${1 + int(12)}-${1 + int(28)}`;
    default: return String(int(10)).repeat(1 + int(12));
  }
}
function scriptRun() {
  const s = [...pick(scripts)];
  const a = int(s.length);
  return s.slice(a, a + 1 + int(8)).join('');
}
function loneChar() {
  switch (int(4)) {
    case 0: return String.fromCharCode(int(32)); // C0 controls, NUL included
    case 1: return String.fromCharCode(0x7f + int(0x21)); // DEL, C1 controls, Latin-1
    case 2: return String.fromCodePoint(0x100 + int(0x2f00)); // anything in the BMP's lower part
    default: return String.fromCodePoint(0x10000 + int(0x2ffff)); // supplementary planes
  }
}

function fragment() {
  const r = rand();
  if (r < 0.30) return word();
  if (r < 0.45) return piece();
  if (r < 0.52) return number();
  if (r < 0.62) return scriptRun();
  if (r < 0.67) return pick(specials);
  if (r < 0.72) return pick(tricky);
  if (r < 0.76) return pick(code);
  if (r < 0.82) return loneChar();
  if (r < 0.86) return pick(['a', 'e', 'x', 'o', 'é']) + pick(combining) + (rand() < 0.5 ? pick(combining) : '');
  return pick(spaces).repeat(1 + int(3));
}

function text() {
  const n = rand() < 0.1 ? 40 + int(300) : 1 + int(12);
  let s = rand() < 0.3 ? pick(spaces) : '';
  for (let i = 0; i < n; i++) {
    s += fragment();
    if (rand() < 0.6) s += rand() < 0.85 ? ' ' : pick(spaces);
  }
  return s;
}

async function main() {
  const tok = Tokenizer.fromFile(tokFile);
  const seen = new Set();
  const cases = [];
  const fixed = ['', ' ', '\n', '▁', '<s>', '<s><s>', '</s></s>', ' <|im_end|> ', '<|im_start|><|im_end|>', '\u0000', '\ufffd'];
  for (const t of fixed) seen.add(t);
  const texts = [...fixed];
  while (texts.length < N_TEXT) {
    const t = text();
    if (!seen.has(t)) {
      seen.add(t);
      texts.push(t);
    }
  }
  for (const t of texts) {
    const enc = await tok.encode(t, null, { addSpecialTokens: false });
    const ids = Array.from(enc.getIds());
    cases.push({ text: t, ids, decoded: await tok.decode(ids, false) });
  }
  // Random id sequences, dense in byte tokens (ids 3..258) so broken UTF-8
  // runs are decoded too.
  const size = tok.getVocabSize(true);
  for (let i = 0; i < N_IDS; i++) {
    const ids = [];
    const n = 1 + int(24);
    for (let j = 0; j < n; j++) ids.push(rand() < 0.6 ? 3 + int(256) : int(size));
    cases.push({ ids, decoded: await tok.decode(ids, false) });
  }
  for (const [name, v] of Object.entries(variants)) {
    const vt = Tokenizer.fromString(JSON.stringify(applyVariant(json, v)));
    for (let i = 0; i < N_VARIANT; i++) {
      const t = texts[(i * 7) % texts.length];
      const enc = await vt.encode(t, null, { addSpecialTokens: false });
      const ids = Array.from(enc.getIds());
      cases.push({ variant: name, text: t, ids, decoded: await vt.decode(ids, false) });
    }
  }
  const body = JSON.stringify({ generator: 'tools/tokcheck/gen.js', tokenizers: require('tokenizers/package.json').version, variants, cases });
  fs.writeFileSync(out, zlib.gzipSync(body, { level: 9 }));
  console.log(`${cases.length} cases (${texts.length} texts, ${N_IDS} id sequences, ${N_VARIANT} texts on each of ${Object.keys(variants).length} variants) -> ${path.relative(repo, out)}, ${fs.statSync(out).size} bytes`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
