"""How early exit behaves with many classes, and how `speed` reads when C is large.

The single-label rule divides the exit head's entropy by log C. With many classes the same confidence gives
a lower u than with two (a head sure of one class at p = 0.9, the rest spread evenly, sits at u = 0.47 with 2
classes but 0.16 with 150), so one speed lets more rows leave on a 150-intent task than on a binary one.
This script measures it on a bundle and labelled data: every exit head traced once; for the runtime's
rule (normalized entropy) and, as the alternative a reader would try, 1 - max p (how sure the top class
is, the same scale for every C), the accuracy and average layers at every speed of a fine grid, and the
fewest layers within `--max-drop` points of full depth. It also prints u for given top-class
probabilities at several class counts (a table for the README).

    python benchmarks/many_class_exits.py bundles/clinc150 --data ../shared/data/clinc150/test.tsv \
        --out benchmarks/results/clinc150_exits.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GRID = [round(0.01 * i, 2) for i in range(101)]


def u_of_confidence(p_max: float, classes: int) -> float:
    """Normalized entropy of a head with the top class at p_max and the rest spread evenly."""
    rest = (1.0 - p_max) / (classes - 1)
    h = -p_max * math.log(p_max) - (classes - 1) * (rest * math.log(rest) if rest > 0 else 0.0)
    return h / math.log(classes)


def rules(exit_logits: np.ndarray) -> dict[str, np.ndarray]:
    from runtime.exits import normalized_entropy, softmax

    return {"normalized entropy (the runtime's)": normalized_entropy(exit_logits),
            "1 - max p": 1.0 - softmax(exit_logits).max(-1)}


def curves(exit_logits: np.ndarray, gold: np.ndarray, max_drop: float) -> dict:
    from runtime.exits import first_exit

    out = {}
    full = float((exit_logits[-1].argmax(-1) == gold).mean())
    for name, u in rules(exit_logits).items():
        points = []
        for speed in GRID:
            first = first_exit(u, speed)
            logits = exit_logits[first, np.arange(len(gold))]
            points.append({"speed": speed, "accuracy": float((logits.argmax(-1) == gold).mean()),
                           "average_layers": float((first + 1).mean())})
        ok = [p for p in points if 100 * (full - p["accuracy"]) <= max_drop + 1e-9]
        out[name] = {"within_budget": min(ok, key=lambda p: p["average_layers"]), "curve": points}
    return {"full_depth_accuracy": full, "layers": int(exit_logits.shape[0]), "max_drop_points": max_drop,
            "rules": out}


def main() -> None:
    import runtime
    from edgekd.data import read_bundle_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--data", required=True)
    parser.add_argument("--max-drop", type=float, default=1.0)
    parser.add_argument("--out")
    args = parser.parse_args()
    model = runtime.load(args.bundle, engine="staged")
    data = read_bundle_data(model, args.data)
    items = model.items(data.texts)
    exit_logits = np.concatenate([model.trace_ids(*model.encode(items[i:i + 64])) for i in range(0, len(items), 64)],
                                 axis=1)
    result = {"bundle": str(args.bundle), "data": str(args.data), "texts": len(items), "classes": len(model.labels),
              **curves(exit_logits, np.asarray(data.labels), args.max_drop),
              "u_of_confidence": {str(c): {str(p): round(u_of_confidence(p, c), 3) for p in (0.5, 0.7, 0.9, 0.99)}
                                  for c in (2, 28, 77, 150)}}
    print(f"{len(model.labels)} classes, full depth {100 * result['full_depth_accuracy']:.2f}% over "
          f"{result['layers']} layers")
    for name, r in result["rules"].items():
        b = r["within_budget"]
        print(f"  {name}: {b['average_layers']:.2f} layers at speed {b['speed']:g} ({100 * b['accuracy']:.2f}%)")
    print("u for a top-class probability p (the rest spread evenly):")
    for c, row in result["u_of_confidence"].items():
        print(f"  C={c:>3}: " + ", ".join(f"p={p} -> u={u}" for p, u in row.items()))
    if args.out:
        from runtime.files import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
