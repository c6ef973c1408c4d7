"""Summarizes Nsight Compute's per-instruction source counters (the CSV of
`ncu --page source --csv --print-source sass`, one kernel launch): the
instructions a warp executed by opcode, per unit of work when a divisor is
given (the key tiles of a block, say), and for each stall reason the
opcodes its samples fell on. Usage: ncusrc.py source.csv [per]."""
import collections
import csv
import re
import sys


def number(s):
    try:
        return float(s.replace(",", ""))
    except ValueError:
        return 0.0


def main():
    rows = list(csv.reader(open(sys.argv[1])))
    per = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    head = next(i for i, r in enumerate(rows) if r and r[0] == "Address")
    names = rows[head]
    col = {n: i for i, n in enumerate(names)}
    data = [r for r in rows[head + 1:] if len(r) == len(names)]
    stalls = [n for n in names if n.startswith("stall_") and "Not Issued" not in n]
    executed = collections.Counter()
    sampled = collections.Counter()
    by_stall = collections.defaultdict(collections.Counter)
    for r in data:
        sass = re.sub(r"^@!?U?P\w+\s+", "", r[col["Source"]].strip())
        op = sass.split()[0].split(".")[0] if sass else "?"
        executed[op] += number(r[col["Instructions Executed"]])
        sampled[op] += number(r[col["Warp Stall Sampling (All Samples)"]])
        for s in stalls:
            by_stall[s][op] += number(r[col[s]])
    warps = number(data[0][col["Instructions Executed"]])  # the entry runs once a warp
    total = sum(executed.values())
    samples = sum(sampled.values()) or 1
    print(f"{total / warps:.0f} instructions a warp ({warps:.0f} warps), {total / warps / per:.1f} a unit of {per:g}")
    print(f"{'opcode':10s} {'a unit':>8s} {'samples':>8s}")
    for op, n in executed.most_common(30):
        print(f"{op:10s} {n / warps / per:8.1f} {100 * sampled[op] / samples:7.1f}%")
    print("stall samples by reason, and the opcodes they fell on:")
    for s in sorted(stalls, key=lambda s: -sum(by_stall[s].values())):
        t = sum(by_stall[s].values())
        if t < samples / 100:
            continue
        top = ", ".join(f"{op} {100 * v / t:.0f}%" for op, v in by_stall[s].most_common(4))
        print(f"  {s[6:]:16s} {100 * t / samples:5.1f}%  {top}")


if __name__ == "__main__":
    main()
