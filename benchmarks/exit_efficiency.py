"""Exit efficiency of the compiled graph, graph against graph (no Python wrapper on either side).

    .venv/bin/python benchmarks/exit_efficiency.py bundles/sst2-quick --run runs/sst2-quick \\
        --data ../shared/data/sst2/dev.tsv

efficiency = (plain full-depth graph's latency x layers used / all layers) / compiled graph's latency,
both as bare onnxruntime session runs on the same pre-tokenized inputs with the same session options,
timed in blocks over the same texts, three rounds alternating, best median; at batch 1 (first 200 texts)
and batch 32 (every text, length-sorted batches), at speed 0 and the bundle's calibrated speed.
`edgekd bench` times whole `classify` calls instead, whose Python work (tokenizing, sorting, building
Prediction objects) weighs on the edgekd rows and not on the plain-graph row.
Writes benchmarks/results/exit_efficiency.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--run", required=True, help="the run folder the bundle came from (for the plain graph)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    import onnxruntime as ort

    import runtime
    from edgekd.data import read_labelled
    from edgekd.distill.students import load_student
    from exporters import export_full_graph
    from runtime.sessions import session_options

    model = runtime.load(args.bundle, engine="graph")
    texts = read_labelled(args.data, label_names=model.labels, label_values=model.manifest.label_values).texts
    student = load_student(Path(args.run) / "student")
    tmp = Path(tempfile.mkdtemp())
    export_full_graph(student, tmp / "full.onnx", student.config.original_vocab_size or student.config.vocab_size,
                      model.manifest.max_length)
    full = ort.InferenceSession(str(tmp / "full.onnx"), session_options(None), providers=["CPUExecutionProvider"])
    graph = ort.InferenceSession(str(Path(args.bundle) / "model.onnx"), session_options(None),
                                 providers=["CPUExecutionProvider"])
    ones = [model.encoder([t]) for t in texts[:200]]
    ids = model.encoder.token_ids(texts)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    batches = [model.encoder.pad([ids[i] for i in order[s : s + 32]]) for s in range(0, len(order), 32)]
    layers = model.num_layers
    rows = []
    for speed in sorted({0.0, model.manifest.default_speed}):
        sp = np.array(speed, np.float32)
        used_b1 = float(np.mean([graph.run(["exit_layer"], {"input_ids": i, "attention_mask": m, "speed": sp})[0][0]
                                 for i, m in ones]))
        used_b32 = float(np.mean(np.concatenate([graph.run(["exit_layer"], {"input_ids": i, "attention_mask": m,
                                                                            "speed": sp})[0] for i, m in batches])))
        systems = {
            "full": lambda i, m: full.run(None, {"input_ids": i, "mask": m}),
            "graph": lambda i, m: graph.run(None, {"input_ids": i, "attention_mask": m, "speed": sp}),
        }
        b1 = {k: [] for k in systems}
        b32 = {k: [] for k in systems}
        for _ in range(3):
            for name, run in systems.items():
                for i, m in ones[:10]:
                    run(i, m)
                times = []
                for i, m in ones:
                    start = time.perf_counter()
                    run(i, m)
                    times.append(time.perf_counter() - start)
                b1[name].append(statistics.median(times))
                start = time.perf_counter()
                for i, m in batches:
                    run(i, m)
                b32[name].append(time.perf_counter() - start)
        f1, g1, f32, g32 = min(b1["full"]), min(b1["graph"]), min(b32["full"]), min(b32["graph"])
        rows.append({"speed": speed, "layers_used_b1": used_b1, "layers_used_b32": used_b32,
                     "full_ms_b1": 1e3 * f1, "graph_ms_b1": 1e3 * g1, "efficiency_b1": f1 * used_b1 / layers / g1,
                     "full_s_b32": f32, "graph_s_b32": g32, "efficiency_b32": f32 * used_b32 / layers / g32})
        print(rows[-1], flush=True)
    out = Path(args.out)
    (out / "exit_efficiency.json").write_text(json.dumps({"bundle": args.bundle, "texts": len(texts), "rows": rows},
                                                         indent=2) + "\n")
    lines = [f"### Exit efficiency of {Path(args.bundle).name}/model.onnx, bare session runs ({len(texts)} texts)", "",
             "| speed | layers used (b1) | full graph ms (b1) | compiled ms (b1) | efficiency b1 | full s (b32, all) "
             "| compiled s (b32, all) | efficiency b32 |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['speed']:g} | {r['layers_used_b1']:.2f} | {r['full_ms_b1']:.3f} | {r['graph_ms_b1']:.3f} | "
                     f"{r['efficiency_b1']:.2f} | {r['full_s_b32']:.3f} | {r['graph_s_b32']:.3f} | "
                     f"{r['efficiency_b32']:.2f} |")
    (out / "exit_efficiency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
