"""Runs side by side, stage by stage: the dev score, the steps, the seconds and why each stage stopped, with
each run's total wall time against the first one's. For comparing schedules (issue 27: the quick preset's
old fixed schedule against one that stops on dev) on the same data.

    python benchmarks/schedule_table.py --stem sst2_schedule \\
        old=benchmarks/results/distill_sst2.json new=runs/sst2 "new + anneal"=runs/sst2-anneal

Each column is NAME=SOURCE: a run folder (its metrics.json) or a metrics JSON file (`distill_table.py`'s
json, or a copy of a run's metrics.json). A column may say what it is with --note NAME="how it was made".
Writes benchmarks/results/<stem>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edgekd.metrics import METRICS  # noqa: E402

STAGES = ("teacher", "refine", "attention", "baseline", "finetune", "branches")
MAIN_METRICS = tuple(names[0] for names in METRICS.values())  # metrics.json names them dev_<metric>


def load(source: str) -> dict:
    path = Path(source)
    if path.is_dir():
        path = path / "metrics.json"
    if not path.is_file():
        raise SystemExit(f"{source}: no run folder with a metrics.json, nor a metrics JSON file")
    return json.loads(path.read_text(encoding="utf-8"))


def main_metric(stage: dict) -> str | None:
    return next((m for m in MAIN_METRICS if f"dev_{m}" in stage), None)


def columns(pairs: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for pair in pairs:
        name, sep, source = pair.partition("=")
        if not sep or not name or not source:
            raise SystemExit(f"{pair!r}: give each column as NAME=RUN_FOLDER or NAME=METRICS.json")
        out[name] = load(source)
    return out


def build(runs: dict[str, dict], notes: dict[str, str], title: str) -> tuple[str, dict]:
    stages = [s for s in STAGES if s != "baseline" and any(s in m for m in runs.values())]
    totals = {name: sum(m[s].get("seconds", 0.0) for s in stages if s in m) for name, m in runs.items()}
    first = next(iter(totals.values()))
    head = ["stage"] + [f"{name}: {what}" for name in runs for what in ("dev %", "steps", "s")] + ["why each stopped"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stage in stages:
        cells, whys = [stage], {}  # reason -> the columns that stopped for it
        for name, m in runs.items():
            row = m.get(stage)
            if row is None:
                cells += ["", "", ""]
                continue
            metric = None if stage == "attention" else main_metric(row)
            cells += [f"{100 * row[f'dev_{metric}']:.2f}" if metric else "-", str(row.get("steps", "")),
                      f"{row.get('seconds', 0):.0f}"]
            if row.get("stopped"):
                whys.setdefault(row["stopped"], []).append(name)
        why = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in whys.items())
        lines.append("| " + " | ".join(cells + [why or "schedule"]) + " |")
    ratio = "; ".join(f"{name} {t / first:.2f}x" for name, t in totals.items())
    cells = ["total"] + [c for t in totals.values() for c in ("", "", f"{t:.0f}")]
    lines.append("| " + " | ".join(cells + [f"wall time against {next(iter(runs))}: {ratio}"]) + " |")
    if notes:
        lines += [""] + [f"- {name}: {note}" for name, note in notes.items()]
    data = {"title": title, "notes": notes, "total_seconds": totals,
            "wall_ratio": {name: round(t / first, 3) for name, t in totals.items()},
            "runs": {name: {s: {k: m[s].get(k) for k in ("dev_" + (main_metric(m[s]) or "accuracy"), "steps",
                                                          "seconds", "stopped", "best_step")}
                            for s in stages if s in m} for name, m in runs.items()}}
    return "\n".join(lines) + "\n", data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("columns", nargs="+", help="NAME=RUN_FOLDER or NAME=METRICS.json, the first is the reference")
    ap.add_argument("--note", action="append", default=[], help='NAME="how that column was made" (repeatable)')
    ap.add_argument("--title", default="Schedules side by side")
    ap.add_argument("--stem", default="schedule")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args()
    runs = columns(args.columns)
    notes = dict(n.partition("=")[::2] for n in args.note)
    unknown = sorted(set(notes) - set(runs))
    if unknown:
        raise SystemExit(f"--note for a column not given: {', '.join(unknown)}")
    md, data = build(runs, notes, args.title)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.stem}.md").write_text(md, encoding="utf-8")
    (out / f"{args.stem}.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(md, end="")


if __name__ == "__main__":
    main()
