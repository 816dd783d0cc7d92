"""The compiled graph in Node and in Chromium, measured by the JS package's own bench code
(js/src/bench.js): `node scripts/bench.mjs JOB.json` for onnxruntime-node, and the demo page driven
in Chromium (`node scripts/drive-demo.mjs -`, edgekd.apps.demo.drive_page) for onnxruntime-web. The texts
travel in a job file or on standard input, never on the command line (one argument past about 128 kB is
refused by the kernel).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from edgekd.apps.demo import JS_DIR, drive_page
from edgekd.bench.measure import Row

RUNNERS = {"node": "Node", "browser": "Chromium (wasm)"}
TIMEOUT_S = 3600


class RunnerMissing(RuntimeError):
    """node, js/node_modules or chromium is not installed here (the row is skipped, not failed)."""


def missing(runner: str) -> str | None:
    """Why `runner` cannot run here, or None."""
    if shutil.which("node") is None or not (JS_DIR / "node_modules").is_dir():
        return "node or js/node_modules missing (scripts/setup.sh installs them)"
    if runner == "browser" and shutil.which("chromium") is None:
        return "no chromium here (scripts/setup.sh installs it)"
    return None


def _rows(result: list[dict], runner: str, precision: str, scorer=None) -> list[Row]:
    """Rows from the JS bench; `scorer(answers) -> (metric, metrics)` scores the answers of a multi-label or
    regression bundle (single-label rows come scored)."""
    tag = "" if precision == "fp32" else f" {precision}"
    kind = f"edgekd-{runner}" + ("" if precision == "fp32" else f"-{precision}")
    rows = []
    for r in result:
        row = Row(f"edgekd{tag} graph in {RUNNERS[runner]}, speed {r['speed']:g}", kind, r["speed"], r["accuracy"],
                  r["averageLayers"], None, r["p50MsB1"], r["p95MsB1"], r["throughputB32"], None, None, None)
        if "answers" in r and scorer is not None:
            row.metric, row.metrics = scorer(r["answers"])
        rows.append(row)
    return rows


def _node(job_file: Path, job: dict) -> list[dict]:
    job_file.write_text(json.dumps(job), encoding="utf-8")
    out = subprocess.run(["node", "scripts/bench.mjs", str(job_file)], cwd=JS_DIR, capture_output=True, text=True,
                         timeout=TIMEOUT_S)
    if out.returncode != 0:
        raise RuntimeError(f"node exited {out.returncode}: {_last_line(out.stderr)}")
    return json.loads(out.stdout)["rows"]


def drive_job(job: dict, url: str) -> dict:
    """The demo driver's job (js/scripts/drive-demo.mjs): the first item typed into the page (both boxes for a
    pair bundle), then the bench run in the page."""
    first = job["texts"][0]
    typed = {"text": first[0], "textPair": first[1]} if isinstance(first, (list, tuple)) else {"text": first}
    bench = {k: job[k] for k in ("texts", "gold", "speeds", "latencyTexts")}
    return {"url": url, **typed, "speed": 0.0, "bench": bench}


def _browser(_job_file: Path, job: dict) -> list[dict]:  # (the job goes on stdin: drive_page)
    out = drive_page(job["bundle"], "scripts/drive-demo.mjs", lambda base: drive_job(job, f"{base}/?device=wasm"),
                     timeout=TIMEOUT_S)
    if out.returncode != 0:
        raise RuntimeError(f"the browser run exited {out.returncode}: {_last_line(out.stderr)}")
    return json.loads(out.stdout)["bench"]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def js_rows(runner: str, bundle: Path, precision: str, texts: list[str], gold: list[str], speeds: list[float],
            latency_texts: int, scorer=None) -> list[Row]:
    """One runner's rows (one per speed) for `bundle`; RunnerMissing where it cannot run here, RuntimeError
    with the runner's last error line where it failed. `gold`: label names (single-label); `scorer`: how a
    multi-label or regression bundle's answers are scored (see _rows)."""
    reason = missing(runner)
    if reason:
        raise RunnerMissing(reason)
    job = {"bundle": str(Path(bundle).resolve()), "texts": texts, "gold": gold, "speeds": speeds,
           "latencyTexts": latency_texts}
    with tempfile.TemporaryDirectory() as tmp:
        result = (_node if runner == "node" else _browser)(Path(tmp) / "job.json", job)
    return _rows(result, runner, precision, scorer)
