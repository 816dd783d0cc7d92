"""`edgekd pack --target hf`: the folder transformers.js and Optimum load as it is. Its files against the
manifest, config.json for every problem type, `speed` as an initializer holding the default speed, edgekd's
runtime on the same folder (and another speed, which Python's onnxruntime honours), plain onnxruntime fed only the
tokenizer's outputs, tampering refused; the committed hf fixtures (which Node runs through transformers.js) still
answer as the bundles they were packed from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import runtime
from edgekd.hf import HF_FILES
from edgekd.pack import pack
from runtime.errors import BundleError
from runtime.manifest import bundle_files, read_manifest, sha256_file, write_manifest

FIXTURES = Path(__file__).resolve().parents[2] / "js" / "test" / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
HF = EXPECTED["hf"]
TEXTS = ["good film", "the plot was very dull and the acting was awful", "truly great", "fun", "bad",
         "a superb , moving story with a brilliant cast"]
PROBLEM_TYPES = {"fp32": "single_label_classification", "int8": "single_label_classification",
                 "pair": "single_label_classification", "multi": "multi_label_classification",
                 "regression": "regression"}


def _items(name: str, texts=TEXTS):
    return [(t, t[::-1]) for t in texts] if name == "pair" else texts


def _with_speed(src: Path, dst: Path, speed: float) -> Path:
    shutil.copytree(src, dst)
    manifest = read_manifest(dst)
    manifest.default_speed = speed
    write_manifest(dst, manifest)
    return dst


def _speed_initializer(path: Path) -> float:
    graph = onnx.load(str(path)).graph
    assert any(i.name == "speed" for i in graph.input)  # still an input: overridable, not a constant
    return float(numpy_helper.to_array(next(t for t in graph.initializer if t.name == "speed")))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fp32", "int8", "pair", "multi", "regression"])
def test_the_hf_folder_holds_what_the_tools_read_and_answers_as_the_bundle(name, tmp_path):
    source = _with_speed(FIXTURES / name, tmp_path / "b", 0.5)
    out = pack(source, tmp_path / "hf", "hf")
    graph = "onnx/model_quantized.onnx" if name == "int8" else "onnx/model.onnx"
    assert sorted(bundle_files(out)) == sorted(["README.md", "manifest.json", "tokenizer.json", graph, *HF_FILES])
    manifest = read_manifest(out)
    assert manifest.target == "hf" and [p.file for p in manifest.parts] == [graph]
    assert manifest.files == {f: sha256_file(out / f) for f in HF_FILES}
    assert _speed_initializer(out / graph) == pytest.approx(0.5)

    config = json.loads((out / "config.json").read_text())
    labels = read_manifest(source).labels
    assert config["model_type"] == "bert" and config["problem_type"] == PROBLEM_TYPES[name]
    assert config["num_labels"] == len(labels) and config["id2label"] == {str(i): n for i, n in enumerate(labels)}
    assert config["label2id"] == {n: i for i, n in enumerate(labels)}
    assert config["transformers.js_config"]["dtype"] == ("q8" if name == "int8" else "fp32")
    assert config["num_hidden_layers"] == manifest.num_layers and config["hidden_size"] == manifest.hidden_size
    tok = json.loads((out / "tokenizer_config.json").read_text())
    assert tok["model_max_length"] == manifest.max_length and tok["do_lower_case"] is True
    assert json.loads((out / "special_tokens_map.json").read_text())["sep_token"] == "[SEP]"

    full, hf = runtime.load(source, engine="graph"), runtime.load(out)
    items = _items(name)
    for speed in (None, 0.0, 0.9):  # the default, and others: Python's onnxruntime honours a fed initializer
        want, got = full.outputs(items, speed=speed), hf.outputs(items, speed=speed)
        assert (got[1] == want[1]).all() and np.abs(got[0] - want[0]).max() < 1e-4, speed
    card = (out / "README.md").read_text()
    assert "ORTModelForSequenceClassification" in card and "@huggingface/transformers" in card
    assert "library_name: transformers.js" in card and "speed 0.5" in card


@pytest.mark.slow
def test_plain_onnxruntime_fed_only_the_tokenizer_outputs_runs_the_default_speed(tmp_path):
    source = _with_speed(FIXTURES / "fp32", tmp_path / "b", HF["folders"]["hf-fp32"]["default_speed"])
    out = pack(source, tmp_path / "hf", "hf")
    session = ort.InferenceSession(str(out / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    assert session.get_outputs()[0].name == "logits"
    full = runtime.load(source, engine="graph")
    ids, mask, _ = full.encode(HF["texts"])
    logits, layers, _ = session.run(None, {"input_ids": ids, "attention_mask": mask})
    want = full.run_graph(ids, mask, full.manifest.default_speed)
    assert (layers == want[1]).all() and np.abs(logits - want[0]).max() < 1e-4
    assert (layers < full.manifest.num_layers).any() and (layers == full.manifest.num_layers).any()


@pytest.mark.slow
def test_an_edited_or_added_file_in_an_hf_folder_is_refused(tmp_path):
    out = pack(FIXTURES / "fp32", tmp_path / "hf", "hf")
    config = out / "config.json"
    config.write_text(config.read_text().replace('"negative"', '"NEG"'))
    with pytest.raises(BundleError, match="config.json does not match its sha256"):
        runtime.load(out)
    out2 = pack(FIXTURES / "fp32", tmp_path / "hf2", "hf")
    (out2 / "onnx" / "model_fp16.onnx").write_bytes(b"x")
    with pytest.raises(BundleError, match="onnx/model_fp16.onnx"):
        runtime.load(out2)


@pytest.mark.parametrize("folder", sorted(HF["folders"]))
def test_committed_hf_fixtures_answer_as_the_bundles_they_were_packed_from(folder):
    """The folders Node runs through transformers.js (js/test/interop.test.js) are current: same default
    speed in the graph and the manifest, and the same answers as their source bundle (regenerate with
    scripts/make_js_fixtures.py)."""
    info = HF["folders"][folder]
    hf, full = runtime.load(FIXTURES / folder), runtime.load(FIXTURES / info["from"], engine="graph")
    graph = hf.manifest.graph.file
    assert hf.manifest.default_speed == info["default_speed"] == pytest.approx(_speed_initializer(FIXTURES / folder / graph))
    items = [tuple(p) for p in HF["pairs"]] if info["from"] == "pair" else HF["texts"]
    got, want = hf.outputs(items), full.outputs(items, speed=info["default_speed"])
    assert (got[1] == want[1]).all()
    assert np.abs(got[0] - want[0]).max() < 1e-4
    assert len(set(got[1].tolist())) > 1  # the default speed lets some rows leave early: early exit is on
