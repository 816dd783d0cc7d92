"""`edgekd pack --target web --choose` (issue 40, section 3): the web graph chosen by timing candidates in
Chromium; and the int8-weights form (int8 storage, fp32 compute) that is one of them."""

from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import runtime
from edgekd.pack import pack
from exporters.weights import int8_weights
from runtime.errors import EdgeKDError
from runtime.manifest import read_manifest, sha256_file
from runtime.timing import kernel_events

FIXTURES = Path(__file__).resolve().parents[2] / "js" / "test" / "fixtures"
TEXTS = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))["hf"]["texts"]


def _kernels(path: Path, tmp: Path, feeds: dict) -> collections.Counter:
    options = ort.SessionOptions()
    options.enable_profiling, options.profile_file_prefix = True, str(tmp / "p")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    session.run(None, feeds)
    return collections.Counter(op for op, _ in kernel_events(json.loads(Path(session.end_profiling()).read_text())))


def test_int8_weights_are_a_quarter_of_the_bytes_folded_at_load_and_answer_alike(tmp_path):
    model = runtime.load(FIXTURES / "fp32", engine="graph")
    src = FIXTURES / "fp32" / "model.onnx"
    record = int8_weights(src, tmp_path / "w.onnx", min_size=64)
    assert record["weights"] > 0 and record["bytes_after"] < 0.8 * record["bytes_before"]
    ids, mask = model.encoder(TEXTS[:50])
    feeds = {"input_ids": ids, "attention_mask": mask, "speed": np.array(0.0, np.float32)}
    assert _kernels(tmp_path / "w.onnx", tmp_path, feeds) == _kernels(src, tmp_path, feeds)  # Cast, Mul folded
    a = ort.InferenceSession(str(src)).run(None, feeds)
    b = ort.InferenceSession(str(tmp_path / "w.onnx")).run(None, feeds)
    assert (a[0].argmax(-1) == b[0].argmax(-1)).mean() >= 0.98 and np.abs(a[0] - b[0]).max() < 0.5


def test_choose_needs_texts_and_the_web_target(tmp_path):
    with pytest.raises(EdgeKDError, match="--target web"):
        pack(FIXTURES / "fp32", tmp_path / "m", "mobile", choose_texts=TEXTS[:5])
    with pytest.raises(EdgeKDError, match="--data"):
        pack(FIXTURES / "fp32", tmp_path / "w", "web", choose_texts=[])


@pytest.mark.slow
def test_the_web_graph_is_chosen_by_timing_in_chromium(tmp_path):
    if shutil.which("chromium") is None or not (FIXTURES.parents[1] / "node_modules").is_dir():
        pytest.skip("needs chromium and js/node_modules (scripts/setup.sh installs both)")
    out = pack(FIXTURES / "fp32", tmp_path / "web", "web", choose_texts=TEXTS[:100], log=lambda *_: None)
    manifest = read_manifest(out)
    web = manifest.web
    assert set(web["candidates"]) == {"as-exported", "int8-weights", "int8-dynamic"}
    for c in web["candidates"].values():
        assert c["ms"] > 0 and c["bytes"] > 0 and 0 <= c["agreement"] <= 1
    chosen = web["candidates"][web["chosen"]]
    assert chosen["agreement"] >= 0.99 and manifest.precision == chosen["precision"]
    good = {n: c for n, c in web["candidates"].items() if c["agreement"] >= 0.99}
    assert chosen["ms"] <= 1.03 * min(c["ms"] for c in good.values())
    assert (out / "model.onnx").stat().st_size == chosen["bytes"]
    assert manifest.graph.sha256 == sha256_file(out / "model.onnx")
    full, slim = runtime.load(FIXTURES / "fp32", engine="graph"), runtime.load(out)
    got, want = slim.outputs(TEXTS[:100]), full.outputs(TEXTS[:100])
    assert (got[0].argmax(-1) == want[0].argmax(-1)).mean() >= 0.99
