"""Run folder -> bundle: load the distilled student and hand it to the exporters."""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgekd.config import DistillConfig
from edgekd.model import EarlyExitStudent
from edgekd.pipeline import RunFolder
from exporters import ExportError, ExportResult, export_student


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False, atol: float = 1e-4,
               default_speed: float = 0.0) -> ExportResult:
    """Export `run_dir/student` (tokenizer, labels and max_length from the run) to bundle `out`."""
    run = RunFolder(Path(run_dir))
    if not run.root.is_dir():
        raise ExportError(f"{run.root} is not a folder; give the run folder written by `edgekd distill`")
    if not run.student.is_dir():
        raise ExportError(f"{run.student} is missing: the run has no finished student yet "
                          "(run `edgekd distill` with the finetune stage)")
    cfg = DistillConfig.load(run.config)
    labels = json.loads(run.labels.read_text(encoding="utf-8"))
    student = EarlyExitStudent.load(run.student)
    return export_student(student, run.tokenizer, labels, out, cfg.data.max_length, atol=atol,
                          overwrite=overwrite, default_speed=default_speed)
