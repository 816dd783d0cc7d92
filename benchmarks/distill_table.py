"""The distillation table of a run folder (from its metrics.json): teacher, the
cross-entropy-only student, the student after each stage (its steps, time and why it stopped), and exits
at each speed, in the problem type's main metric (accuracy; micro-F1; Pearson x 100).

    python benchmarks/distill_table.py RUN_DIR [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def table(run: Path) -> str:
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    s = config["student"]
    kind = s.get("kind", "transformer")
    if kind == "transformer":
        shape = f"{s['layers']}x{s['hidden']}, {s['heads']} heads, ffn {s['ffn']}, {s['head_type']} exit heads"
    else:
        shape = f"{kind}, embeddings {s['embed']}, hidden {s['hidden']}, KD {config['finetune']['kd']}"
    problem = json.loads((run / "task.json").read_text())["problem"] if (run / "task.json").is_file() else "single-label"
    metric = {"single-label": "accuracy", "multi-label": "micro_f1", "regression": "pearson"}[problem]
    head = {"accuracy": "dev accuracy %", "micro_f1": "dev micro-F1 %", "pearson": "dev Pearson x 100"}[metric]
    lines = [f"### Distillation on {Path(config['data']['train']).name} -> dev ({problem}; "
             f"student {shape}, init {s['init']}; max_train {config['data']['max_train'] or 'all'})", "",
             f"| model | {head} | steps | seconds | stopped |", "|---|---|---|---|---|"]
    names = {"teacher": "teacher (fine-tuned)", "baseline": "student, cross-entropy only (no distillation)",
             "attention": "student after `attention` (trunk head untrained)",
             "finetune": "student after `finetune` (CE + KD)", "branches": "student after `branches` (full depth)"}
    for key, label in names.items():
        if key in metrics:
            m = metrics[key]
            score = "-" if key == "attention" else f"{100 * m['dev_' + metric]:.2f}"
            lines.append(f"| {label} | {score} | {m.get('steps', '-')} | {m.get('seconds', '-')} | "
                         f"{m.get('stopped', 'schedule')} |")
    if "branches" in metrics and kind == "transformer":
        layers = s["layers"]
        lines += ["", f"| speed | {head} | average layers | share of layers |", "|---|---|---|---|"]
        for r in metrics["branches"]["exits"]:
            lines.append(f"| {r['speed']:g} | {100 * r[metric]:.2f} | {r['average_layers']:.2f} / {layers} | "
                         f"{100 * r['layer_share']:.0f}% |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--stem", default=None)
    args = parser.parse_args()
    run = Path(args.run)
    text = table(run)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.stem or f"distill_{run.name}"
    (out / f"{stem}.md").write_text(text)
    (out / f"{stem}.json").write_text((run / "metrics.json").read_text())
    print(text)


if __name__ == "__main__":
    main()
