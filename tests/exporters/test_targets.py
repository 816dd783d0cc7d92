"""inspect --targets: onnxruntime's mobile usability checker on a bundle's graphs, as data and as text."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekd.cli import app
from exporters.targets import PROVIDERS, bundle_targets
from runtime.manifest import read_manifest

FIXTURES = Path(__file__).resolve().parents[2] / "js" / "test" / "fixtures"

pytestmark = pytest.mark.slow  # the checker optimizes and shape-infers every graph it reads


def test_the_report_covers_model_onnx_and_one_graph_per_stage_kind():
    bundle = FIXTURES / "int8"
    report = bundle_targets(bundle, read_manifest(bundle))
    assert report["precision"] == "int8" and list(report["graphs"]) == ["embed.onnx", "layer_01.onnx", "model.onnx"]
    graph = report["graphs"]["model.onnx"]
    assert set(graph["providers"]) == set(PROVIDERS) and graph["dynamic_inputs"] == ["input_ids", "attention_mask"]
    nnapi = graph["providers"]["NNAPI"]
    # what the published NNAPI issues say, found by onnxruntime's own lists: early exit's control flow and
    # scatter, dynamic int8's quantize / integer matmul
    assert {"ai.onnx:If", "ai.onnx:ScatterND", "ai.onnx:DynamicQuantizeLinear", "ai.onnx:MatMulInteger"} <= \
        set(nnapi["unsupported_ops"])
    assert 0 < nnapi["supported_nodes"] < nnapi["nodes"] and nnapi["verdict"] in ("NO", "MAYBE", "YES")


def test_inspect_targets_prints_each_provider_per_graph(tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(FIXTURES / "fp32", bundle)
    result = CliRunner().invoke(app, ["inspect", str(bundle), "--targets"])
    assert result.exit_code == 0, result.output
    for file in ("embed.onnx", "layer_01.onnx", "model.onnx"):
        assert f"  {file} (" in result.output
    assert result.output.count("\n    NNAPI ") == 3 and result.output.count("\n    CoreML MLProgram ") == 3
    assert "recommended:" in result.output
