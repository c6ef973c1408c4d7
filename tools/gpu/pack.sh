#!/usr/bin/env bash
# Packs what the GPU machine needs to measure the engine, for a machine
# without Go: the test binary, summarize and cudarun (built here), the
# Python cross-checks, the reference prompt's ids and the test data the GPU
# tests read. Writes .gpup/pack.tar.xz (ignored by git; carry .gpup), or
# the file given. figures.sh, run there, unpacks and uses it.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-.gpup/pack.tar.xz}
td=${BRIEF_TESTDATA:-../shared/testdata}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
x=$tmp/x
mkdir -p "$x/bin" "$x/td"
go test -c -ldflags="-s -w" -o "$x/bin/cuda.test" ./cuda
go build -ldflags="-s -w" -o "$x/bin/summarize" ./cmd/summarize
go build -ldflags="-s -w" -o "$x/bin/cudarun" ./tools/hfcompare/cudarun
cp tools/hfcompare/hfcompare.py tools/prefillref/prefillref.py cmd/summarize/testdata/reference_continuation.txt "$x/"
cp -r "$td/llama2_article.txt" "$td/pld-replay" "$td/stories260k-awq" "$td/openhermes-2.5-mistral-7b-awq" "$x/td/"
python3 - "$td/openhermes-2.5-mistral-7b-awq/golden_tokens.json" "$x/prompt_ids.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
json.dump({"ids": d["seed_prompt"]["ids"]}, open(sys.argv[2], "w"))
PY
mkdir -p "$(dirname "$out")"
tar -C "$tmp" -cJf "$out" x
ls -l "$out"
