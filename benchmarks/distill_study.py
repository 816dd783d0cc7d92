"""The distillation study's table (issue 41): recipes side by side, per task, built from their run folders.

A spec (JSON) names each run: its task, the split scored, the recipe, the run folder, optionally its calibrated
int8 bundle and whether it is the chosen recipe's confirmation; and the reference teacher of each task (the
score a student is measured against, whatever teacher it learnt from):

    {"reference": {"stsb": 87.31},
     "runs": [{"task": "stsb", "split": "dev", "recipe": "today", "run": "runs/study/stsb-today",
               "int8": "bundles/study/stsb-today-int8", "chosen": false}, ...]}

Scores are in points on the run's dev set (accuracy %, micro-F1 %, Pearson x 100) from its metrics.json; the
student's is its full depth after the last student stage. `wall_s` adds the seconds of every stage the run
trained (a teacher reused from another run adds none; the spec may say `"teacher_s"` to count it). The int8
bundles' batch-1 latency (p50 ms per text at their calibrated speed, over the same texts) is measured here, all
bundles in one process and in alternating rounds, so the ratios between them hold on a noisy machine.
Runs not finished yet are listed with what they have so far ("status"). A run whose folder is not on this machine
(run folders are not committed; a fresh machine has only the runs it trained), or is here but not finished where
it was finished before, keeps its row from the table already at --out: `"measured"` says `"earlier"` there and
`"here"` for rows measured in this run. Latencies compare only between rows measured here.

    python benchmarks/distill_study.py SPEC.json [--out benchmarks/results] [--stem distill_study]
        [--texts DEV_FILE] [--latency-texts 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from runtime.files import atomic_write_text

MAIN = {"single-label": "accuracy", "multi-label": "micro_f1", "regression": "pearson"}
STUDENT_STAGES = ("branches", "finetune", "baseline")  # the last one a run finished decides its student's score


def run_row(entry: dict, reference: dict[str, float]) -> dict:
    """One row of the study from a run folder (what it has so far when it is not finished)."""
    run = Path(entry["run"])
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    task_file = run / "task.json"
    problem = json.loads(task_file.read_text()).get("problem", "single-label") if task_file.is_file() else \
        "single-label"
    metric = MAIN[problem]
    done = json.loads((run / "state.json").read_text())["finished"] if (run / "state.json").is_file() else []
    wanted = json.loads((run / "config.json").read_text())["stages"] if (run / "config.json").is_file() else []
    stage = next((s for s in STUDENT_STAGES if s in metrics), None)
    student = round(100 * metrics[stage][f"dev_{metric}"], 2) if stage else None
    teacher = reference.get(entry["task"])
    wall = sum(m.get("seconds", 0.0) for m in metrics.values()) + entry.get("teacher_s", 0.0)
    return {"task": entry["task"], "split": entry.get("split", "dev"), "recipe": entry["recipe"],
            "metric": None if not task_file.is_file() else "pearson_x100" if metric == "pearson" else metric,
            "teacher": teacher, "student": student,
            "gap": None if student is None or teacher is None else round(teacher - student, 2),
            "student_int8_b1_ms": None, "wall_s": round(wall, 1), "chosen": bool(entry.get("chosen", False)),
            "status": ("not started" if not run.is_dir() else "finished" if wanted and set(wanted) <= set(done)
                       else f"running ({', '.join(done) or 'nothing'} finished)"),
            "run": str(run),
            "teacher_of_run": round(100 * metrics["teacher"][f"dev_{metric}"], 2) if "teacher" in metrics else None}


def latencies(bundles: dict[str, Path], texts: list, repeats: int = 2) -> dict[str, float]:
    """p50 ms per text at batch 1 of each bundle at its default (calibrated) speed, measured in alternating
    rounds in this one process."""
    import runtime

    models = {name: runtime.load(path) for name, path in bundles.items()}
    for model in models.values():
        model.warm_up()
    times: dict[str, list[float]] = {name: [] for name in models}
    for round_ in range(repeats):
        order = list(models) if round_ % 2 == 0 else list(reversed(models))
        for name in order:
            model = models[name]
            for text in texts:
                start = time.perf_counter()
                model.classify([text])
                times[name].append(1e3 * (time.perf_counter() - start))
    return {name: round(statistics.median(values), 4) for name, values in times.items()}


def table(rows: list[dict]) -> str:
    head = ["task", "recipe", "split", "metric", "teacher", "student", "gap", "int8 b1 p50 ms", "int8 speed",
            "int8 layers", "wall s", "chosen", "status", "measured"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["task"], r["recipe"], r["split"], r["metric"], r["teacher"], r["student"], r["gap"],
                 r["student_int8_b1_ms"], r.get("int8_speed"), r.get("int8_layers"), r["wall_s"],
                 "yes" if r["chosen"] else "", r["status"], r.get("measured", "here")]
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def study(spec: dict, texts: list | None = None, latency_texts: int = 200,
          previous: list[dict] | None = None) -> list[dict]:
    """The rows of a spec. Each task's int8 bundles are timed together (one process, alternating rounds) on the
    texts of the spec's `"texts": {task: labelled file}` (a task's own inputs: pairs for a pair task), else on
    `texts`; latencies compare within a task only. A run whose folder is missing keeps its row from `previous`
    (an earlier table's rows, matched by task and recipe) where that row had started; so does a run being trained
    again here that has not finished yet where its earlier row had."""
    earlier = {(r["task"], r["recipe"]): r for r in previous or [] if r.get("status", "") != "not started"}
    rows = []
    for entry in spec["runs"]:
        kept = earlier.get((entry["task"], entry["recipe"]))
        row = run_row(entry, spec.get("reference", {}))
        # "not started" is run_row's word for a run folder that is not here
        if kept is not None and (row["status"] == "not started"
                                 or (kept["status"] == "finished" and row["status"] != "finished")):
            rows.append({**kept, "chosen": bool(entry.get("chosen", False)), "measured": "earlier"})
        else:
            rows.append({**row, "measured": "here"})
    for task in dict.fromkeys(e["task"] for e in spec["runs"]):
        bundles = {i: Path(e["int8"]) for i, e in enumerate(spec["runs"]) if e["task"] == task and e.get("int8")
                   and Path(e["int8"]).is_dir() and rows[i]["measured"] == "here"}
        task_texts = texts
        if task in spec.get("texts", {}):
            from edgekd.data import read_unlabelled

            task_texts = read_unlabelled(spec["texts"][task]).texts
        if bundles and task_texts:
            for i, ms in latencies(bundles, task_texts[:latency_texts]).items():
                rows[i]["student_int8_b1_ms"] = ms
        for i, folder in bundles.items():
            rows[i].update(calibrated(folder))
    return rows


def calibrated(bundle: Path) -> dict:
    """The int8 bundle's calibrated speed and the average layers a text ran there on its calibration data (what
    its batch-1 time reflects: a wider student that exits earlier can cost less than its width)."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    speed = manifest.get("default_speed")
    points = (manifest.get("calibration") or {}).get("points", [])
    layers = next((p["average_layers"] for p in points if abs(p["speed"] - speed) < 1e-9), None)
    return {"int8_speed": speed, "int8_layers": None if layers is None else round(layers, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--stem", default="distill_study")
    parser.add_argument("--texts", default=None, help="labelled file whose texts time the int8 bundles of the tasks "
                        "the spec's \"texts\" does not name")
    parser.add_argument("--latency-texts", type=int, default=200)
    args = parser.parse_args()
    spec = json.loads(Path(args.spec).read_text())
    texts = None
    if args.texts:
        from edgekd.data import read_unlabelled

        texts = read_unlabelled(args.texts).texts
    out = Path(args.out)
    previous_file = out / f"{args.stem}.json"
    previous = json.loads(previous_file.read_text())["runs"] if previous_file.is_file() else None
    rows = study(spec, texts, args.latency_texts, previous)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{args.stem}.json", json.dumps({"runs": rows}, indent=2) + "\n")
    import os

    spec_name = os.path.relpath(Path(args.spec).resolve(), Path(__file__).resolve().parents[1])
    text = (f"# Distillation study\n\nMade by `python benchmarks/distill_study.py {spec_name}` (run from the folder "
            "that holds the run folders and bundles the spec names); scores in points on dev; the int8 bundles timed "
            "at batch 1 in one process, task by task (latencies compare within a task), at each bundle's calibrated "
            "speed (`int8 speed`, calibrated with --max-drop 1.0 on the file the spec's `what` names; `int8 layers`: "
            "the average layers a dev text ran there). `wall s` is the seconds of the run's stages (with `teacher_s` "
            "for a teacher reused from another run); the runs trained with one or two threads beside one or two "
            "other trainings on 2 cores, so it is a rough cost only: `benchmarks/train_cost.py` measures it on equal "
            "terms (`benchmarks/results/train_cost_<task>.md`). `measured`: `here` for the rows this run measured, "
            "`earlier` for rows kept from the table before it because their run folders are not on this machine "
            "(their latencies compare only with the rows measured beside them then).\n\n")
    atomic_write_text(out / f"{args.stem}.md", text + table(rows))
    print(table(rows))


if __name__ == "__main__":
    main()
