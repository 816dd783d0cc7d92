"""scripts/gpu_check.sh on a machine without a GPU: it says so, skips the GPU parts cleanly and exits 0;
--smoke runs every part's code on the CPU at tiny shapes, so the script a GPU session runs is tested here."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def gpu_here() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.slow
def test_without_a_gpu_the_gpu_parts_are_skipped_and_it_exits_0(tmp_path):
    if gpu_here():
        pytest.skip("a GPU is here: the script runs the real thing")
    out = subprocess.run(["bash", "scripts/gpu_check.sh", str(tmp_path / "out"), "--parts", "b,c"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no NVIDIA GPU" in out.stdout
    for part in ("b", "c"):
        assert json.loads((tmp_path / "out" / f"gpu_part_{part}.json").read_text()) == {"skipped": "no NVIDIA GPU here"}
    env = json.loads((tmp_path / "out" / "gpu_env.json").read_text())
    assert env["cuda_available"] is False and env["torch"]


@pytest.mark.slow
def test_smoke_runs_every_part_on_the_cpu(tmp_path):
    out = subprocess.run(["bash", "scripts/gpu_check.sh", str(tmp_path / "out"), "--smoke", "--repeats", "3"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-2000:])
    a = json.loads((tmp_path / "out" / "gpu_part_a.json").read_text())
    assert a["tiny_distill"]["cpu"]["dev"]["finetune"] is not None
    b = json.loads((tmp_path / "out" / "gpu_part_b.json").read_text())
    assert {r["batch"] for r in b["rows"]} == {1, 32, 256} and all(r["ms"] > 0 for r in b["rows"])
    assert b["train_steps_per_s"]["teacher"] > 0 and b["train_steps_per_s"]["finetune"] > 0
    c = json.loads((tmp_path / "out" / "gpu_part_c.json").read_text())
    systems = {r["system"] for r in c["rows"]}
    assert {"student fp32 staged", "student fp32 graph"} <= systems and any("teacher" in s for s in systems)


def test_it_refuses_to_write_into_the_committed_results():
    out = subprocess.run(["bash", "scripts/gpu_check.sh", "benchmarks/results"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "folder of its own" in out.stderr
