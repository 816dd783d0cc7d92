"""export --optimize: layer graphs plain or fused, chosen by timing both on this machine, recorded in the manifest."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import runtime
from exporters import export_student
from tests.conftest import TEXTS

FUSED = {"Attention", "SkipLayerNormalization", "BiasGelu"}


def _ops(path):
    return {(n.domain, n.op_type) for n in onnx.load(str(path)).graph.node}


@pytest.mark.slow  # 1.5 s: the fast tier stays under 60 s on 2 cores
def test_fused_layers_answer_like_plain_ones_and_model_onnx_stays_portable(student, tokenizer_file, bundle, tmp_path):
    """With --graph-form portable, model.onnx keeps standard operators while the layer graphs are fused (the
    default, auto, builds it from the fused layers: tests/exporters/test_compiled.py)."""
    out = tmp_path / "fused"
    export_student(student, tokenizer_file, ["negative", "positive"], out, max_length=40, optimize="fused",
                   graph_form="portable")
    manifest = runtime.read_manifest(out)
    record = manifest.optimization
    assert record["mode"] == "fused" and len(record["parts"]) == manifest.num_layers
    for part in manifest.staged[1:]:
        entry = record["parts"][part.name]
        assert entry["chosen"] == "fused" and set(entry["fused_ops"]) <= FUSED | {"FastGelu", "Gelu"}
        assert any(domain == "com.microsoft" for domain, _ in _ops(out / part.file))
    assert not any(domain == "com.microsoft" for domain, _ in _ops(out / "model.onnx"))
    plain, fused = runtime.load(bundle, engine="staged"), runtime.load(out, engine="staged")
    ids, mask = plain.encoder(TEXTS)
    for speed in (0.0, 0.3):
        a, la, _ = plain.run_ids(ids, mask, speed=speed)
        b, lb, _ = fused.run_ids(ids, mask, speed=speed)
        assert np.abs(a - b).max() < 1e-4
    assert runtime.read_manifest(bundle).optimization is None  # the default (none) records nothing


@pytest.mark.slow  # fast-tier budget: kept in the full suite
def test_auto_keeps_the_faster_form_for_every_layer_by_their_measured_times(student, tokenizer_file, tmp_path):
    out = tmp_path / "auto"
    export_student(student, tokenizer_file, ["negative", "positive"], out, max_length=40, optimize="auto")
    manifest = runtime.read_manifest(out)
    entries = [manifest.optimization["parts"][part.name] for part in manifest.staged[1:]]
    for entry in entries:
        ms = entry["ms"]
        assert set(ms) == {"none", "fused"} and all(len(v) == 2 and min(v) > 0 for v in ms.values())
    # one form for every layer: the faster by the layers' summed times (a per-layer choice follows noise)
    totals = {form: sum(sum(e["ms"][form]) for e in entries) for form in ("none", "fused")}
    assert {e["chosen"] for e in entries} == {min(totals, key=totals.get)}
    assert all("one form for every layer" in e["why"] for e in entries)
    for part, entry in zip(manifest.staged[1:], entries):
        fused_here = any(domain == "com.microsoft" for domain, _ in _ops(out / part.file))
        assert fused_here == (entry["chosen"] == "fused")


def test_a_bad_mode_is_refused_before_anything_is_written(finished_run, tmp_path):
    from edgekd.distill.export import ExportError, export_run

    with pytest.raises(ExportError, match="'fastest' is not one of none, fused, auto"):
        export_run(finished_run, tmp_path / "b", optimize="fastest")
    assert not (tmp_path / "b").exists()
