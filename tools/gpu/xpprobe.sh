#!/usr/bin/env bash
# Builds cuda.test with awq_gemm_xp built as probe BITS (BRIEF_XP_PROBE in
# awq_gemm_xp.sm90a.cu: parts of the prefill GEMM's work taken away, so its
# outputs are wrong) for BenchmarkGemmEnergy on the GPU machine, e.g.
#   tools/gpu/xpprobe.sh 1 .gpup/cuda.test.p1
# then there: cuda.test.p1 -test.run XXX -test.bench GemmEnergy -test.benchtime 15x
# The shipped PTX is put back afterwards.
set -euo pipefail
bits=$1
out=$2
cd "$(dirname "$0")/../.."
ptx=cuda/fatbin/awq_gemm_xp.sm90a.ptx
keep=$(mktemp)
cp "$ptx" "$keep"
trap 'cp "$keep" "$ptx"; rm -f "$keep"' EXIT
nvcc -O3 -std=c++17 -arch=compute_90 -ptx -DBRIEF_XP_PROBE="$bits" -o "$ptx.tmp" cuda/awq_gemm_xp.sm90a.cu
# As the Makefile's sm90a rule does.
sed -e 's/^\.version 7\.[0-9]*$/.version 8.0/' -e 's/^\.target sm_90$/.target sm_90a/' "$ptx.tmp" > "$ptx"
rm -f "$ptx.tmp"
go test -c -ldflags="-s -w" -o "$out" ./cuda
