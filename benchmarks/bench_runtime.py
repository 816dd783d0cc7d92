"""Benchmark a bundle against its baselines in one run (same texts, same process).

    python benchmarks/bench_runtime.py BUNDLE --data DEV.tsv [--run RUN_DIR] [--out benchmarks/results]

Writes <stem>.json, <stem>.md and <stem>.png. With --run, adds the teacher in
PyTorch and as one ONNX graph, the student as one ONNX graph, and the student
in PyTorch with per-sample exit at batch 1. The same as `edgekd bench`.
"""

from __future__ import annotations

import argparse
import sys

from edgekd.baselines import DEFAULT_SPEEDS, run_bench


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("--data", required=True, help="labelled file (e.g. SST-2 dev.tsv)")
    parser.add_argument("--run", default=None, help="run folder (adds teacher and full-graph baselines)")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--stem", default="bench")
    parser.add_argument("--speeds", default=",".join(map(str, DEFAULT_SPEEDS)))
    parser.add_argument("--latency-texts", type=int, default=200)
    parser.add_argument("--limit", type=int, default=None, help="use the first N texts only")
    parser.add_argument("--also", action="append", default=[], help="another bundle of the same student (int8)")
    args = parser.parse_args(argv)
    speeds = [float(s) for s in args.speeds.split(",") if s.strip()]
    run_bench(args.bundle, args.data, args.out, args.run, speeds, args.latency_texts, args.limit, args.stem,
              also=args.also, log=lambda m: print(m, file=sys.stderr))


if __name__ == "__main__":
    main()
