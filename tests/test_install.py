"""The install paths: `edgekd[cpu]` in a fresh venv runs a bundle without torch; the extras choose
exactly one ONNX Runtime distribution (core: none; cpu: onnxruntime; gpu: onnxruntime-gpu)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "js" / "test" / "fixtures" / "fp32"

pytestmark = pytest.mark.slow


def source_copy(tmp_path: Path) -> Path:
    """The project's sources in a temp folder: building a wheel writes build/ beside pyproject.toml."""
    import shutil

    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "node_modules", "js", "runs", "bundles",
                                                             "build", "*.egg-info", "benchmarks", "tests"))
    return src


def test_extras_choose_exactly_one_onnx_runtime(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                    str(source_copy(tmp_path))], check=True, capture_output=True)
    wheel = next(tmp_path.glob("edgekd-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith("METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]

    def ort_for(extra):
        picked = set()
        for req in requires:
            name = re.split(r"[<>=!;\[ ]", req, maxsplit=1)[0].lower()
            marker = req.split(";", 1)[1] if ";" in req else ""
            applies = (f'extra == "{extra}"' in marker) if extra else "extra ==" not in marker
            if name.startswith("onnxruntime") and applies:
                picked.add(name)
        return picked

    assert ort_for(None) == set(), "the core install leaves the choice to an extra"
    assert ort_for("cpu") == {"onnxruntime"}
    assert ort_for("gpu") == {"onnxruntime-gpu"}
    assert any(r.startswith("edgekd[") and "cpu" in r.split(";")[0] for r in requires if 'extra == "dev"' in r), \
        ".[dev] includes the cpu runtime"


def test_cpu_install_in_a_fresh_venv_runs_a_bundle_without_torch(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", f"{source_copy(tmp_path)}[cpu]"],
                             capture_output=True, text=True)
    if install.returncode != 0 and "No matching distribution" in install.stderr:
        pytest.skip(f"the package registry is not reachable here: {install.stderr[-300:]}")
    assert install.returncode == 0, install.stderr[-2000:]
    script = f"""
import sys, runtime
model = runtime.load({str(FIXTURE)!r})
print(model.classify(["a good film"])[0].label, model.engine)
try:
    import torch
    print("torch importable")
except ImportError:
    print("no torch")
"""
    out = subprocess.run([str(py), "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] in ("negative", "positive") and "no torch" in out.stdout
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format=json"], capture_output=True, text=True).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert "onnxruntime" in names and "onnxruntime-gpu" not in names and "torch" not in names
    # without any ONNX Runtime, loading a bundle says which extra to add (`import runtime` itself, and so
    # `edgekd --help`, work without it: the runtime loads onnxruntime on first use)
    subprocess.run([str(py), "-m", "pip", "uninstall", "-q", "-y", "onnxruntime"], check=True)
    out = subprocess.run([str(py), "-c", "import runtime; runtime.load('bundle')"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode != 0 and "pip install 'edgekd[cpu]'" in out.stderr
    out = subprocess.run([str(py), "-m", "edgekd.cli", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]


def test_onnxruntime_gpu_on_a_host_without_cuda_is_quiet_on_auto_and_exact_on_cuda(tmp_path):
    """Issue item 17: with onnxruntime-gpu installed but no usable CUDA, device='auto' falls back to the CPU
    without printing onnxruntime's page of errors, and device='cuda' names the versions it needs."""
    import os

    target = tmp_path / "ortgpu"
    got = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                          "onnxruntime-gpu"], capture_output=True, text=True)
    if got.returncode != 0:
        pytest.skip(f"onnxruntime-gpu could not be installed here: {got.stderr[-300:]}")
    script = f"""
import onnxruntime as ort, runtime
assert "CUDAExecutionProvider" in ort.get_available_providers()
m = runtime.load({str(FIXTURE)!r}, device="auto")
print("device", m.device)
try:
    runtime.load({str(FIXTURE)!r}, device="cuda")
except runtime.DeviceError as exc:
    print("error", exc)
"""
    env = dict(os.environ, PYTHONPATH=f"{target}{os.pathsep}{ROOT}")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    if "device cuda" in out.stdout:
        pytest.skip("this host has a working CUDA")
    assert "device cpu" in out.stdout and out.stderr.strip() == "", out.stderr[:500]
    assert "Require" in out.stdout and "CUDA" in out.stdout and "use device='cpu'" in out.stdout
