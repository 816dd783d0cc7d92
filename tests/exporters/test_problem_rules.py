"""The exit rule of each problem type: numpy against hand computations and crafted logits, the torch twin
against numpy, the compiled graph and the staged runtime against each other and against torch, and the
answers' shapes (Prediction fields) per type."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import runtime
from runtime.exits import ExitRule, binary_entropy, decide, disagreement
from tests.conftest import make_student


def test_binary_entropy_is_the_largest_label_entropy_over_log_2():
    logits = np.array([[0.0, 8.0, -8.0], [6.0, -6.0, 5.0]])
    p = 1 / (1 + np.exp(-logits))
    h = -(p * np.log(p) + (1 - p) * np.log(1 - p)) / math.log(2)
    assert np.allclose(binary_entropy(logits), h.max(-1), atol=1e-6)
    assert binary_entropy(logits)[0] == pytest.approx(1.0)  # a label at p = 0.5: as unsure as can be
    assert np.isfinite(binary_entropy(np.array([[1e4, -1e4]]))).all()


def test_a_multi_label_row_with_one_uncertain_label_stays():
    rule = ExitRule("multi-label")
    sure = [9.0, -9.0, -9.0]
    one_unsure = [9.0, 0.2, -9.0]
    exits = np.array([[sure, one_unsure], [sure, sure]])  # (L=2, B=2, C=3)
    _, layers, unc = decide(exits, 0.1, rule)
    assert layers.tolist() == [1, 2]  # the sure row leaves at layer 1; the other waits for the last layer
    assert unc[0] < 0.1


def test_regression_rows_leave_when_consecutive_heads_agree():
    rule = ExitRule("regression", scale=2.0)
    exits = np.array([[[1.0], [1.0]], [[1.1], [3.0]], [[1.12], [2.0]], [[1.0], [2.1]]])  # (L=4, B=2, C=1)
    u = rule.trace(exits)
    assert u[0].tolist() == [1.0, 1.0]  # no head before the first: full uncertainty
    assert u[1] == pytest.approx([0.05, 1.0])  # gaps 0.1 and 2.0 over the scale 2, capped at 1
    logits, layers, _ = decide(exits, 0.06, rule)
    assert layers.tolist() == [2, 4]
    assert logits[:, 0].tolist() == pytest.approx([1.1, 2.1])
    assert disagreement(np.array([[3.0]]), None, 1.0).tolist() == [1.0]
    # patience 2 (PABEE's, what export writes): the last two gaps must both be small, so nothing leaves at layer 2
    # (its window holds the first head's 1) and row 0 waits for its third head (gaps 0.05 then 0.01)
    two = ExitRule("regression", scale=2.0, patience=2)
    u = two.trace(exits)
    assert u[1].tolist() == [1.0, 1.0] and u[2] == pytest.approx([0.05, 1.0]) and u[3] == pytest.approx([0.06, 0.5])
    logits, layers, _ = decide(exits, 0.06, two)
    assert layers.tolist() == [3, 4] and logits[:, 0].tolist() == pytest.approx([1.12, 2.1])


def test_a_rule_refuses_unknown_types_and_bad_scales():
    with pytest.raises(runtime.InputError, match="unknown problem type 'ranking'"):
        ExitRule("ranking")
    with pytest.raises(runtime.InputError, match="scale"):
        ExitRule("regression", scale=0.0)
    for bad in (0, 1.5, True, "2"):
        with pytest.raises(runtime.InputError, match="patience must be a whole number >= 1"):
            ExitRule("regression", patience=bad)
    with pytest.raises(runtime.InputError, match="patience belongs to the regression exit rule"):
        ExitRule("single-label", patience=2)


@pytest.mark.parametrize("problem,patience", [("single-label", 1), ("multi-label", 1), ("multi-label-at-thresholds", 1),
                                              ("regression", 1), ("regression", 2), ("regression", 3)])
def test_the_torch_twin_equals_the_runtime_rule(problem, patience):
    import torch

    from edgekd.distill.evaluate import apply_exit_rule, exit_uncertainty

    problem, _, at = problem.partition("-at-")
    thresholds = (0.1, 0.3, 0.5, 0.85) if at else None
    gen = np.random.default_rng(3)
    width = 1 if problem == "regression" else 4
    exits = (gen.normal(size=(5, 64, width)) * (0.3 if problem == "regression" else 3)).astype(np.float32)
    rule = ExitRule(problem, scale=1.7, patience=patience, thresholds=thresholds)
    twin = exit_uncertainty(torch.from_numpy(exits), problem, 1.7, patience, thresholds=thresholds).numpy()
    assert np.allclose(twin, rule.trace(exits), atol=1e-5)
    for speed in (0.0, 0.2, 0.5, 0.8):
        want_logits, want_layers, _ = decide(exits, speed, rule)
        if problem == "regression":
            assert want_layers.min() >= min(patience + 1, 5) or speed == 0.0  # the window holds the first head's 1
        got_logits, got_layers = apply_exit_rule(torch.from_numpy(exits), speed, problem, 1.7, patience,
                                                 thresholds=thresholds)
        assert got_layers.numpy().tolist() == want_layers.tolist()
        assert np.allclose(got_logits.numpy(), want_logits)


@pytest.fixture(scope="module", params=["multi-label", "regression",
                                        pytest.param("multi-label-at-thresholds", marks=pytest.mark.slow),
                                        pytest.param("regression-patience-2", marks=pytest.mark.slow)])
def typed_bundle(request, tmp_path_factory, tokenizer_file):
    from exporters import export_student
    from runtime.task import Task, exit_rule_record

    problem, _, patience = request.param.partition("-patience-")
    problem, _, at = problem.partition("-at-")
    labels = ["joy", "anger", "fear"] if problem == "multi-label" else ["score"]
    sharpen = {"multi-label": 200.0, "regression": 3.0 if patience else 100.0}[problem]  # exits spread over layers
    student = make_student(sharpen=sharpen, layers=4, num_labels=len(labels),
                           problem=problem, seed=5)
    rule = {"name": "consecutive-gap", "scale": 1.0, "patience": int(patience)} if patience else None
    thresholds = [0.2, 0.5, 0.7] if at else None  # the rule at thresholds, compiled into model.onnx as well
    if at:
        rule = exit_rule_record(problem, at_thresholds=True)
    task = Task(problem, target_scale=1.0 if problem == "regression" else None, exit_rule=rule, thresholds=thresholds)
    out = tmp_path_factory.mktemp("typed") / request.param
    export_student(student, tokenizer_file, labels, out, max_length=40, task=task)  # checks model.onnx vs staged
    return problem, student, out


def test_typed_bundles_match_torch_on_both_engines(typed_bundle):
    import torch

    from edgekd.distill.evaluate import apply_exit_rule

    problem, student, path = typed_bundle
    graph, staged = runtime.load(path, engine="graph"), runtime.load(path, engine="staged")
    assert graph.manifest.problem == problem and graph.rule.problem == problem
    assert graph.rule.patience == (2 if path.name.endswith("patience-2") else 1)  # the manifest's, 1 by default
    assert graph.rule.thresholds == staged.rule.thresholds == \
        ((0.2, 0.5, 0.7) if path.name.endswith("thresholds") else None)
    texts = [" ".join(["great", "awful", "movie", "plot"][: 1 + i % 4] * (1 + i % 3)) for i in range(23)]
    ids, mask, _ = graph.encode(texts)
    with torch.no_grad():
        exits = torch.stack(student(torch.from_numpy(ids), torch.from_numpy(mask)).exit_logits)
    spread = set()
    for speed in (0.0, 0.3, 0.8, 0.9, 0.95):
        want_logits, want_layers = apply_exit_rule(exits, speed, problem, graph.rule.scale, graph.rule.patience,
                                                   thresholds=graph.rule.thresholds)
        spread |= {len(set(want_layers.tolist()))}
        for model in (graph, staged):
            for batch in (1, 7, 32):
                parts = [model.run_ids(ids[i:i + batch], mask[i:i + batch], speed) for i in range(0, len(ids), batch)]
                logits = np.concatenate([p[0] for p in parts])
                layers = np.concatenate([p[1] for p in parts])
                assert layers.tolist() == want_layers.numpy().tolist(), (model.engine, speed, batch)
                assert np.allclose(logits, want_logits.numpy(), atol=1e-4)
    assert max(spread) > 1, "the crafted student should make rows leave at different layers at some speed"


def test_answers_take_the_shape_of_the_problem_type(typed_bundle):
    problem, _, path = typed_bundle
    model = runtime.load(path)
    got = model.classify(["great movie", "awful plot"], speed=0.0)
    logits = model.outputs(["great movie", "awful plot"], speed=0.0)[0]
    if problem == "multi-label":
        p = 1 / (1 + np.exp(-logits[0]))
        at = model.manifest.thresholds or [0.5] * len(model.labels)
        assert got[0].label is None and got[0].score is None
        assert got[0].labels == [n for n, q, t in zip(model.labels, p, at) if q >= t]
        assert list(got[0].probs) == model.labels and np.allclose(list(got[0].probs.values()), p, atol=1e-6)
        for threshold in (0.01, 0.99):
            chosen = model.classify(["great movie"], speed=0.0, threshold=threshold)[0]
            assert chosen.labels == [n for n, q in zip(model.labels, p) if q >= threshold]
        assert set(got[0].to_dict()) == {"labels", "probs", "exit_layer", "uncertainty"}
    else:
        assert got[0].label is None and got[0].probs is None and got[0].labels is None
        assert isinstance(got[0].score, float) and got[0].score == pytest.approx(float(logits[0, 0]))
        assert set(got[0].to_dict()) == {"score", "exit_layer", "uncertainty"}
        with pytest.raises(runtime.InputError, match="threshold applies to multi-label bundles"):
            model.classify(["x"], threshold=0.3)


def test_a_regression_manifest_without_a_scale_is_refused(tmp_path):
    import json
    import shutil
    from pathlib import Path

    fixture = Path(__file__).resolve().parents[2] / "js" / "test" / "fixtures" / "regression"
    copy = tmp_path / "b"
    shutil.copytree(fixture, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["task"]["problem"] == "regression"
    manifest["task"]["target_scale"] = None
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(runtime.BundleError, match="target_scale"):
        runtime.load(copy)


def test_a_regression_bundle_without_patience_keeps_the_one_gap_rule_and_a_bad_one_is_refused(tmp_path):
    import json
    import shutil
    from pathlib import Path

    fixture = tmp_path / "old"  # a bundle written before the rule recorded its patience
    shutil.copytree(Path(__file__).resolve().parents[2] / "js" / "test" / "fixtures" / "regression", fixture)
    manifest = json.loads((fixture / "manifest.json").read_text())
    del manifest["task"]["exit_rule"]["patience"]
    (fixture / "manifest.json").write_text(json.dumps(manifest))
    assert runtime.load(fixture).rule.patience == 1
    from typer.testing import CliRunner

    from edgekd.cli import app

    shown = CliRunner().invoke(app, ["inspect", str(fixture)]).output
    assert "problem: regression (exit rule consecutive-gap, scale 1, patience 1)" in shown
    for bad in (0, "2", 2.5):
        copy = tmp_path / f"b{bad}"
        shutil.copytree(fixture, copy)
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["task"]["exit_rule"]["patience"] = bad
        (copy / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(runtime.BundleError, match="exit_rule.patience must be a whole number"):
            runtime.load(copy)


def test_serve_answers_each_type_and_takes_a_threshold_for_multi_label(typed_bundle):
    from starlette.testclient import TestClient

    from edgekd.apps.serve import Server

    problem, _, path = typed_bundle
    model = runtime.load(path)
    texts = ["great movie", "awful plot", "the plot"]
    with TestClient(Server(path, warmup=False).app) as client:
        assert client.get("/v1/model").json()["problem"] == problem
        got = client.post("/v1/classify", json={"texts": texts, "speed": 0.0}).json()["predictions"]
        want = [r.to_dict() for r in model.classify(texts, speed=0.0)]
        assert [set(g) for g in got] == [set(w) for w in want]
        if problem == "multi-label":
            assert [g["labels"] for g in got] == [w["labels"] for w in want]
        else:
            assert [g["score"] for g in got] == pytest.approx([w["score"] for w in want])
        r = client.post("/v1/classify", json={"texts": texts, "speed": 0.0, "threshold": 0.9})
        if problem == "multi-label":
            assert [g["labels"] for g in r.json()["predictions"]] == \
                [r.labels for r in model.classify(texts, speed=0.0, threshold=0.9)]
        else:
            assert r.status_code == 422 and "threshold applies to multi-label bundles" in r.json()["error"]


def test_the_many_class_study_measures_the_runtime_rule():
    from benchmarks.many_class_exits import curves, u_of_confidence
    from runtime.exits import normalized_entropy

    # u of a known distribution: p = 0.9 on one class, the rest even
    for classes in (2, 150):
        probs = np.full(classes, 0.1 / (classes - 1))
        probs[0] = 0.9
        assert u_of_confidence(0.9, classes) == pytest.approx(float(normalized_entropy(np.log(probs))), abs=1e-6)
    assert u_of_confidence(0.9, 150) < u_of_confidence(0.9, 2)  # the same confidence leaves earlier with many classes
    gen = np.random.default_rng(0)
    exits = gen.normal(size=(3, 50, 5)) * np.array([1.0, 3.0, 6.0])[:, None, None]
    gold = exits[-1].argmax(-1)
    result = curves(exits, gold, max_drop=1.0)
    assert result["full_depth_accuracy"] == 1.0
    runtime_rule = result["rules"]["normalized entropy (the runtime's)"]
    for point in runtime_rule["curve"][::10]:
        _, layers, _ = decide(exits, point["speed"])
        assert point["average_layers"] == pytest.approx(float(layers.mean()))


@pytest.mark.parametrize("typed_bundle", ["multi-label"], indirect=True)
def test_a_bundle_moved_to_the_rule_at_thresholds_is_composed_again_and_exits_by_it(typed_bundle, tmp_path):
    import shutil

    import torch

    from edgekd.distill.evaluate import apply_exit_rule
    from exporters.bundle import recompile_graph
    from runtime.exits import AT_THRESHOLDS
    from runtime.manifest import read_manifest, write_manifest
    from runtime.task import exit_rule_record

    _, student, path = typed_bundle
    bundle = Path(shutil.copytree(path, tmp_path / "b"))
    manifest = read_manifest(bundle)
    before = next(p.sha256 for p in manifest.parts if p.kind == "compiled")
    manifest.task = replace(manifest.task, thresholds=[0.05, 0.5, 0.9],
                            exit_rule=exit_rule_record("multi-label", at_thresholds=True))
    recompile_graph(bundle, manifest)
    write_manifest(bundle, manifest)
    graph, staged = runtime.load(bundle, engine="graph"), runtime.load(bundle, engine="staged")  # hashes verified
    assert graph.rule.name == AT_THRESHOLDS and graph.rule.thresholds == (0.05, 0.5, 0.9)
    assert next(p.sha256 for p in graph.manifest.parts if p.kind == "compiled") != before
    texts = [" ".join(["great", "awful", "movie", "plot"][: 1 + i % 4] * (1 + i % 3)) for i in range(23)]
    ids, mask, _ = graph.encode(texts)
    with torch.no_grad():
        exits = torch.stack(student(torch.from_numpy(ids), torch.from_numpy(mask)).exit_logits)
    moved = 0
    for speed in (0.3, 0.8, 0.95):
        _, want = apply_exit_rule(exits, speed, "multi-label", thresholds=(0.05, 0.5, 0.9))
        _, at_half = apply_exit_rule(exits, speed, "multi-label")
        moved += int((want != at_half).sum())
        for model in (graph, staged):
            assert model.run_ids(ids, mask, speed)[1].tolist() == want.tolist(), (model.engine, speed)
    assert moved, "the thresholds should move some rows' exits"


def test_a_rule_at_thresholds_needs_a_multi_label_task_and_one_threshold_per_label():
    from runtime.exits import AT_THRESHOLDS
    from runtime.task import Task

    with pytest.raises(runtime.InputError, match="belong to a multi-label rule"):
        ExitRule("single-label", thresholds=(0.3, 0.6))
    with pytest.raises(runtime.InputError, match="one in \\(0, 1\\) per label"):
        ExitRule("multi-label", thresholds=(0.3, 1.0))
    with pytest.raises(runtime.InputError, match="3 label thresholds; the head has 2"):
        ExitRule("multi-label", thresholds=(0.3, 0.6, 0.5)).uncertainty(np.zeros((4, 2), np.float32))
    wrong = Task("single-label", ["a", "b"], exit_rule={"name": "max-binary-entropy-at-thresholds"}).problems()
    assert any("belongs to multi-label tasks" in p for p in wrong)
    newer = Task("multi-label", ["a", "b"], exit_rule={"name": "some-future-rule"}).problems()
    assert any("'some-future-rule' is not a rule this runtime knows" in p for p in newer)
    # a bundle exported before the rule (thresholds, the 0.5 rule's name) keeps exiting at 0.5
    older = Task("multi-label", ["a", "b"], thresholds=[0.3, 0.6], exit_rule={"name": "max-binary-entropy"})
    assert older.rule().thresholds is None and older.rule().name == "max-binary-entropy"
    now = Task("multi-label", ["a", "b"], thresholds=[0.3, 0.6], exit_rule={"name": AT_THRESHOLDS})
    assert now.rule().thresholds == (0.3, 0.6) and not now.problems()
    # a task at thresholds without thresholds (all 0.5) is the rule at 0.5
    assert Task("multi-label", ["a", "b"], exit_rule={"name": "max-binary-entropy-at-thresholds"}).rule().thresholds \
        is None
