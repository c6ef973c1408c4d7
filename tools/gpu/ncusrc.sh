#!/usr/bin/env bash
# Run on the GPU machine after pack.sh here (the pack unpacked and the
# synthetic model at /tmp/oh, as figures.sh leaves them): Nsight Compute's
# source counters on one launch of the kernels matching REGEX inside a
# prefill (BenchmarkGemmEnergy), then ncusrc.py's summary of them:
# instructions a warp by opcode and where the warps stalled. Writes
# OUT/ncu.ncu-rep, OUT/source.csv (per SASS instruction) and
# OUT/summary.txt. SKIP launches of that kernel are passed over first
# (default 350: well into the prefill, past the first chunks).
#   tools/gpu/ncusrc.sh attn_prefill_wg_direct $OUT 66
# (66: the key tiles a block loops over, to print counts a tile.)
set -uo pipefail
re=$1
out=$2
per=${3:-1}
skip=${SKIP:-350}
x=/tmp/x
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
test -n "$ncu" || { echo "ncusrc: no ncu on this machine"; exit 1; }
(cd "$x" && BRIEF_TESTDATA=$x/td BRIEF_SYNTH_DIR=${MODEL:-/tmp/oh} timeout 300 "$ncu" --clock-control none \
  -k "regex:$re" -s "$skip" -c 1 --section SpeedOfLight --section WarpStateStats --section SourceCounters \
  --import-source no -o "$out/ncu" bin/cuda.test -test.run XXX -test.bench GemmEnergy -test.benchtime 1x) \
  > "$out/ncu_run.txt" 2>&1 || { tail -5 "$out/ncu_run.txt"; exit 1; }
"$ncu" -i "$out/ncu.ncu-rep" --page source --csv --print-source sass > "$out/source.csv"
python3 "$(dirname "$0")/ncusrc.py" "$out/source.csv" "$per" | tee "$out/summary.txt"
