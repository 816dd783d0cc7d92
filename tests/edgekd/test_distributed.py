"""Several processes through torch's own launcher (torchrun, gloo on CPU): the same stages finish."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_torchrun_two_processes(tiny_teacher_dir, tiny_data, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
           "-m", "edgekd.cli", "distill", "--teacher", str(tiny_teacher_dir), "--train", str(tiny_data["train"]),
           "--dev", str(tiny_data["dev"]), "--out", str(run), "--preset", "tiny", "--device", "cpu",
           "--stages", "teacher,attention,finetune,branches"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run / "state.json").read_text())["finished"] == ["teacher", "attention", "finetune", "branches"]
    assert (run / "student" / "model.safetensors").is_file()
    assert proc.stderr.count("stage finetune: dev accuracy") == 1, "only rank 0 reports"
