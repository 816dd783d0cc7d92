"""runtime.timing.profile_graph: onnxruntime's profile of one batch through model.onnx, for single texts and for a
bundle of text pairs (whose graph takes token_type_ids too)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import runtime
from runtime.timing import profile_graph

FIXTURES = Path(__file__).resolve().parents[2] / "js" / "test" / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["fp32", "pair"])
def test_profile_graph_runs_a_batch_of_the_bundles_items(name, tmp_path):
    model = runtime.load(FIXTURES / name, engine="graph")
    items = [tuple(p) for p in EXPECTED["bundles"]["pair"]["pairs"]] if name == "pair" else EXPECTED["texts"]
    per_op = profile_graph(model, items[:8], tmp_path / "profile.json", speed=0.0)
    assert (tmp_path / "profile.json").is_file() and per_op and all(ms >= 0 for ms in per_op.values())
    assert any(op in per_op for op in ("MatMul", "Gemm", "FusedMatMul"))
