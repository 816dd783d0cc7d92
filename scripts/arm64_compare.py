"""Compare a bundle's answers on ARM64 (scripts/arm64_answers.py under emulation) with x86-64's.

Targets (issue: proven where edge apps run): fp32 bundles give the same answers and exit layers on every
row and probabilities (regression: values) within 1e-4; int8 bundles agree on >= 99% of answers and >= 98%
of exit layers. With --gold (labels of the same texts, one JSON list), the main metric at each speed on
both machines, so a reader sees whether the calibrated speed still holds its accuracy. Exits 1 when a
target is missed; prints one line per engine and speed, and writes the full report with --out.

    python scripts/arm64_compare.py x86.json arm64.json [--gold gold.json] [--out report.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FP32_TOLERANCE = 1e-4
INT8_ANSWERS, INT8_EXITS = 0.99, 0.98


def probabilities(logits: np.ndarray, problem: str) -> np.ndarray:
    from runtime.exits import sigmoid, softmax

    if problem == "multi-label":
        return sigmoid(logits)
    if problem == "regression":
        return logits
    return softmax(logits)


def compare(x86: dict, arm: dict, gold: list | None = None) -> dict:
    from runtime.exits import ExitRule

    problem = x86["problem"]
    rule = ExitRule(problem, x86.get("scale", 1.0))  # agree(): the same class, label set, value within 0.1 s
    exact = x86["precision"] == "fp32"
    rows, failures = [], []
    for engine, by_speed in x86["engines"].items():
        for speed, want in by_speed.items():
            got = arm["engines"][engine][speed]
            a, b = np.asarray(want["logits"]), np.asarray(got["logits"])
            same = rule.agree(a, b)
            exits = np.asarray(want["exit_layer"]) == np.asarray(got["exit_layer"])
            diff = float(np.abs(probabilities(a, problem) - probabilities(b, problem)).max())
            row = {"engine": engine, "speed": float(speed), "rows": len(a), "answer_agreement": float(same.mean()),
                   "exit_agreement": float(exits.mean()), "max_prob_diff": diff}
            if gold is not None:
                from edgekd.metrics import gold_array, main_metric, task_scores

                g = gold_array(gold, problem, a.shape[1])
                metric = main_metric(problem)
                row[f"{metric}_x86"] = task_scores(problem, a, g)[metric]
                row[f"{metric}_arm64"] = task_scores(problem, b, g)[metric]
            rows.append(row)
            where = f"{engine} at speed {speed}"
            if exact:
                if not same.all() or not exits.all():
                    failures.append(f"{where}: answers differ on {int((~same).sum())} rows, exit layers on "
                                    f"{int((~exits).sum())} (fp32 must be identical)")
                if diff > FP32_TOLERANCE:
                    failures.append(f"{where}: probabilities differ by {diff:.3g} > {FP32_TOLERANCE}")
            else:
                if same.mean() < INT8_ANSWERS or exits.mean() < INT8_EXITS:
                    failures.append(f"{where}: answers agree on {same.mean():.4f} (>= {INT8_ANSWERS}), exit layers on "
                                    f"{exits.mean():.4f} (>= {INT8_EXITS})")
    return {"precision": x86["precision"], "problem": problem,
            "x86": {k: x86[k] for k in ("machine", "onnxruntime", "numpy")},
            "arm64": {k: arm[k] for k in ("machine", "onnxruntime", "numpy")},
            "rows": rows, "failures": failures, "passed": not failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("x86")
    parser.add_argument("arm64")
    parser.add_argument("--gold")
    parser.add_argument("--out")
    parser.add_argument("--cpu", default="", help="the emulated CPU model, for the report")
    args = parser.parse_args()
    x86, arm = (json.loads(Path(p).read_text()) for p in (args.x86, args.arm64))
    gold = json.loads(Path(args.gold).read_text()) if args.gold else None
    report = compare(x86, arm, gold)
    report["arm64"]["cpu"] = args.cpu
    print(f"{report['precision']} bundle, {report['problem']}: x86-64 onnxruntime {report['x86']['onnxruntime']} vs "
          f"{report['arm64']['machine']} onnxruntime {report['arm64']['onnxruntime']} (emulated {args.cpu or 'CPU'})")
    for r in report["rows"]:
        extra = "".join(f", {k} {100 * v:.2f}" for k, v in r.items() if k.endswith(("_x86", "_arm64")))
        print(f"  {r['engine']:<11} speed {r['speed']:<5g} answers {100 * r['answer_agreement']:6.2f}%  exit layers "
              f"{100 * r['exit_agreement']:6.2f}%  max prob diff {r['max_prob_diff']:.2e}{extra}")
    for f in report["failures"]:
        print(f"  FAILED {f}")
    if args.out:
        from runtime.files import atomic_write_text

        atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    sys.exit(0 if report["passed"] else 1)


if __name__ == "__main__":
    main()
