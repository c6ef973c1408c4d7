#!/usr/bin/env bash
# Run on the GPU machine from the repository root, after pack.sh here:
# every figure of issue 5 in one call, on one card. Writes into $OUT (or
# the folder given): smi.txt, run.txt (cudarun: greedy and lookup end to
# end), hf.txt/hf.json (transformers), bench.txt/bench.json (summarize
# bench with the replay and the ceiling), suite.txt (the whole GPU suite,
# skipped with SUITE=0). Each step writes its file itself, so a step cut
# off by a time limit keeps what it printed.
set -uo pipefail
out=${1:-${OUT:?give a folder or set OUT}}
pack=${PACK:-.gpup/pack.tar.xz}
x=/tmp/x
m=${MODEL:-/tmp/oh}
rm -rf "$x" && tar xJf "$pack" -C /tmp || exit 1
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem,power.limit --format=csv > "$out/smi.txt"
test -d "$m" || "$x/bin/summarize" synth --out "$m" --shape openhermes --seed 1 || exit 1
mkdir -p /tmp/ours
"$x/bin/cudarun" --model "$m" --prompt "$x/prompt_ids.json" --out /tmp/ours --new 128 --workload 512 > "$out/run.txt" 2>&1
python3 "$x/hfcompare.py" --model "$m" --prompt "$x/prompt_ids.json" --ours /tmp/ours --time 512 --out "$out/hf.json" > "$out/hf.txt" 2>&1
tf=$(python3 -c "import json,sys; print(next(r['throughput_tokens_per_s'] for r in json.load(open(sys.argv[1]))['transformers_runs'] if r['strategy'] == 'greedy'))" "$out/hf.json" 2>/dev/null || echo 0)
"$x/bin/summarize" bench --engine cuda --model "$m" --article "$x/td/llama2_article.txt" \
  --replay "$x/td/pld-replay/cnn_dm_outputs.json,$x/td/pld-replay/mt_bench_output.json" --replay-cases 50 \
  --continuation "$x/reference_continuation.txt" --lookup-tokens 7 --ceiling --transformers "$tf" \
  --json-out "$out/bench.json" > "$out/bench.txt" 2>&1
if [ "${SUITE:-1}" != 0 ]; then
  # The tests embed the kernel sources they read; cuda/ is where `go test` runs them.
  (cd cuda && BRIEF_TESTDATA=$x/td BRIEF_SYNTH_DIR=$m "$x/bin/cuda.test" -test.v -test.timeout 300s > "$out/suite.txt" 2>&1)
  echo "suite: $(grep -c '^--- PASS' "$out/suite.txt") pass, $(grep -c '^--- SKIP' "$out/suite.txt") skip, $(grep -c '^--- FAIL' "$out/suite.txt") fail"
fi
grep -h "Throughput\|decode" "$out/run.txt"; tail -1 "$out/hf.txt"; sed -n '/against issue 5/,$p' "$out/bench.txt"
