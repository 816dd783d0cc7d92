"""How often calibrate --confidence keeps its promise, and what it costs (issue 44).

The bundle's exit heads are traced once on every row of a labelled file; then, for many random halvings, the
speed is chosen on one half (Learn-then-Test, edgekd.guarantee.certify) and the share of rows made worse than at
full depth (the promised loss) is measured on the other half. Beside it, the point estimate: the fastest speed
whose share of rows made worse on the calibration half is within the budget (no confidence). The held half has
750 rows or so: a speed whose true risk sits just under the budget exceeds it there by chance, so the rate is also
judged on every row of the file (the population's stand-in: `held_rate_on_the_file`). Writes one entry of
`{"tasks": [...]}` (task, confidence, max_drop, halvings, held_rate, speed, layers, point_speed, point_layers, and
the rates the point estimate held at) into OUT, replacing the task's entry if there is one.

    python benchmarks/guarantee.py BUNDLE --data dev.tsv --task stsb --out benchmarks/results/guarantee.json
        [--confidence 0.95] [--max-drop 5] [--halvings 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

import runtime
from edgekd.calibrate import GRID
from edgekd.data import read_bundle_data
from edgekd.guarantee import certify, row_losses
from edgekd.metrics import gold_array
from runtime.exits import decide


def trace(model, items) -> np.ndarray:
    """Every exit head's logits on every item: (L, N, C)."""
    chunks = [model.trace_ids(*model.encode(items[i:i + 64])) for i in range(0, len(items), 64)]
    return np.concatenate(chunks, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("--data", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--out", default="benchmarks/results/guarantee.json")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--max-drop", type=float, default=5.0, help="the budget: share of rows in %%")
    parser.add_argument("--halvings", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = runtime.load(args.bundle)
    data = read_bundle_data(model, args.data)
    exits = trace(model, model.items(data.texts))
    rule, problem = model.rule, model.problem
    gold = gold_array(data.labels, problem, len(model.labels)) if problem == "single-label" else None
    tolerance = 0.1 * (model.manifest.target_scale or 1.0)
    losses = {s: row_losses(exits, gold, s, rule, model.thresholds, tolerance) for s in GRID}
    layers = {s: decide(exits, s, rule)[1] for s in GRID}
    budget = args.max_drop / 100
    rng = np.random.default_rng(args.seed)
    n = exits.shape[1]
    held, point_held, speeds, point_speeds, used, point_used = [], [], [], [], [], []
    in_file, point_in_file = [], []  # the promise judged on every row of the file (the population's stand-in)
    for _ in range(args.halvings):
        order = rng.permutation(n)
        cal, test = order[: n // 2], order[n // 2:]
        g = certify(exits[:, cal], None if gold is None else gold[cal], rule, GRID, budget, args.confidence,
                    model.thresholds, tolerance)
        point = max([s for s in GRID if losses[s][cal].mean() <= budget], default=0.0)
        for chosen, held_list, speed_list, layer_list, file_list in (
                (g.speed, held, speeds, used, in_file), (point, point_held, point_speeds, point_used, point_in_file)):
            held_list.append(bool(losses[chosen][test].mean() <= budget))
            file_list.append(bool(losses[chosen].mean() <= budget))
            speed_list.append(chosen)
            layer_list.append(float(layers[chosen][test].mean()))
    entry = {"task": args.task, "bundle": Path(args.bundle).name, "data": Path(args.data).name, "rows": n,
             "problem": problem, "confidence": args.confidence, "max_drop": args.max_drop,
             "halvings": args.halvings, "held_rate": round(float(np.mean(held)), 4),
             "speed": statistics.median(speeds), "layers": round(float(np.mean(used)), 3),
             "point_speed": statistics.median(point_speeds), "point_layers": round(float(np.mean(point_used)), 3),
             "point_held_rate": round(float(np.mean(point_held)), 4),
             "held_rate_on_the_file": round(float(np.mean(in_file)), 4),
             "point_held_rate_on_the_file": round(float(np.mean(point_in_file)), 4),
             "risk_by_speed_on_the_file": {f"{s:g}": round(float(losses[s].mean()), 4) for s in GRID[:12]},
             "num_layers": model.num_layers,
             "loss": g.loss, "method": g.method}
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.is_file() else {"tasks": []}
    report["tasks"] = [t for t in report["tasks"] if t["task"] != args.task] + [entry]
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
