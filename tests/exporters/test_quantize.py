"""Precision passes on tiny graphs, and quantized bundles checked against fp32."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import runtime
from edgekd.export import export_run
from exporters import export_student
from exporters.quantize import apply_precision
from runtime.exits import REPORT_SPEEDS
from tests.conftest import make_student


@pytest.fixture(scope="module")
def fp32_bundle(tmp_path_factory, tokenizer_file):
    out = tmp_path_factory.mktemp("q") / "fp32"
    export_student(make_student(hidden=64), tokenizer_file, ["n", "p"], out, max_length=24)
    return out


def run_layer(path, hidden, mask):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"hidden": hidden, "mask": mask, "rows": np.arange(len(hidden))})


@pytest.mark.parametrize("precision,op,atol", [("int8", "DynamicQuantizeLinear", 0.1), ("fp16", None, 5e-3)])
def test_precision_pass_rewrites_and_stays_close(fp32_bundle, tmp_path, precision, op, atol):
    target = tmp_path / "layer.onnx"
    target.write_bytes((fp32_bundle / "layer_02.onnx").read_bytes())
    apply_precision(tmp_path, ["layer.onnx"], precision)
    model = onnx.load(str(target))
    if op:
        assert op in {n.op_type for n in model.graph.node}
    else:
        types = {i.data_type for i in model.graph.initializer}
        assert onnx.TensorProto.FLOAT16 in types
        assert all(i.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16 for i in model.graph.input)
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((3, 11, 64)).astype(np.float32)
    mask = np.ones((3, 11), dtype=np.int64)
    want = run_layer(fp32_bundle / "layer_02.onnx", hidden, mask)
    got = run_layer(target, hidden, mask)
    assert np.abs(want[1] - got[1]).max() < atol
    assert np.abs(want[0] - got[0]).mean() < 10 * atol


def test_unknown_precision(tmp_path):
    with pytest.raises(ValueError, match="unknown precision"):
        apply_precision(tmp_path, [], "int4")


def test_int8_run_export_reports_agreement_and_recalibrates(finished_run, tiny_data, tmp_path):
    result = export_run(finished_run, tmp_path / "b8", precision="int8", data=tiny_data["dev"], max_drop=1.0)
    m = result.manifest
    assert m.precision == "int8"
    check = m.precision_check
    assert check["texts"] == 48 and set(check["speeds"]) == {f"{s:g}" for s in REPORT_SPEEDS}
    for row in check["speeds"].values():
        assert 0.8 <= row["prediction_agreement"] <= 1.0
        assert 0.0 <= row["exit_agreement"] <= 1.0
    assert m.calibration is not None and m.calibration.rule == "max_drop=1 points"
    model = runtime.load(result.path)
    assert len(model.classify(["good film"])) == 1
