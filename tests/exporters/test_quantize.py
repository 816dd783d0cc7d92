"""Precision passes on tiny graphs, and quantized bundles checked against fp32."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import runtime
from edgekd.distill.export import export_run
from exporters import export_student
from exporters.quantize import INT8_METHODS, apply_precision, quantize_int8
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


@pytest.mark.slow  # fast-tier budget: kept in the full suite
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


def _words_texts(n: int, seed: int = 0) -> list[str]:
    from edgekd.testing.fixtures import WORDS

    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 12)))) for _ in range(n)]


def _layer_feeds(n: int, hidden: int = 64, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"hidden": rng.standard_normal((4, 9, hidden)).astype(np.float32), "mask": np.ones((4, 9), np.int64),
             "rows": np.arange(4, dtype=np.int64)} for _ in range(n)]


@pytest.mark.parametrize("method", INT8_METHODS)
def test_every_int8_method_rewrites_the_layer_and_stays_close(fp32_bundle, tmp_path, method):
    target = tmp_path / "layer.onnx"
    quantize_int8(fp32_bundle / "layer_02.onnx", target, method, feeds=_layer_feeds(8))
    model = onnx.load(str(target))
    ops = {n.op_type for n in model.graph.node}
    if method.startswith("static"):  # QDQ: fixed scales, no run-time range search
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "DynamicQuantizeLinear" not in ops
    else:
        assert "DynamicQuantizeLinear" in ops
    # the exit head's weights (head.dense, head.classifier) stay floats only where it is kept fp32
    int8_weights = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8}
    assert any(w.startswith("head.") for w in int8_weights) != (method == "dynamic-fp32-heads")
    assert any(w.startswith("onnx::MatMul") for w in int8_weights)  # the trunk is int8 in every form
    weight_scales = [i for i in model.graph.initializer if i.name.endswith("scale") and "weight" in i.name.lower()
                     or (i.name.endswith("_scale") and len(i.dims) == 1)]
    widths = {int(np.prod(i.dims)) for i in weight_scales}
    assert (max(widths, default=1) > 1) == method.endswith("per-channel")  # one scale per output channel
    feed = _layer_feeds(1, seed=7)[0]
    want = run_layer(fp32_bundle / "layer_02.onnx", feed["hidden"], feed["mask"])
    got = run_layer(target, feed["hidden"], feed["mask"])
    assert np.abs(want[1] - got[1]).max() < 0.1
    assert np.abs(want[0] - got[0]).mean() < 0.05


def test_static_int8_needs_calibration_inputs(fp32_bundle, tmp_path):
    with pytest.raises(ValueError, match="calibration"):
        quantize_int8(fp32_bundle / "layer_02.onnx", tmp_path / "l.onnx", "static")
    with pytest.raises(ValueError, match="unknown int8 method"):
        quantize_int8(fp32_bundle / "layer_02.onnx", tmp_path / "l.onnx", "int4")


@pytest.mark.slow  # builds and times four int8 variants
def test_auto_int8_keeps_the_fastest_agreeing_method_and_records_true_agreement(fp32_bundle, tmp_path):
    import shutil

    from exporters.quantize import MIN_AGREEMENT, choose_int8
    from runtime.manifest import read_manifest

    folder = tmp_path / "b"
    shutil.copytree(fp32_bundle, folder)
    manifest = read_manifest(folder)
    manifest.parts = list(manifest.staged)
    texts = _words_texts(120)
    record = choose_int8(folder, manifest, "auto", texts, repeats=5, log=lambda _: None)
    assert set(record["candidates"]) == set(INT8_METHODS) and record["texts"] == 120
    ok = [m for m, r in record["candidates"].items() if min(r["agreement"]) >= MIN_AGREEMENT]
    times = {m: r["ms"] for m, r in record["candidates"].items()}

    def relative(m):  # time relative to dynamic int8, averaged over the timed shapes
        return np.mean([times[m][shape] / times["dynamic"][shape] for shape in times[m]])

    if ok:
        assert record["chosen"] == min(ok, key=relative)
    else:
        assert record["chosen"] == max(record["candidates"], key=lambda m: min(record["candidates"][m]["agreement"]))
    # the recorded agreement is that of the graphs now in the folder, exit by exit
    from exporters.bundle import sha256_file
    from runtime.manifest import write_manifest

    manifest = read_manifest(folder)
    for part in manifest.staged:
        part.sha256 = sha256_file(folder / part.file)
    write_manifest(folder, manifest)
    fp32 = runtime.load(fp32_bundle, engine="staged")
    int8 = runtime.load(folder, engine="staged")
    ids, mask = fp32.encoder(texts)
    agree = (fp32.trace_ids(ids, mask).argmax(-1) == int8.trace_ids(ids, mask).argmax(-1)).mean(axis=1)
    np.testing.assert_allclose(agree, record["candidates"][record["chosen"]]["agreement"], atol=0.02)
    ops = {n.op_type for n in onnx.load(str(folder / "layer_01.onnx")).graph.node}
    assert ("DynamicQuantizeLinear" in ops) == record["chosen"].startswith("dynamic")


def test_explicit_static_int8_needs_data_and_bad_methods_are_refused(finished_run, tmp_path):
    from edgekd.distill.export import ExportError

    with pytest.raises(ExportError, match="needs --data"):
        export_run(finished_run, tmp_path / "s", precision="int8", int8="static")
    with pytest.raises(ExportError, match="--int8 'int4'"):
        export_run(finished_run, tmp_path / "s", precision="int8", int8="int4")
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_auto_int8_without_texts_is_dynamic(finished_run, tmp_path):
    result = export_run(finished_run, tmp_path / "a", precision="int8", int8="auto", log=lambda _: None)
    assert result.manifest.quantization["chosen"] == "dynamic"
    assert "no --data" in result.manifest.quantization["why"]


@pytest.mark.slow  # fuses, quantizes, compiles and validates a bundle
def test_fused_int8_layers_run_qattention_in_model_onnx_and_agree_with_fp32(tokenizer_file, tmp_path):
    """Issue 40: int8 from the fused layer graphs (the Optimum way: fuse, then dynamic int8 over every op
    onnxruntime quantizes) as an export candidate: QAttention in the layers and in model.onnx, the layers'
    form recorded as fused, the compiled graph checked against the staged one as int8 is."""
    from exporters.quantize import FUSED, choose_int8

    texts = _words_texts(60)
    records = {}

    def rewrite(folder, manifest):
        records["q"] = manifest.quantization = choose_int8(folder, manifest, FUSED, texts, repeats=3,
                                                           log=lambda _: None, num_heads=2)
        manifest.precision = "int8"
        return manifest

    student = make_student(hidden=64, layers=3, sharpen=5.0)
    path = export_student(student, tokenizer_file, ["n", "p"], tmp_path / "b", max_length=40, rewrite=rewrite).path
    assert records["q"]["chosen"] == FUSED and min(records["q"]["candidates"][FUSED]["agreement"]) > 0.9
    model = runtime.load(path, engine="graph")
    assert [p.form for p in model.manifest.layer_parts] == ["fused"] * 3 and model.manifest.graph.form == "fused"

    def ops(graph) -> set[str]:
        out = set()
        for node in graph.node:
            out.add(node.op_type)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    out |= ops(attr.g)
        return out

    assert "QAttention" in ops(onnx.load(str(path / "layer_02.onnx")).graph)
    assert "QAttention" in ops(onnx.load(str(path / "model.onnx")).graph)
    fp32 = runtime.load(export_student(student, tokenizer_file, ["n", "p"], tmp_path / "f", max_length=40).path)
    same = [a.label == b.label for a, b in zip(model.classify(texts, speed=0.0), fp32.classify(texts, speed=0.0))]
    assert np.mean(same) >= 0.9
    with pytest.raises(ValueError, match="number of attention heads"):
        choose_int8(path, model.manifest, FUSED, texts, log=lambda _: None)


def _table_graph(path, table, also_matmul=False):
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Gather", ["table", "ids"], ["rows"], axis=0)]
    outputs = [helper.make_tensor_value_info("rows", TensorProto.FLOAT, None)]
    if also_matmul:  # a table some other op also reads (tied weights) is not only a lookup: left alone
        nodes.append(helper.make_node("MatMul", ["rows", "table_t"], ["scores"]))
        nodes.append(helper.make_node("Transpose", ["table"], ["table_t"]))
        nodes = [nodes[0], nodes[2], nodes[1]]
        outputs.append(helper.make_tensor_value_info("scores", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [None])], outputs,
                              [numpy_helper.from_array(table, "table")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_embedding_tables_are_int8_by_row_each_row_as_exact_as_its_own_largest_value(tmp_path):
    from exporters.weights import int8_tables

    rng = np.random.default_rng(0)
    # rows of very different sizes: one scale for the whole table would leave the small rows almost all error
    table = (rng.standard_normal((300, 16)) * np.logspace(-3, 0, 300)[:, None]).astype(np.float32)
    _table_graph(tmp_path / "fp32.onnx", table)
    assert int8_tables(tmp_path / "fp32.onnx", tmp_path / "int8.onnx") == 1
    model = onnx.load(str(tmp_path / "int8.onnx"))
    stored = {i.name: i.data_type for i in model.graph.initializer}
    assert stored == {"table_int8": onnx.TensorProto.INT8, "table_row_scale": onnx.TensorProto.FLOAT}
    ids = np.array([0, 7, 150, 299, 7], dtype=np.int64)
    got = ort.InferenceSession(str(tmp_path / "int8.onnx")).run(None, {"ids": ids})[0]
    row_step = np.abs(table[ids]).max(axis=1, keepdims=True) / 127
    assert got.shape == (5, 16)
    assert (np.abs(got - table[ids]) <= row_step / 2 + 1e-7).all()
    assert np.abs(got[0] - table[0]).max() < 1e-5  # the smallest row (|x| ~ 1e-3) keeps its values
    assert (tmp_path / "int8.onnx").stat().st_size < (tmp_path / "fp32.onnx").stat().st_size / 3


def test_a_table_that_is_not_only_looked_up_stays_fp32(tmp_path):
    from exporters.weights import int8_tables

    _table_graph(tmp_path / "fp32.onnx", np.ones((64, 32), dtype=np.float32), also_matmul=True)
    assert int8_tables(tmp_path / "fp32.onnx", tmp_path / "same.onnx") == 0
    assert [i.data_type for i in onnx.load(str(tmp_path / "same.onnx")).graph.initializer] == [onnx.TensorProto.FLOAT]


def test_int8_embed_graph_looks_up_int8_rows_and_stays_close(fp32_bundle, tmp_path):
    quantize_int8(fp32_bundle / "embed.onnx", tmp_path / "embed.onnx", "dynamic")
    model = onnx.load(str(tmp_path / "embed.onnx"))
    int8 = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert int8 and all(i.name.endswith("_int8") for i in int8)
    assert "DequantizeLinear" not in {n.op_type for n in model.graph.node}  # not onnxruntime's per-tensor table
    feed = {"input_ids": np.array([[2, 5, 9, 3]], dtype=np.int64), "token_type_ids": np.zeros((1, 4), np.int64)}
    names = {i.name for i in ort.InferenceSession(str(tmp_path / "embed.onnx")).get_inputs()}
    feed = {k: v for k, v in feed.items() if k in names}
    want = ort.InferenceSession(str(fp32_bundle / "embed.onnx")).run(None, feed)[0]
    got = ort.InferenceSession(str(tmp_path / "embed.onnx")).run(None, feed)[0]
    assert np.abs(want - got).max() < 0.05
