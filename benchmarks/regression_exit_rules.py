"""Which exit rule for regression bundles: the consecutive-head gap against alternatives, on real data.

A regression head has no distribution to take an entropy of. The runtime's rule (runtime/exits.py) is
PABEE's: the gap g_l = min(1, |y_l - y_(l-1)| / s), s the training targets' standard deviation, and u_l the
largest of the last `patience` gaps. This script traces every exit head of a regression bundle on labelled
data once and compares, on the same outputs and the same speed grid:

- gap-1 (patience 1, what export writes): the last two heads agree;
- gap-2 (patience 2): the last three heads agree;
- drift: the head agrees with the mean of every head so far, u_l = |y_l - mean(y_1..y_l-1)| / s.

For each rule: Pearson x 100 and average layers at every speed, and the fewest average layers whose
Pearson is within `--max-drop` points of full depth (the calibration rule). The rule that saves the most
layers within the budget is the better one.

    python benchmarks/regression_exit_rules.py bundles/stsb --data ../shared/data/stsb/dev.tsv \
        --out benchmarks/results/stsb_exit_rules.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.exit_rule_study import compare, decide  # noqa: E402, F401 (decide: the rule both studies use)


def gaps(values: np.ndarray) -> np.ndarray:
    """|y_l - y_(l-1)| per layer and row, inf at the first layer: (L, N) -> (L, N)."""
    out = np.full(values.shape, np.inf)
    out[1:] = np.abs(np.diff(values, axis=0))
    return out


def uncertainties(values: np.ndarray, scale: float) -> dict[str, np.ndarray]:
    """u of every rule on (L, N) head values, each in [0, 1] (1 where a rule cannot judge yet)."""
    g = gaps(values)
    two = np.maximum(g, np.vstack([np.full((1, g.shape[1]), np.inf), g[:-1]]))
    running = np.cumsum(values, axis=0) / np.arange(1, len(values) + 1)[:, None]
    drift = np.full(values.shape, np.inf)
    drift[1:] = np.abs(values[1:] - running[:-1])
    return {name: np.minimum(1.0, u / scale) for name, u in (("gap-1", g), ("gap-2", two), ("drift", drift))}


def study(values: np.ndarray, gold: np.ndarray, scale: float, max_drop: float) -> dict:
    from edgekd.metrics import pearson

    return compare(values, uncertainties(values, scale), lambda got: 100 * pearson(got, gold), "pearson", max_drop)


def main() -> None:
    import runtime
    from edgekd.data import read_bundle_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--data", required=True, help="labelled file (e.g. STS-B dev.tsv)")
    parser.add_argument("--max-drop", type=float, default=1.0, help="Pearson points allowed below full depth")
    parser.add_argument("--out", help="write the result as JSON here")
    args = parser.parse_args()
    model = runtime.load(args.bundle, engine="staged")
    if model.problem != "regression":
        raise SystemExit(f"{args.bundle} is a {model.problem} bundle; this study is for regression")
    data = read_bundle_data(model, args.data)
    items = model.items(data.texts)
    traces = [model.trace_ids(*model.encode(items[i:i + 64]))[..., 0] for i in range(0, len(items), 64)]
    values = np.concatenate(traces, axis=1)  # (L, N)
    result = {"bundle": str(args.bundle), "data": str(args.data), "texts": len(items),
              "scale": model.rule.scale, **study(values, np.asarray(data.labels), model.rule.scale, args.max_drop)}
    for name in result["ranking"]:
        best = result["rules"][name]["within_budget"]
        print(f"{name:6s}: {best['average_layers']:.2f} of {result['layers']} layers at speed {best['speed']:g} "
              f"(Pearson {best['pearson']:.2f}; full depth {result['full_depth_pearson']:.2f})")
    if args.out:
        from runtime.files import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
