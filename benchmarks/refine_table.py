"""Table of the refinement experiment: clean labels, 20% noise, 20% noise + two-teacher refinement.

    python benchmarks/refine_table.py RUN_CLEAN RUN_NOISY RUN_REFINED [--kept RUN_REFINED_B_ON_KEPT] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clean")
    parser.add_argument("noisy")
    parser.add_argument("refined")
    parser.add_argument("--kept", default=None, help="refinement with teacher B trained on A's kept rows")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    names = ("clean", "noisy", "refined") + (("kept",) if args.kept else ())
    m = {k: json.loads((Path(getattr(args, k)) / "metrics.json").read_text()) for k in names}
    acc = {k: m[k]["finetune"]["dev_accuracy"] for k in m}
    teacher = {k: m[k]["teacher"]["dev_accuracy"] for k in m}
    lost = acc["clean"] - acc["noisy"]
    recovered = (acc["refined"] - acc["noisy"]) / lost if lost > 0 else float("nan")
    r = m["refined"].get("refine", {})
    lines = ["### Two-teacher label refinement, SST-2 (20k training rows, 20% of their labels flipped; dev clean)", "",
             "| setting | teacher dev % | student dev % |", "|---|---|---|",
             f"| clean labels | {100 * teacher['clean']:.2f} | {100 * acc['clean']:.2f} |",
             f"| 20% noise, no refinement | {100 * teacher['noisy']:.2f} | {100 * acc['noisy']:.2f} |",
             f"| 20% noise, refinement (B trained on the failing rows, as specified) | {100 * teacher['refined']:.2f} | "
             f"{100 * acc['refined']:.2f} |"]
    if args.kept:
        lines.append(f"| 20% noise, refinement (B trained on A's kept rows) | {100 * teacher['kept']:.2f} | "
                     f"{100 * acc['kept']:.2f} |")
    lines += ["",
             f"Accuracy lost to noise: {100 * lost:.2f} points; recovered by refinement: {100 * recovered:.0f}% "
             f"(teacher A kept {r.get('kept')} rows, {r.get('failing')} failed; score {r.get('score', 'ratio')}; teacher B "
             f"agreed with the given labels on {100 * r.get('b_agrees_with_given_labels_on_failing', float('nan')):.0f}% "
             "of the failing rows)."]
    if args.kept:
        k = m["kept"]["refine"]
        lines.append(f"With B trained on the kept rows: recovered "
                     f"{100 * (acc['kept'] - acc['noisy']) / lost if lost > 0 else float('nan'):.0f}%; B agreed with the "
                     f"given labels on {100 * k['b_agrees_with_given_labels_on_failing']:.0f}% of the failing rows.")
    table = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "refine.md").write_text(table)
    (out / "refine.json").write_text(json.dumps({"accuracy": acc, "teacher": teacher,
                                                 "refine": {k: m[k].get("refine") for k in names},
                                                 "recovered_share": recovered}, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
