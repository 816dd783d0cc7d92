"""The distillation table of a run folder (from its metrics.json): teacher, the
cross-entropy-only student, the student after each stage, and exits at each speed.

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
    lines = [f"### Distillation on {Path(config['data']['train']).name} -> dev "
             f"(student {shape}, init {s['init']}; max_train {config['data']['max_train'] or 'all'})", "",
             "| model | dev accuracy % | steps | seconds |", "|---|---|---|---|"]
    names = {"teacher": "teacher (fine-tuned)", "baseline": "student, cross-entropy only (no distillation)",
             "attention": "student after `attention` (trunk head untrained)",
             "finetune": "student after `finetune` (CE + KD)", "branches": "student after `branches` (full depth)"}
    for key, label in names.items():
        if key in metrics:
            m = metrics[key]
            lines.append(f"| {label} | {100 * m['dev_accuracy']:.2f} | {m.get('steps', '-')} | {m.get('seconds', '-')} |")
    if "branches" in metrics and kind == "transformer":
        layers = s["layers"]
        lines += ["", "| speed | dev accuracy % | average layers | share of layers |", "|---|---|---|---|"]
        for r in metrics["branches"]["exits"]:
            lines.append(f"| {r['speed']:g} | {100 * r['accuracy']:.2f} | {r['average_layers']:.2f} / {layers} | "
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
