"""Which exit rule for multi-label bundles: sure at 0.5, or sure at each label's own threshold (issue 41, 3).

The runtime's multi-label rule (runtime/exits.py) takes the largest binary entropy over the labels,
u = max_j H(sigmoid(z_j)) / log 2: a label is sure when its probability is far from 0.5. But a calibrated
bundle decides label j at its own threshold t_j (manifest `thresholds`, fitted per label on dev), so a
label at p = 0.5 with t_j = 0.2 is already decided, and one at p = 0.25 is not. This script traces every exit
head of a multi-label bundle on labelled data once and compares, on the same outputs and the same speed grid:

- entropy-0.5 (the runtime's rule before this study): u = max_j H(sigmoid(z_j)) / log 2;
- entropy-threshold (the rule at thresholds, runtime.exits.AT_THRESHOLDS, what export now writes where it chose
  thresholds): the same entropy with each logit moved by its threshold's logit,
  u = max_j H(sigmoid(z_j - logit(t_j))) / log 2, so u is 1 exactly at the decision boundary.

For each rule: micro-F1 (label sets at the bundle's thresholds) and average layers at every speed, and the
fewest average layers whose micro-F1 is within `--max-drop` points of full depth (the calibration rule).
The rule that saves the most layers within the budget is the better one.

With `--run RUN` (the run the bundle was exported from), also how often an int8 bundle gives the fp32 torch
student's label sets, exit by exit: at 0.5 (what the export's agreement check reads) and at the bundle's
thresholds (what its answers are), over the same texts.

    python benchmarks/multi_label_rules.py bundles/goemotions --data ../shared/data/goemotions/dev.tsv \
        --out benchmarks/results/goemotions_exit_rules.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.exit_rule_study import compare, decide  # noqa: E402, F401 (decide: the rule both studies use)


def uncertainties(exit_logits: np.ndarray, thresholds) -> dict[str, np.ndarray]:
    """u of every rule on (L, N, C) head logits -> (L, N) each, in [0, 1]: the runtime's two multi-label rules."""
    from runtime.exits import ExitRule

    labels = exit_logits.shape[-1]
    at = tuple(float(t) for t in np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (labels,)))
    return {"entropy-0.5": ExitRule("multi-label").trace(exit_logits),
            "entropy-threshold": ExitRule("multi-label", thresholds=at).trace(exit_logits)}


def study(exit_logits: np.ndarray, gold: np.ndarray, thresholds, max_drop: float) -> dict:
    from edgekd.metrics import label_sets, multi_label_f1

    def score(logits):
        return 100 * multi_label_f1(label_sets(logits, thresholds), gold)["micro_f1"]

    return compare(exit_logits, uncertainties(exit_logits, thresholds), score, "micro_f1", max_drop)


def label_set_agreement(exit_logits: np.ndarray, reference: np.ndarray, thresholds) -> dict:
    """Per exit, the share of texts whose label sets agree between two runs' (L, N, C) head logits: at 0.5 and
    at each label's threshold."""
    from runtime.exits import threshold_logits

    shift = threshold_logits(thresholds, exit_logits.shape[-1])

    def same(at):
        return [round(float(x), 5) for x in ((exit_logits >= at) == (reference >= at)).all(-1).mean(-1)]

    return {"at_0.5": same(0.0), "at_thresholds": same(shift)}


def torch_exits(run: str, model, items: list) -> np.ndarray:
    """The fp32 torch student's (L, N, C) head logits on `items`, tokenized by the bundle's encoder."""
    from edgekd.distill.batches import TokenizedData
    from edgekd.distill.evaluate import all_exit_logits
    from edgekd.distill.students import load_student
    from edgekd.run_folder import RunFolder

    student = load_student(RunFolder(Path(run)).student)
    return all_exit_logits(student, TokenizedData(model.encoder, items), "cpu").numpy()


def main() -> None:
    import runtime
    from edgekd.data import read_bundle_data
    from edgekd.metrics import gold_array

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--data", required=True, help="labelled file (e.g. GoEmotions dev.tsv)")
    parser.add_argument("--max-drop", type=float, default=1.0, help="micro-F1 points allowed below full depth")
    parser.add_argument("--out", help="write the result as JSON here")
    parser.add_argument("--run", help="the bundle's run folder: also the label-set agreement with its fp32 student")
    args = parser.parse_args()
    model = runtime.load(args.bundle, engine="staged")  # trace_ids: every head's logits, whatever the rule
    if model.problem != "multi-label":
        raise SystemExit(f"{args.bundle} is a {model.problem} bundle; this study is for multi-label")
    data = read_bundle_data(model, args.data)
    items = model.items(data.texts)
    exit_logits = np.concatenate([model.trace_ids(*model.encode(items[i:i + 64])) for i in range(0, len(items), 64)],
                                 axis=1)  # (L, N, C)
    gold = gold_array(data.labels, "multi-label", len(model.labels))
    result = {"bundle": str(args.bundle), "data": str(args.data), "texts": len(items),
              "thresholds": np.asarray(model.thresholds, dtype=float).tolist(),
              **study(exit_logits, gold, model.thresholds, args.max_drop)}
    if args.run:
        result["agreement_with_fp32"] = label_set_agreement(exit_logits, torch_exits(args.run, model, items),
                                                            model.thresholds)
        print("label sets as the fp32 student's, exit by exit:", result["agreement_with_fp32"])
    for name in result["ranking"]:
        best = result["rules"][name]["within_budget"]
        print(f"{name:17s}: {best['average_layers']:.2f} of {result['layers']} layers at speed {best['speed']:g} "
              f"(micro-F1 {best['micro_f1']:.2f}; full depth {result['full_depth_micro_f1']:.2f})")
    if args.out:
        from runtime.files import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
