"""How onnxruntime's threading settings change a staged bundle, each setting in its own process.

    python benchmarks/threading_study.py BUNDLE --full STUDENT_FULL.onnx --data DEV.tsv [--out benchmarks/results]

The staged runtime at speed 0 under every `threading` mode, beside the same
student as one graph with onnxruntime's default options: p50 latency at batch 1
and throughput at batch 32. A fresh process per setting, because onnxruntime's
global thread pool is process-wide and refuses other sessions once made.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODES = ["full graph (ORT defaults)", "stop", "global", "nospin", "spin"]


def measure(mode: str, bundle: str, full: str, data: str, texts: int) -> dict:
    import onnxruntime as ort

    import runtime
    from edgekd.data import read_labelled

    rows = read_labelled(data).texts
    model = runtime.load(bundle, threading="stop" if mode.startswith("full") else mode)
    if mode.startswith("full"):
        session = ort.InferenceSession(full, providers=["CPUExecutionProvider"])

        def run(batch):
            ids, mask = model.encoder(batch)
            session.run(None, {"input_ids": ids, "mask": mask})
    else:
        def run(batch):
            model.classify(batch, speed=0.0, batch_size=32)
    for text in rows[:20]:
        run([text])
    latencies = []
    for text in rows[:texts]:
        start = time.perf_counter()
        run([text])
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(0, len(rows), 32):
        run(rows[i : i + 32])
    return {"mode": mode, "p50_ms_b1": 1e3 * statistics.median(latencies),
            "texts_per_s_b32": len(rows) / (time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("--full", required=True, help="the same student as one ONNX graph (edgekd bench writes one)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.bundle, args.full, args.data, args.texts)))
        return
    rows = []
    for mode in MODES:
        cmd = [sys.executable, __file__, args.bundle, "--full", args.full, "--data", args.data,
               "--texts", str(args.texts), "--one", mode]
        rows.append(json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1]))
        print(rows[-1], file=sys.stderr)
    full = rows[0]
    lines = ["### Threading of the staged runtime (speed 0), one process per setting", "",
             "| setting | p50 ms (b1) | vs one graph (b1) | texts/s (b32) | one graph / staged (b32) |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['p50_ms_b1']:.3f} | {r['p50_ms_b1'] / full['p50_ms_b1']:.2f}x | "
                     f"{r['texts_per_s_b32']:.0f} | {full['texts_per_s_b32'] / r['texts_per_s_b32']:.2f}x |")
    table = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "threading.md").write_text(table)
    (out / "threading.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
