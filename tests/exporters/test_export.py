"""Export: every stage checked against torch; failures collected; writes atomic."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from exporters import ExportError, ExportValidationError, export_student
from exporters.parts import student_part_specs
from runtime.manifest import SCHEMA_VERSION, read_manifest, sha256_file
from tests.conftest import make_student
import os
import stat
from edgekd.data import DataError
from edgekd.distill.export import export_run


@pytest.mark.parametrize("head_type", ["mean", pytest.param("cls", marks=pytest.mark.slow),
                                       pytest.param("attention", marks=pytest.mark.slow)])  # fast tier: mean
def test_every_head_type_exports_and_matches_torch(tmp_path, tokenizer_file, head_type):
    student = make_student(head_type=head_type, sharpen=5.0)
    result = export_student(student, tokenizer_file, ["n", "p"], tmp_path / "b", max_length=24)
    parts = {c.part for c in result.checks}
    assert parts == {"embed", "layer_1", "layer_2", "layer_3"}
    cases = {c.case for c in result.checks}
    assert any("batch 1" in c for c in cases) and any("mixed" in c for c in cases)
    assert any("max length 24" in c for c in cases) and any("row subset" in c for c in cases)
    assert max(c.max_diff for c in result.checks) < 1e-4


def test_manifest_describes_the_bundle(bundle, student):
    m = read_manifest(bundle)
    assert m.schema_version == SCHEMA_VERSION
    assert m.labels == ["negative", "positive"] and m.max_length == 40
    assert [s.file for s in m.parts] == ["embed.onnx", "layer_01.onnx", "layer_02.onnx", "layer_03.onnx", "model.onnx"]
    assert [s.kind for s in m.parts] == ["embed", "layer", "layer", "layer", "compiled"]
    for s in m.parts:
        assert s.sha256 == sha256_file(bundle / s.file)
    assert m.hidden_size == student.config.hidden_size and m.num_layers == 3
    assert m.vocabulary.original_size == m.vocabulary.kept_size == student.config.vocab_size
    assert {"edgekd", "torch", "onnxruntime"} <= set(m.producer)
    assert (bundle / "tokenizer.json").is_file()


def test_layer_graph_gathers_rows_and_keeps_axes_dynamic(bundle, student):
    session = ort.InferenceSession(str(bundle / "layer_02.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch, length in ((1, 3), (5, 17), (2, 40)):
        hidden = rng.standard_normal((batch, length, 32)).astype(np.float32)
        mask = np.ones((batch, length), dtype=np.int64)
        mask[-1, length // 2 :] = 0
        rows = np.array([batch - 1, 0][: batch], dtype=np.int64)
        out_hidden, logits = session.run(None, {"hidden": hidden, "mask": mask, "rows": rows})
        with torch.no_grad():
            h = torch.from_numpy(hidden)[torch.from_numpy(rows)]
            m = torch.from_numpy(mask)[torch.from_numpy(rows)]
            want_h, _ = student.layers[1](h, m)
            want_logits = student.heads[1](want_h, m)
        assert out_hidden.shape == (len(rows), length, 32)
        assert np.abs(out_hidden - want_h.numpy()).max() < 1e-4
        assert np.abs(logits - want_logits.numpy()).max() < 1e-4


class BakesTheMask(nn.Module):
    """A head whose Python branch on the mask is frozen by tracing: a classic export bug."""

    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, hidden, mask):
        if int(mask.sum()) > 12:  # traced once, baked in as a constant
            return self.head(hidden, mask) * 3.0
        return self.head(hidden, mask)


def test_validation_collects_all_failures_and_leaves_no_bundle(tmp_path, tokenizer_file):
    student = make_student(sharpen=5.0)
    student.heads[0] = BakesTheMask(student.heads[0])
    student.heads[2] = BakesTheMask(student.heads[2])
    out = tmp_path / "b"
    with pytest.raises(ExportValidationError) as info:
        export_student(student, tokenizer_file, ["n", "p"], out, max_length=24)
    message = str(info.value)
    assert "layer_1" in message and "layer_3" in message
    assert "max diff" in message and "atol" in message
    assert len(info.value.failures) >= 2
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [], "no temporary folder may be left behind"


@pytest.mark.slow  # fast-tier budget: kept in the full suite
def test_failed_export_does_not_touch_an_existing_bundle(tmp_path, tokenizer_file):
    out = tmp_path / "b"
    export_student(make_student(seed=1), tokenizer_file, ["n", "p"], out, max_length=24)
    before = {p.name: sha256_file(p) for p in out.iterdir()}
    broken = make_student(seed=2)
    broken.heads[1] = BakesTheMask(broken.heads[1])
    with pytest.raises(ExportValidationError):
        export_student(broken, tokenizer_file, ["n", "p"], out, max_length=24, overwrite=True)
    assert {p.name: sha256_file(p) for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


@pytest.mark.slow  # fast-tier budget: kept in the full suite
def test_overwrite_is_explicit_and_atomic(tmp_path, tokenizer_file):
    out = tmp_path / "b"
    export_student(make_student(seed=1), tokenizer_file, ["n", "p"], out, max_length=24)
    with pytest.raises(ExportError, match="--overwrite"):
        export_student(make_student(seed=2), tokenizer_file, ["n", "p"], out, max_length=24)
    old = json.loads((out / "manifest.json").read_text())["parts"][0]["sha256"]
    export_student(make_student(seed=2), tokenizer_file, ["n", "p"], out, max_length=24, overwrite=True)
    assert json.loads((out / "manifest.json").read_text())["parts"][0]["sha256"] != old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_bad_export_inputs(tmp_path, tokenizer_file):
    student = make_student()
    with pytest.raises(ExportError, match="3 labels"):
        export_student(student, tokenizer_file, ["a", "b", "c"], tmp_path / "x", max_length=24)
    with pytest.raises(ExportError, match="position table"):
        export_student(student, tokenizer_file, ["a", "b"], tmp_path / "x", max_length=4096)
    with pytest.raises(ExportError, match="tokenizer"):
        export_student(student, tmp_path / "missing.json", ["a", "b"], tmp_path / "x", max_length=24)


def test_stage_specs_cover_every_layer():
    specs = student_part_specs(make_student(layers=4))
    assert list(specs) == ["embed.onnx", "layer_01.onnx", "layer_02.onnx", "layer_03.onnx", "layer_04.onnx"]


def test_export_with_bad_data_leaves_the_old_bundle_untouched(finished_run, tmp_path):
    out = tmp_path / "b"
    export_run(finished_run, out)
    before = _tree(out)
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\ngood film\tneutral\n")
    with pytest.raises(DataError, match="neutral"):
        export_run(finished_run, out, overwrite=True, data=bad, max_drop=1.0)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "bad.tsv"], "no temporary folder left behind"


@pytest.mark.slow  # about 1 s: the full tier (keeps `-m 'not slow'` under 60 s)
def test_a_failure_after_the_graphs_leaves_no_half_bundle(finished_run, tmp_path, monkeypatch):
    import edgekd.calibrate

    out = tmp_path / "b"
    export_run(finished_run, out)
    before = _tree(out)

    def boom(*args, **kwargs):
        raise RuntimeError("killed during calibration")

    monkeypatch.setattr(edgekd.calibrate, "calibrate", boom)
    good = tmp_path / "dev.tsv"
    good.write_text("sentence\tlabel\ngood film\tpositive\nawful film\tnegative\n")
    with pytest.raises(RuntimeError, match="killed"):
        export_run(finished_run, out, overwrite=True, data=good, max_drop=1.0)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "dev.tsv"]


def test_stale_temporary_folders_of_a_killed_export_are_removed(finished_run, tmp_path):
    (tmp_path / ".b.tmp-dead").mkdir()
    (tmp_path / ".b.tmp-dead" / "embed.onnx").write_bytes(b"half")
    export_run(finished_run, tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_bundles_are_readable_by_other_users(bundle):
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o777 & ~mask
    for path in bundle.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path.name


def _tree(path):
    return {p.relative_to(path).as_posix(): sha256_file(p) for p in sorted(path.rglob("*")) if p.is_file()}
