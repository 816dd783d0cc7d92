"""Make tests/golden/tiny_run.json: what a tiny seeded distillation and its bundle produce.

    .venv/bin/python -m tests.golden.make_golden

Runs every stage (teacher, attention with both objectives, refine, baseline, finetune,
branches) on the tiny teacher and tiny data of tests/conftest.py, exports the student,
and records each stage's first three losses, the dev metrics after each stage, and the
bundle's answers on conftest.TEXTS at four speeds. tests/test_golden.py compares a fresh
run with this file (losses at rtol 1e-5, predictions and accuracies within 1e-6), so a
refactor that changes training or inference shows up at once. Regenerate it only for a
change that is meant to move these numbers, and say so in the commit.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

GOLDEN = Path(__file__).with_name("tiny_run.json")
SPEEDS = (0.0, 0.3, 0.6, 0.9)
STAGES = ["teacher", "attention", "refine", "baseline", "finetune", "branches"]


def make_files(folder: Path) -> dict[str, Path]:
    from edgekd.testing.fixtures import tiny_sentiment

    files = {}
    for name, n, seed in (("train", 160, 0), ("dev", 48, 1)):
        path = folder / f"{name}.tsv"
        path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in tiny_sentiment(n, seed)))
        files[name] = path
    return files


def golden_run(folder: Path) -> dict:
    import runtime
    from edgekd.distill.export import export_run
    from edgekd.distill.pipeline import distill
    from edgekd.testing.fixtures import tiny_teacher
    from tests.conftest import TEXTS, tiny_config

    teacher = tiny_teacher(folder / "teacher")
    files = make_files(folder)
    cfg = tiny_config(teacher, files, folder / "run", stages=STAGES, student={"init": "teacher"},
                      attention={"objective": "both"})
    run = distill(cfg, log=lambda _: None)
    metrics = json.loads((run / "metrics.json").read_text())
    bundle = export_run(run, folder / "bundle").path
    model = runtime.load(bundle, engine="staged")
    answers = {}
    for speed in SPEEDS:
        answers[f"{speed:g}"] = [{"label": p.label, "probs": p.probs, "exit_layer": p.exit_layer}
                                 for p in model.classify(TEXTS, speed=speed)]
    return {
        "first_losses": {name: metrics[name].get("first_losses") for name in STAGES if "first_losses" in metrics[name]},
        "dev": {name: {"dev_accuracy": metrics[name].get("dev_accuracy"), "exits": metrics[name].get("exits")}
                for name in STAGES if "dev_accuracy" in metrics[name]},
        "answers": answers,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = golden_run(Path(tmp))
    GOLDEN.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main()
