"""Optimum loads `pack --target hf` folders as they are and answers as edgekd's runtime does, early exit on.

optimum-onnx 0.1.0 pins transformers < 4.58 while edgekd resolves transformers 5, so it is not in the dev extra:
this test makes its own virtual environment (cached under ~/.cache/edgekd-tests), which sees this one's packages
(torch, onnxruntime) through a .pth file and installs optimum-onnx with its own transformers over them. It needs
the package index; without it the test skips and says so."""

from __future__ import annotations

import json
import os
import subprocess
import sysconfig
import tempfile
import venv
from pathlib import Path

import numpy as np
import pytest

import runtime

FIXTURES = Path(__file__).resolve().parents[2] / "js" / "test" / "fixtures"
OPTIMUM = "optimum-onnx[onnxruntime]==0.1.0"
def _cache() -> Path:
    """Where the interop environment is kept between runs: EDGEKD_TEST_CACHE, else ~/.cache/edgekd-tests, else the
    temporary folder (a home that cannot be written)."""
    for folder in (os.environ.get("EDGEKD_TEST_CACHE"), Path.home() / ".cache" / "edgekd-tests"):
        if folder:
            try:
                Path(folder).mkdir(parents=True, exist_ok=True)
                return Path(folder)
            except OSError:
                continue
    return Path(tempfile.gettempdir()) / "edgekd-tests"


VENV = _cache() / "optimum-onnx-0.1.0"

pytestmark = pytest.mark.slow


def _python() -> Path:
    """The interop environment's interpreter, made once."""
    python = VENV / "bin" / "python"
    if (VENV / ".ready").is_file():
        return python
    venv.create(VENV, with_pip=True, clear=True)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "edgekd_parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    import torch

    pin = f"torch=={torch.__version__.split('+')[0]}"  # keep this environment's CPU torch, never a CUDA one
    done = subprocess.run([python, "-m", "pip", "install", "-q", OPTIMUM, pin], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot install {OPTIMUM} (no package index here?): {done.stderr.strip()[-300:]}")
    (VENV / ".ready").write_text("ok\n")
    return python


def test_optimum_pipeline_gives_edgekds_answers_with_early_exit_on(tmp_path):
    expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))["hf"]
    items = tmp_path / "items.json"
    items.write_text(json.dumps({"texts": expected["texts"], "pairs": expected["pairs"]}))
    folders = {str(FIXTURES / name): "pairs" if info["from"] == "pair" else "texts"
               for name, info in expected["folders"].items()}
    done = subprocess.run([_python(), Path(__file__).with_name("optimum_answers.py"), json.dumps(folders), items],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1",
                                                               "TRANSFORMERS_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    for folder, kind in folders.items():
        name = Path(folder).name
        model = runtime.load(folder)
        these = [tuple(p) for p in expected["pairs"]] if kind == "pairs" else expected["texts"]
        # batch 1, as the pipeline runs them (int8: dynamic quantization's scales are per batch)
        ours = model.classify(these, batch_size=1)
        theirs = got[folder]
        assert "speed" not in theirs["inputs"], name
        if model.problem == "token-classification":  # each word's first sub-token: its tag's type and score
            for row, answer in zip(theirs["answers"], model.classify(these, batch_size=1, words=True)):
                starts = {w["start"] for w in answer.words}
                firsts = [t for t in row if t["start"] in starts]  # the pipeline leaves out O and special tokens
                mine = [w for w in answer.words if w["tag"] != "O"]
                assert [t["entity"][2:] for t in firsts] == [w["tag"][2:] for w in mine], name
                assert np.allclose([t["score"] for t in firsts], [w["score"] for w in mine], atol=1e-4), name
        elif model.problem == "multi-label":
            thresholds = dict(zip(model.labels, model.manifest.thresholds or [0.5] * len(model.labels)))
            on = [sorted(s["label"] for s in row if s["score"] >= thresholds[s["label"]]) for row in theirs["answers"]]
            assert on == [sorted(p.labels) for p in ours], name
        else:
            assert [a["label"] for a in theirs["answers"]] == [p.label for p in ours], name
            assert np.allclose([a["score"] for a in theirs["answers"]], [p.probs[p.label] for p in ours], atol=1e-3)
        # one padded batch through Optimum's own session: the exits the graph took at the default speed
        batch = model.outputs(these, batch_size=len(these))
        assert theirs["exit_layer"] == batch[1].tolist(), name
        assert len(set(theirs["exit_layer"])) > 1, name  # some left early, some ran every layer
