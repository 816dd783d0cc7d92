"""The compiled graph (model.onnx): the exit rule inside one ONNX graph, checked against the staged runtime."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import runtime
from exporters import export_classifier, export_student
from exporters.compile import compile_early_exit
from exporters.quantize import precision_rewrite
from runtime.exits import SPEED_GRID, decide, normalized_entropy
from edgekd.testing.fixtures import SPECIALS, WORDS
from tests.conftest import TEXTS, make_student

VOCAB = len(SPECIALS) + len(WORDS) + 2

SPEEDS = list(SPEED_GRID) + [1.0]


@pytest.fixture(scope="module")
def compressed_bundle(tmp_path_factory, tokenizer_file):
    from edgekd.distill.vocab import VocabMap, compress_student, nearest_kept

    student = make_student(sharpen=60.0, seed=3)
    kept = np.array([0, 1, 2, 3, 4] + list(range(5, student.config.vocab_size, 2)))
    small = compress_student(student, VocabMap(kept, nearest_kept(student.embeddings.word.weight, kept))).eval()
    out = tmp_path_factory.mktemp("compiled") / "compressed"
    export_student(small, tokenizer_file, ["negative", "positive"], out, max_length=40)
    return out


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory, tokenizer_file):
    out = tmp_path_factory.mktemp("compiled") / "int8"
    export_student(make_student(sharpen=60.0, hidden=64), tokenizer_file, ["negative", "positive"], out,
                   max_length=40, rewrite=precision_rewrite("int8"))
    return out


@functools.lru_cache(maxsize=None)
def _loaded(bundle, engine):
    """One model per bundle and engine: these tests sweep speeds and batches over the same sessions."""
    return runtime.load(bundle, engine=engine)


def both_engines(bundle, texts, speed, batch):
    staged, graph = _loaded(bundle, "staged"), _loaded(bundle, "graph")
    assert staged.engine == "staged" and graph.engine == "graph"
    ids, mask = staged.encoder(texts[:batch])
    return staged.run_ids(ids, mask, speed), graph.run_ids(ids, mask, speed), staged.trace_ids(ids, mask)


@pytest.mark.parametrize("which", ["bundle", pytest.param("compressed_bundle", marks=pytest.mark.slow)])
def test_fp32_graph_gives_the_staged_decisions_at_every_speed(which, request):
    bundle = request.getfixturevalue(which)
    exits_seen = set()
    for batch in (1, 7, 32):
        for speed in SPEEDS:
            (s_logits, s_layer, s_unc), (g_logits, g_layer, g_unc), trace = both_engines(bundle, TEXTS, speed, batch)
            near = (np.abs(normalized_entropy(trace) - speed) < 1e-5).any(0)
            clear = ~near
            assert (s_layer[clear] == g_layer[clear]).all(), (batch, speed)
            assert (s_logits.argmax(1)[clear] == g_logits.argmax(1)[clear]).all()
            assert np.abs(s_logits - g_logits)[clear].max(initial=0) < 1e-4
            assert np.abs(s_unc - g_unc)[clear].max(initial=0) < 1e-5
            exits_seen.update(g_layer.tolist())
    assert len(exits_seen) == 3, "the fixture must exit at every layer somewhere for this test to mean anything"


def test_graph_equals_the_exit_rule_applied_to_every_head(bundle):
    model = runtime.load(bundle, engine="graph")
    ids, mask = model.encoder(TEXTS)
    trace = model.trace_ids(ids, mask)  # opens the staged sessions too
    for speed in (0.0, 0.5, 0.8, 0.95):
        want_logits, want_layer, want_unc = decide(trace, speed)
        logits, layer, unc = model.run_graph(ids, mask, speed)
        assert (layer == want_layer).all()
        assert np.abs(logits - want_logits).max() < 1e-4 and np.abs(unc - want_unc).max() < 1e-5


def test_int8_graph_agrees_with_the_staged_int8_runtime(int8_bundle):
    labels = exits = rows = 0
    for speed in SPEEDS:
        (s_logits, s_layer, _), (g_logits, g_layer, _), _ = both_engines(int8_bundle, TEXTS, speed, 32)
        labels += int((s_logits.argmax(1) == g_logits.argmax(1)).sum())
        exits += int((s_layer == g_layer).sum())
        rows += len(s_layer)
    assert labels / rows >= 0.99 and exits / rows >= 0.98
    manifest = runtime.read_manifest(int8_bundle)
    assert manifest.compiled_check["label_agreement"] >= 0.99


def test_rows_that_leave_skip_the_later_layers(bundle, tmp_path):
    """Structural: a debug build reports how many rows entered each layer; it must equal the
    number of rows whose exit layer is at least that layer."""
    manifest = runtime.read_manifest(bundle)
    embed, *layers = [onnx.load(str(bundle / s.file)) for s in manifest.staged]
    graph = compile_early_exit(embed, layers, 2, debug=True)
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    model = runtime.load(bundle)
    ids, mask = model.encoder(TEXTS)
    shrank = False
    for speed in (0.0, 0.4, 0.7, 0.9, 1.0):
        _, layer, _, entered = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                                  "speed": np.array(speed, np.float32)})
        assert entered.tolist() == [int((layer >= k).sum()) for k in (1, 2, 3)]
        shrank |= entered[-1] < len(ids)
    assert shrank


def test_graph_output_does_not_depend_on_batch_composition(bundle):
    model = runtime.load(bundle, engine="graph")
    together = model.classify(TEXTS, speed=0.6, batch_size=32)
    alone = [model.classify([t], speed=0.6, batch_size=1)[0] for t in TEXTS[:12]]
    for a, b in zip(alone, together):
        assert a.label == b.label and a.exit_layer == b.exit_layer
        assert np.allclose(list(a.probs.values()), list(b.probs.values()), atol=1e-5)


def test_compiled_graph_runs_with_onnxruntime_and_tokenizers_alone(bundle):
    """What an app in any language does: tokenizer.json + model.onnx, nothing of edgekd."""
    model = runtime.load(bundle)
    want = model.classify(TEXTS[:12], speed=0.7)
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np, onnxruntime as ort
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file({str(bundle / "tokenizer.json")!r})
        tok.enable_truncation(40)
        enc = [e.ids for e in tok.encode_batch({TEXTS[:12]!r})]
        width = max(map(len, enc))
        ids = np.zeros((len(enc), width), np.int64); mask = np.zeros_like(ids)
        for i, row in enumerate(enc):
            ids[i, :len(row)] = row; mask[i, :len(row)] = 1
        s = ort.InferenceSession({str(bundle / "model.onnx")!r}, providers=["CPUExecutionProvider"])
        logits, layer, unc = s.run(None, {{"input_ids": ids, "attention_mask": mask,
                                          "speed": np.array(0.7, np.float32)}})
        banned = [m for m in ("torch", "edgekd", "exporters", "runtime", "transformers") if m in sys.modules]
        print(json.dumps({{"labels": logits.argmax(1).tolist(), "layers": layer.tolist(), "banned": banned}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd="/")
    got = json.loads(out.stdout)
    assert got["banned"] == []
    assert got["layers"] == [p.exit_layer for p in want]
    assert [model.labels[i] for i in got["labels"]] == [p.label for p in want]


@pytest.mark.slow  # fast-tier budget: kept in the full suite
@pytest.mark.parametrize("which", ["bundle", pytest.param("int8_bundle", marks=pytest.mark.slow)])
def test_compiled_graph_is_portable_onnx_and_converts_to_ort_format(which, request, tmp_path):
    bundle = request.getfixturevalue(which)
    onnx.checker.check_model(onnx.load(str(bundle / "model.onnx")), full_check=True)
    target = tmp_path / "model.onnx"
    target.write_bytes((bundle / "model.onnx").read_bytes())
    subprocess.run([sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(target)],
                   check=True, capture_output=True, text=True)
    ort_file = tmp_path / "model.ort"
    assert ort_file.is_file()
    session = ort.InferenceSession(str(ort_file), providers=["CPUExecutionProvider"])
    model = runtime.load(bundle, engine="graph")
    ids, mask = model.encoder(TEXTS[:8])
    feeds = {"input_ids": ids, "attention_mask": mask, "speed": np.array(0.5, np.float32)}
    want = model.run_graph(ids, mask, 0.5)
    got = session.run(None, feeds)
    assert (got[1] == want[1]).all() and np.abs(got[0] - want[0]).max() < 1e-4


@pytest.mark.parametrize("kind", ["bilstm", "textcnn"])
def test_one_graph_students_answer_the_same_call(kind, tmp_path, tokenizer_file):
    from edgekd.distill.students import SmallStudentConfig, build_small_student

    torch.manual_seed(0)
    student = build_small_student(SmallStudentConfig(kind=kind, vocab_size=VOCAB, embed_size=16, hidden_size=12,
                                                     filters=8, dropout=0.0)).eval()
    result = export_classifier(student, tokenizer_file, ["negative", "positive"], tmp_path / kind, max_length=32)
    assert [s.file for s in result.manifest.parts] == ["model.onnx"]
    session = ort.InferenceSession(str(tmp_path / kind / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask", "speed"]
    model = runtime.load(tmp_path / kind)
    ids, mask = model.encoder(TEXTS[:9])
    outs = [session.run(None, {"input_ids": ids, "attention_mask": mask, "speed": np.array(s, np.float32)})
            for s in (0.0, 0.9)]
    assert np.array_equal(outs[0][0], outs[1][0]), "speed is ignored by a one-graph student"
    logits, layer, unc = outs[0]
    with torch.no_grad():
        want = student(torch.from_numpy(ids), torch.from_numpy(mask)).logits.numpy()
    assert np.abs(logits - want).max() < 1e-4
    assert (layer == 1).all() and np.abs(unc - normalized_entropy(logits)).max() < 1e-6


def test_engine_choice(bundle_copy):
    assert runtime.load(bundle_copy).engine == "graph"  # no calibration: graph on CPU
    with pytest.raises(ValueError, match="unknown engine"):
        runtime.load(bundle_copy, engine="fast")
    manifest = runtime.read_manifest(bundle_copy)
    manifest.calibration = runtime.manifest.Calibration(data="d", machine="m", engine="staged",
                                                        engine_latency_ms={"staged": 1.0, "graph": 2.0})
    runtime.manifest.write_manifest(bundle_copy, manifest)
    assert runtime.load(bundle_copy).engine == "staged"
    assert runtime.load(bundle_copy, engine="graph").engine == "graph"


def _op_domains(graph) -> set[str]:
    """The operator domains of a graph and of its subgraphs (the If branches)."""
    import onnx

    out = set()
    for node in graph.node:
        out.add(node.domain or "ai.onnx")
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                out |= _op_domains(attr.g)
    return out


@pytest.mark.slow
def test_model_onnx_from_fused_layers_runs_fewer_kernels_and_answers_the_same(tokenizer_file, tmp_path):
    """Issue 40, section 2: model.onnx composed from the fused layer graphs (--graph-form auto) against the
    portable one: fewer kernels (onnxruntime's profiler), the same answers at every grid speed, and the portable
    graph holds only standard ONNX operators."""
    import onnx

    from exporters import export_student
    from runtime.exits import SPEED_GRID
    from runtime.timing import kernel_profile
    from tests.conftest import TEXTS, make_student

    student = make_student(hidden=64, layers=3, sharpen=5.0)
    bundles = {form: export_student(student, tokenizer_file, ["n", "p"], tmp_path / form, max_length=40,
                                    optimize="fused", graph_form=form).path for form in ("auto", "portable")}
    fused, portable = (runtime.load(bundles[f], engine="graph") for f in ("auto", "portable"))
    assert fused.manifest.graph.form == "fused" and portable.manifest.graph.form == "portable"
    assert _op_domains(onnx.load(str(bundles["portable"] / "model.onnx")).graph) == {"ai.onnx"}
    assert "com.microsoft" in _op_domains(onnx.load(str(bundles["auto"] / "model.onnx")).graph)
    assert kernel_profile(fused, TEXTS[:3])["kernels_per_text"] < kernel_profile(portable, TEXTS[:3])[
        "kernels_per_text"] * 0.75
    ids, mask = fused.encoder(TEXTS)
    for speed in list(SPEED_GRID) + [1.0]:
        a, b = fused.run_graph(ids, mask, speed), portable.run_graph(ids, mask, speed)
        assert (a[1] == b[1]).all() and np.abs(a[0] - b[0]).max() < 1e-4, speed


@pytest.mark.slow
def test_compaction_runs_only_on_rows_that_really_leave(tokenizer_file, tmp_path):
    """Issue 40: while no row leaves (speed 0, or batch 1 until it leaves), a layer of model.onnx runs its own
    kernels, the rule's and the decision (ReduceMin, Less): nothing is compacted, handed on or scattered back,
    and the mask nodes (the attention's mask index, the head's pooling weights) run once, not per layer. Rows
    that leave are compacted as before (compiled == staged is checked elsewhere)."""
    import collections
    import json

    import onnxruntime as ort

    from exporters import export_student
    from runtime.timing import kernel_events
    from tests.conftest import TEXTS, make_student

    student = make_student(hidden=64, layers=4, sharpen=5.0)  # 4 layers, as the target is stated
    path = export_student(student, tokenizer_file, ["n", "p"], tmp_path / "b", max_length=40, optimize="fused",
                          graph_form="auto").path
    model = runtime.load(path, engine="graph")

    def kernels(items, speed):
        options = ort.SessionOptions()
        options.enable_profiling, options.profile_file_prefix = True, str(tmp_path / "p")
        session = ort.InferenceSession(str(path / "model.onnx"), options, providers=["CPUExecutionProvider"])
        session.run(None, model.batch(*model.encode(items)).feeds(("input_ids", "attention_mask", "speed"), speed))
        return collections.Counter(op for op, _ in kernel_events(json.loads(open(session.end_profiling()).read())))

    still = kernels(TEXTS[:1], 0.0)
    assert not {"Compress", "NonZero", "ScatterND", "Identity"} & set(still)  # nothing gathered, handed on, or
    assert still["ReduceMin"] == model.num_layers - 1  # scattered back: the decision alone per layer
    assert still["Gather"] <= 3  # the embedding's, none per layer
    assert still["Cast"] <= 2  # the mask nodes ran once
    assert sum(still.values()) / model.num_layers <= 25  # issue 40's target, embedding and exit rule included
    gone = kernels(TEXTS[:1], 1.0)  # the one row leaves at layer 1: its answers as they are, nothing compacted
    assert model.run_graph(*model.encoder(TEXTS[:1]), 1.0)[1].tolist() == [1]
    assert not {"Compress", "NonZero", "ScatterND"} & set(gone) and sum(gone.values()) < sum(still.values()) / 2
    mixed = [speed for speed in np.linspace(0.05, 0.95, 19)
             if len(set(model.run_graph(*model.encoder(TEXTS[:6]), float(speed))[1].tolist())) > 1]
    assert mixed, "no speed makes these rows leave at different layers"
    moving = kernels(TEXTS[:6], float(mixed[0]))
    assert moving["Compress"] >= 3 and moving["NonZero"] >= 1  # rows that left were set aside
