"""exporters.defuse: onnxruntime's fused operators written back as standard ONNX operators answer as the fused
kernels do (onnxruntime runs both), what has no standard form here is refused by name, and `pack --portable`
turns a bundle whose model.onnx is fused into one of standard operators that answers as the full bundle."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporters.defuse import defuse
from runtime.errors import EdgeKDError

BATCH, SEQ, HIDDEN, HEADS = 3, 7, 16, 4


def _graph(nodes, inputs, initializers, outputs) -> onnx.ModelProto:
    shape = ["batch", "seq", HIDDEN]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(o, TensorProto.FLOAT, shape)
                                                   for o in outputs], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])


def _fused_layer(mask_rank: int) -> onnx.ModelProto:
    """Attention (packed QKV, a 1-D lengths or 2-D 0/1 mask) -> SkipLayerNormalization (with its sum output)
    -> BiasGelu -> FastGelu -> Gelu: every rewrite, as onnxruntime's optimizer writes them."""
    rng = np.random.default_rng(0)
    weights = {"w": rng.standard_normal((HIDDEN, 3 * HIDDEN)) * 0.3, "b": rng.standard_normal(3 * HIDDEN) * 0.1,
               "gamma": 1 + rng.standard_normal(HIDDEN) * 0.1, "beta": rng.standard_normal(HIDDEN) * 0.1,
               "bias": rng.standard_normal(HIDDEN) * 0.1}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    mask = helper.make_tensor_value_info("mask", TensorProto.INT32, ["batch"] + (["seq"] if mask_rank == 2 else []))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", HIDDEN])
    ms = "com.microsoft"
    nodes = [
        helper.make_node("Attention", ["x", "w", "b", "mask"], ["att"], domain=ms, num_heads=HEADS),
        helper.make_node("SkipLayerNormalization", ["att", "x", "gamma", "beta", "bias"], ["ln", "", "", "sum"],
                         domain=ms, epsilon=1e-12),
        helper.make_node("BiasGelu", ["ln", "bias"], ["g1"], domain=ms),
        helper.make_node("FastGelu", ["g1", "bias"], ["g2"], domain=ms),
        helper.make_node("Gelu", ["g2"], ["out"], domain=ms),
    ]
    return _graph(nodes, [x, mask], inits, ["out", "sum"])


def _run(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize("mask_rank", [1, 2])
def test_defused_graph_holds_standard_operators_and_answers_as_the_fused_kernels(mask_rank):
    fused = _fused_layer(mask_rank)
    plain = copy.deepcopy(fused)
    assert defuse(plain) == 5
    onnx.checker.check_model(plain, full_check=True)
    assert {n.domain for n in plain.graph.node} == {""} and {o.domain for o in plain.opset_import} == {""}
    lengths = np.array([SEQ, 4, 1], np.int32)
    keys = (np.arange(SEQ)[None, :] < lengths[:, None]).astype(np.int32)
    feeds = {"x": np.random.default_rng(1).standard_normal((BATCH, SEQ, HIDDEN)).astype(np.float32),
             "mask": lengths if mask_rank == 1 else keys}
    want, got = _run(fused, feeds), _run(plain, feeds)
    for w, g in zip(want, got):
        assert w.shape == g.shape and np.abs(w - g).max() < 1e-5
    # the mask matters: a shorter row changes what its first token attends to
    shorter = dict(feeds, mask=np.array([SEQ, 2, 1], np.int32) if mask_rank == 1 else keys * (np.arange(SEQ) < 2))
    assert np.abs(_run(plain, shorter)[0][1, 0] - got[0][1, 0]).max() > 1e-3
    assert np.abs(_run(plain, shorter)[0][1, 0] - _run(fused, shorter)[0][1, 0]).max() < 1e-5


def test_what_has_no_standard_form_is_refused_by_name():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", HIDDEN])
    node = helper.make_node("EmbedLayerNormalization", ["x"], ["y"], domain="com.microsoft")
    with pytest.raises(EdgeKDError, match="no standard form for onnxruntime's fused EmbedLayerNormalization"):
        defuse(_graph([node], [x], [], ["y"]))
    causal = _fused_layer(1)
    causal.graph.node[0].attribute.append(helper.make_attribute("unidirectional", 1))
    with pytest.raises(EdgeKDError, match="causal masking"):
        defuse(causal)
    old = _fused_layer(1)
    old.opset_import[0].version = 13
    with pytest.raises(EdgeKDError, match="opset >= 17"):
        defuse(old)


@pytest.mark.slow
def test_pack_portable_rebuilds_a_fused_bundle_from_standard_operators(tokenizer_file, tmp_path):
    """Issue 40: where a target cannot run a fused op, pack rebuilds the form it can from the layer graphs the
    full bundle keeps; the mobile target takes the fused form as it is (ONNX Runtime's packages run it)."""
    import runtime
    from edgekd.pack import pack
    from exporters import export_student
    from runtime.exits import SPEED_GRID
    from runtime.manifest import read_manifest
    from tests.conftest import TEXTS, make_student
    from tests.exporters.test_compiled import _op_domains

    path = export_student(make_student(hidden=64, layers=3, sharpen=5.0), tokenizer_file, ["n", "p"],
                          tmp_path / "b", max_length=40, optimize="fused", graph_form="auto").path
    assert read_manifest(path).graph.form == "fused"
    full = runtime.load(path, engine="graph")
    web = pack(path, tmp_path / "web", "web", portable=True, log=lambda *_: None)
    assert read_manifest(web).parts[0].form == "portable"
    assert _op_domains(onnx.load(str(web / "model.onnx")).graph) == {"ai.onnx"}
    slim = runtime.load(web)
    for speed in list(SPEED_GRID) + [1.0]:
        (a, la, _), (b, lb, _) = full.outputs(TEXTS, speed=speed), slim.outputs(TEXTS, speed=speed)
        assert (la == lb).all() and np.abs(a - b).max() < 1e-4, speed
    for portable in (False, True):
        mobile = pack(path, tmp_path / f"mobile-{portable}", "mobile", portable=portable, log=lambda *_: None)
        assert read_manifest(mobile).parts[0].form == ("portable" if portable else "fused")
        for speed in (0.0, 0.5):
            (a, la, _), (b, lb, _) = full.outputs(TEXTS, speed=speed), runtime.load(mobile).outputs(TEXTS, speed=speed)
            assert (la == lb).all() and np.abs(a - b).max() < 1e-4
    with pytest.raises(EdgeKDError, match="--choose times the bundle's own graph forms"):
        pack(path, tmp_path / "x", "web", choose_texts=["a"], portable=True)
