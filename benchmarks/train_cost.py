"""What each run's training costs on equal terms (issue 41's wall-time target).

The study's runs trained at one or two threads beside other trainings, so their recorded seconds compare badly.
Here each run folder is forked (`edgekd distill --from`: the same data, teacher and student) into a scratch folder
that trains its stages (the teacher where it trained one; attention, finetune, branches) for a few steps under the
run's own settings, twice (`--steps` and 3x as many; a first short probe warms up), all runs one after another in
one process at one thread count. The difference of the two gives the seconds a step takes; the rest (start-up, the
dev scoring at the stage's end) the fixed cost of one evaluation. A run's stage then costs its own steps x the step
time + its evaluations x that fixed cost, and the run the sum of its stages; a run that reused a teacher (the
study's variants reuse the reference teacher) adds `--teacher-s`, by default the first run's own teacher stage,
probed the same way (a teacher's logits on the training rows, computed once per task, count in neither).

    python benchmarks/train_cost.py RUN [RUN ...] [--names today,w384] [--steps 30] [--teacher-s S]
        [--out benchmarks/results] [--stem train_cost]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from runtime.files import atomic_write_text

STAGES = ("attention", "finetune", "branches")


def probe(run: Path, steps: int, scratch: Path, stages: tuple[str, ...]) -> dict[str, tuple[int, float]]:
    """Fork `run` and train `stages` (the teacher alone, or the student's stages) `steps` steps each:
    {stage: (steps, seconds)}."""
    from edgekd.config import DistillConfig
    from edgekd.distill.fork import STAGE_OPTIONS
    from edgekd.distill.pipeline import distill

    cfg = DistillConfig.load(run / "config.json")
    cfg.out = str(scratch / f"{run.name}-{steps}")
    cfg.stages = ["teacher"] + [s for s in stages if s != "teacher"]  # a teacher not probed is taken over
    for stage in stages:
        o = getattr(cfg, STAGE_OPTIONS[stage])
        o.max_steps, o.min_steps, o.eval_every, o.patience = steps, 0, 0, 0
    distill(cfg, log=lambda _: None, source=run)
    metrics = json.loads((Path(cfg.out) / "metrics.json").read_text())
    shutil.rmtree(cfg.out)
    return {s: (metrics[s]["steps"], metrics[s]["seconds"]) for s in stages if s in metrics}


def evaluations(options: dict, steps: int) -> int:
    """The dev scorings a stage of `steps` steps ran: every eval_every steps and at the end."""
    every = options.get("eval_every", 0)
    return 1 + (steps // every if every else 0)


def cost(run: Path, steps: int, scratch: Path) -> dict:
    """The run's stages on equal terms; its teacher stage only where the run trained its teacher."""
    from edgekd.distill.fork import STAGE_OPTIONS

    config = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    trained = [s for s in ("teacher",) + STAGES if metrics.get(s, {}).get("steps")]
    groups = [g for g in (("teacher",), tuple(s for s in STAGES if s in trained)) if set(g) & set(trained)]
    short, long = {}, {}
    for group in groups:
        short.update(probe(run, steps, scratch, group))
        long.update(probe(run, 3 * steps, scratch, group))
    out = {"run": str(run), "stages": {}}
    for stage in trained:
        (n1, s1), (n2, s2) = short[stage], long[stage]
        step = (s2 - s1) / (n2 - n1)
        if step <= 0:  # noise larger than the steps' own time (tiny models): the long probe's average bounds it
            step = s2 / n2
        fixed = max(0.0, s1 - n1 * step)
        n = metrics[stage]["steps"]
        projected = n * step + evaluations(config[STAGE_OPTIONS[stage]], n) * fixed
        out["stages"][stage] = {"steps": n, "s_per_step": round(step, 4), "fixed_s": round(fixed, 2),
                                "projected_s": round(projected, 1), "recorded_s": round(metrics[stage]["seconds"], 1)}
    out["projected_s"] = round(sum(s["projected_s"] for s in out["stages"].values()), 1)
    out["recorded_s"] = round(sum(s["recorded_s"] for s in out["stages"].values()), 1)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--names", default="", help="comma-separated names of the runs (default: the folder names)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--teacher-s", type=float, default=None,
                    help="seconds of the shared teacher, added to each run that reused one (default: the first "
                         "run's own teacher stage, probed here)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--stem", default="train_cost")
    args = ap.parse_args(argv)
    names = args.names.split(",") if args.names else [r.name for r in args.runs]
    if len(names) != len(args.runs):
        ap.error(f"--names gives {len(names)} names for {len(args.runs)} runs")
    missing = [str(r) for r in args.runs if not (r / "metrics.json").is_file()]
    if missing:
        ap.error(f"not finished run folders (no metrics.json): {', '.join(missing)}")
    import torch

    rows = []
    with tempfile.TemporaryDirectory(prefix="train_cost") as scratch:
        probe(args.runs[0], 2, Path(scratch), STAGES)  # warm-up: the process's first steps are slower than any later
        for name, run in zip(names, args.runs):
            started = time.perf_counter()
            rows.append({"name": name, **cost(run, args.steps, Path(scratch))})
            print(f"{name}: {rows[-1]['projected_s']} s projected ({rows[-1]['recorded_s']} recorded; probed in "
                  f"{time.perf_counter() - started:.0f} s)", flush=True)
    # a run that reused a teacher pays for it too: --teacher-s, else the first run's own teacher on equal terms
    teacher_s = args.teacher_s if args.teacher_s is not None else next(
        (r["stages"]["teacher"]["projected_s"] for r in rows if "teacher" in r["stages"]), 0.0)
    def ratio(a: float, b: float) -> float | None:  # None where the first run's seconds round to nothing
        return round(a / b, 2) if b > 0 else None

    def student_s(row: dict) -> float:
        return row["projected_s"] - row["stages"].get("teacher", {}).get("projected_s", 0.0)

    for row in rows:
        row["teacher_s"] = 0.0 if "teacher" in row["stages"] else teacher_s
        row["total_s"] = round(row["projected_s"] + row["teacher_s"], 1)
    for row in rows:
        row["ratio"] = ratio(row["total_s"], rows[0]["total_s"])
        row["student_ratio"] = ratio(student_s(row), student_s(rows[0]))
    result = {"threads": torch.get_num_threads(), "steps": [args.steps, 3 * args.steps], "runs": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / f"{args.stem}.json", json.dumps(result, indent=1) + "\n")
    cols = ("teacher",) + STAGES
    lines = [f"# Training cost on equal terms ({result['threads']} threads, one run after another)", "",
             "Made by `python benchmarks/train_cost.py RUN ...`: each stage's steps (as the run trained them) x its "
             "step time measured here, plus its dev scorings; a run that reused a teacher pays the shared "
             f"teacher's {teacher_s:g} s. `student ratio`: the student's stages alone against the first run's.", "",
             "| run | " + " | ".join(f"{s} s/step" for s in cols) +
             " | total s (equal terms) | recorded s | ratio | student ratio |",
             "|---|" + "---|" * (len(cols) + 4)]
    for row in rows:
        steps = [str(row["stages"].get(s, {}).get("s_per_step", "-")) for s in cols]
        lines.append(f"| {row['name']} | " + " | ".join(steps) +
                     f" | {row['total_s']} | {row['recorded_s']} | {row['ratio']} | {row['student_ratio']} |")
    atomic_write_text(args.out / f"{args.stem}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
