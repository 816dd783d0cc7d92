"""Token classification through `edgekd distill` (issue 45): a CoNLL file is found as token data, the teacher
trains as a token classifier, the student has a tag head after every layer, finetune distils per-token soft
targets and branches self-distils the heads per token; dev is scored by entity, at every speed by the token
rule, which the torch twin computes as the runtime does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgekd.testing.fixtures import tiny_tagged


def test_token_losses_are_zero_for_a_copy_and_positive_otherwise():
    from edgekd.distill import losses

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 3)
    mask = torch.tensor([[0, 1, 1, 1, 0], [0, 1, 0, 0, 0]], dtype=torch.bool)
    labels = torch.tensor([[-100, 0, 2, -100, -100], [-100, -100, -100, -100, -100]])
    loss, parts = losses.task_distillation(logits, logits, labels, weight=0.5, problem="token-classification",
                                           token_mask=mask)
    assert float(parts["kd"]) == pytest.approx(0.0, abs=1e-6)
    ce = torch.nn.functional.cross_entropy(logits[0, [1, 2]], torch.tensor([0, 2]))  # the tagged tokens only
    assert float(parts["ce"]) == pytest.approx(float(ce), rel=1e-5)
    other = logits.clone()
    other[0, 3] += torch.tensor([3.0, -3.0, 0.0])  # a token the rule reads
    assert float(losses.task_distillation(other, logits, labels, problem="token-classification",
                                          token_mask=mask)[1]["kd"]) > 0.01
    other = logits.clone()
    other[0, 4] += 5.0  # a token it does not read (padding, a special token) changes nothing
    assert float(losses.task_distillation(other, logits, labels, problem="token-classification",
                                          token_mask=mask)[1]["kd"]) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.branch_self_distillation([logits, logits], "token-classification", token_mask=mask)) == \
        pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="token mask"):
        losses.branch_self_distillation([logits, logits], "token-classification")


def test_the_torch_token_rule_is_the_runtimes():
    from edgekd.distill.evaluate import apply_exit_rule
    from runtime.exits import TOKENS, ExitRule

    torch.manual_seed(1)
    exits = torch.randn(3, 6, 5, 4) * 3  # (L, B, T, C)
    mask = torch.rand(6, 5) > 0.3
    for speed in (0.0, 0.3, 0.6, 0.9):
        got, layer = apply_exit_rule(exits, speed, TOKENS, token_mask=mask)
        want, want_layer, _ = ExitRule(TOKENS).decide(exits.numpy(), speed, mask.numpy())
        assert layer.tolist() == want_layer.tolist() and np.allclose(got.numpy(), want)


@pytest.fixture(scope="module")
def token_run(tiny_teacher_dir, tmp_path_factory):
    from edgekd.distill.pipeline import distill
    from tests.conftest import tiny_config

    folder = tmp_path_factory.mktemp("tokens")
    files = {}
    for name, n, seed in (("train", 120, 0), ("dev", 40, 1)):
        files[name] = folder / f"{name}.txt"
        files[name].write_text(tiny_tagged(n, seed))
    lines: list[str] = []
    steps = {"max_steps": 250, "batch_size": 16, "lr": 3e-3}  # enough for tags that follow the words
    cfg = tiny_config(tiny_teacher_dir, files, folder / "run", stages=["teacher", "attention", "finetune", "branches"],
                      student={"init": "teacher"}, data={"max_train": 0},
                      teacher_stage={**steps, "max_train": 0}, finetune=steps, branches=steps)
    return distill(cfg, log=lines.append), lines


@pytest.mark.slow
def test_a_conll_file_distils_into_a_student_with_a_tag_head_after_every_layer(token_run):
    from edgekd.distill.model import EarlyExitStudent, TokenHead
    from edgekd.run_folder import RunFolder, StudentFolder

    run, lines = token_run
    assert any(line.startswith("problem type: token-classification (CoNLL columns") for line in lines)
    folder = RunFolder(run)
    config = json.loads((folder.teacher / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert json.loads(folder.labels.read_text()) == ["O", "B-NEG", "I-NEG", "B-POS", "I-POS"]
    metrics = json.loads(folder.metrics.read_text())
    for stage in ("teacher", "finetune", "branches"):
        assert 0.0 <= metrics[stage]["dev_entity_f1"] <= 1.0 and "dev_accuracy" not in metrics[stage]
    exits = metrics["branches"]["exits"]
    assert exits[0]["speed"] == 0 and exits[0]["average_layers"] == pytest.approx(2.0)
    assert "entity_f1" in exits[0] and min(row["average_layers"] for row in exits) < 2.0
    assert metrics["teacher"]["dev_entity_f1"] > 0.5  # the tags follow the words: a trained teacher finds them
    task = StudentFolder(folder.student).task
    assert task.problem == "token-classification" and task.exit_rule["name"] == "max-token-entropy"
    student = EarlyExitStudent.load(folder.stage_student("branches"))
    assert all(isinstance(h, TokenHead) for h in student.heads)
    out = student(torch.tensor([[2, 7, 8, 3]]), torch.ones(1, 4, dtype=torch.long))
    assert [tuple(x.shape) for x in out.exit_logits] == [(1, 4, 5)] * 2


def test_token_students_and_augmentation_are_refused_with_the_fix(tiny_teacher_dir, tmp_path):
    from edgekd.config import ConfigError
    from edgekd.distill.pipeline import distill
    from tests.conftest import tiny_config

    files = {"train": tmp_path / "train.txt", "dev": tmp_path / "dev.txt"}
    for path in files.values():
        path.write_text(tiny_tagged(20))
    with pytest.raises(ConfigError, match="--student transformer"):
        distill(tiny_config(tiny_teacher_dir, files, tmp_path / "a", student={"kind": "bilstm"}), log=lambda _: None)
    with pytest.raises(ConfigError, match="data.augment"):
        distill(tiny_config(tiny_teacher_dir, files, tmp_path / "b", data={"augment": 2}), log=lambda _: None)


@pytest.mark.slow
def test_a_token_run_exports_calibrates_and_answers_entities(token_run, tmp_path):
    from typer.testing import CliRunner

    import runtime
    from edgekd.calibrate import calibrate
    from edgekd.cli import app

    run, _ = token_run
    dev = run.parent / "dev.txt"
    runner = CliRunner()
    got = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "b"), "--data", str(dev)])
    assert got.exit_code == 0, got.output
    model = runtime.load(tmp_path / "b")
    cal = model.manifest.calibration
    assert cal.metric == "entity_f1" and cal.points[0].metrics["entity_f1"] > 0.5
    assert model.manifest.exit_rule["name"] == "max-token-entropy"
    layers = [p.average_layers for p in cal.points]
    assert layers[0] == pytest.approx(2.0) and min(layers) < 2.0  # the token rule lets sentences leave
    result = calibrate(tmp_path / "b", dev, max_drop=5.0, confidence=0.9, write=False)
    assert result.rule.startswith("guarantee") and result.chosen_point.speed >= 0.0
    got = runner.invoke(app, ["predict", str(tmp_path / "b"), "good film really and a bad story", "--json"])
    answer = json.loads(got.output.strip().splitlines()[-1])
    assert set(answer) == {"text", "entities", "exit_layer", "uncertainty"}
    for entity in answer["entities"]:
        assert answer["text"][entity["start"]:entity["end"]] == entity["word"]
    assert {e["entity_group"] for e in answer["entities"]} <= {"POS", "NEG"}
    # the same answers from the compiled graph and the staged engine
    graph, staged = (runtime.load(tmp_path / "b", engine=e) for e in ("graph", "staged"))
    texts = ["good film really", "the bad acting and a very boring plot", "it"]
    for a, b in zip(graph.classify(texts), staged.classify(texts)):
        assert a.exit_layer == b.exit_layer and a.uncertainty == pytest.approx(b.uncertainty, abs=1e-5)
        assert [(e["entity_group"], e["start"], e["end"]) for e in a.entities] == \
            [(e["entity_group"], e["start"], e["end"]) for e in b.entities]
        assert [e["score"] for e in a.entities] == pytest.approx([e["score"] for e in b.entities], abs=1e-5)


@pytest.mark.slow
def test_bench_scores_a_token_bundle_by_entity_beside_a_crf(token_run, tmp_path):
    from edgekd.bench import BenchOptions, run_bench
    from edgekd.bench.js import missing
    from edgekd.distill.export import export_run

    run, _ = token_run
    dev = run.parent / "dev.txt"
    bundle = export_run(run, tmp_path / "b").path
    systems = ["teacher-torch", "student-onnx", "student-torch-exit", "edgekd-graph", "crf", "node"]
    payload = run_bench(BenchOptions(bundle, dev, out=tmp_path / "bench", run_dir=run, speeds=[0.0, 0.3, 0.5],
                                     latency_texts=4, thread_study=False, js=True, competitors=True,
                                     systems=systems), log=lambda _: None)
    assert not payload["failed"]
    rows = {r["name"]: r for r in payload["rows"]}
    assert all(r["metric"] == "entity_f1" and r["accuracy"] is None for r in rows.values())
    full = rows["student, one ONNX graph"]["metrics"]["entity_f1"]
    assert rows["edgekd graph, speed 0"]["metrics"]["entity_f1"] == pytest.approx(full, abs=1e-6)
    # the bench scores as calibration scores: the same words, the same entity F1
    from edgekd.calibrate import calibrate

    cal = next(p for p in calibrate(bundle, dev, max_drop=1.0, write=False).points if p.speed == 0.5)
    assert rows["edgekd graph, speed 0.5"]["metrics"]["entity_f1"] == pytest.approx(cal.metrics["entity_f1"], abs=1e-6)
    assert rows["CRF on word features (sklearn-crfsuite)"]["metrics"]["entity_f1"] > 0.5  # the tags follow the words
    exit_row = next(r for name, r in rows.items() if name.startswith("student, PyTorch per-sample exit"))
    assert exit_row["average_layers"] == pytest.approx(rows[f"edgekd graph, speed {exit_row['speed']:g}"]["average_layers"])
    if missing("node") is None:
        node = rows["edgekd graph in Node, speed 0"]
        assert node["metrics"]["entity_f1"] == pytest.approx(full, abs=1e-6)
    assert "entity F1 %" in (tmp_path / "bench" / "bench.md").read_text()


@pytest.mark.slow
def test_the_token_exit_study_runs_the_sentence_rule_as_the_runtime_does(token_run):
    from benchmarks.token_exits import study
    from edgekd.calibrate import calibrate
    from edgekd.distill.export import export_run

    run, _ = token_run
    dev = run.parent / "dev.txt"
    result = study(run, dev, speeds=[0.0, 0.3, 0.6])
    rows = {(r["speed"], r["rule"]): r for r in result["rows"]}
    assert rows[(0.0, "token")] == {**rows[(0.0, "sentence")], "rule": "token"}  # speed 0: every token, every layer
    assert rows[(0.0, "sentence")]["token_layers_per_token"] == pytest.approx(2.0)
    bundle = export_run(run, run.parent / "study-bundle").path
    points = {p.speed: p for p in calibrate(bundle, dev, max_drop=1.0, write=False).points}
    for speed in (0.0, 0.3, 0.6):  # the torch simulation of the sentence rule is the bundle's rule
        assert rows[(speed, "sentence")]["average_layers"] == pytest.approx(points[speed].average_layers)
        assert rows[(speed, "sentence")]["entity_f1"] == pytest.approx(points[speed].metrics["entity_f1"], abs=1e-6)
        assert 1.0 <= rows[(speed, "token")]["token_layers_per_token"] <= 2.0
    assert "token_rule_saves" in result["within_1_point"]
    # at speed 0 the token rule is the full-depth pass, special tokens included (they run while their sentence does)
    import torch

    from benchmarks.token_exits import token_rule
    from edgekd.distill.students import load_student
    from edgekd.run_folder import RunFolder
    from runtime.exits import rule_mask
    from runtime.tokenize import TextEncoder

    folder = RunFolder(run)
    student = load_student(folder.stage_student("branches")).eval()
    encoder = TextEncoder.from_file(folder.tokenizer, 32)
    ids, mask = (torch.from_numpy(a) for a in encoder.pad(encoder.token_ids(["a superb film by Ann Lee",
                                                                              "bad plot"])))
    tokens = torch.from_numpy(rule_mask(ids.numpy(), mask.numpy(), encoder.special_ids))
    with torch.no_grad():
        hidden = student.embeddings(ids)
        for layer in student.layers:
            hidden, _ = layer(hidden, mask)
        full = student.heads[-1](hidden, mask)
    logits, left = token_rule(student, ids, mask, tokens, 0.0)
    assert torch.allclose(logits[tokens.bool()], full[tokens.bool()], atol=1e-6)
    assert (left[tokens.bool()] == len(student.layers)).all()


@pytest.mark.slow
def test_an_int8_token_bundle_is_chosen_and_checked_against_the_fp32_student(token_run):
    # int8's candidates chain batches of different token widths, and its agreement with fp32 is read per sentence
    import runtime
    from edgekd.distill.export import export_run

    run, _ = token_run
    dev = run.parent / "dev.txt"
    result = export_run(run, run.parent / "int8-bundle", precision="int8", int8="auto", data=dev, max_drop=1.0)
    model = runtime.load(result.path)
    record = model.manifest.quantization
    assert record["texts"] >= 40 and set(record["candidates"]) >= {"dynamic", "dynamic-fp32-heads"}
    assert all(len(c["agreement"]) == model.num_layers for c in record["candidates"].values())
    # compared where the rule reads: the last exit of an int8 form that keeps the tags agrees on most sentences
    assert max(c["agreement"][-1] for c in record["candidates"].values()) >= 0.9
    agreement = model.manifest.precision_check["speeds"]["0"]
    assert 0.0 <= agreement["prediction_agreement"] <= 1.0 and agreement["exit_agreement"] == 1.0
    assert "entity_f1_fp32" in agreement and "entity_f1" in agreement
    text = "Ann Lee saw a film in Paris"
    answer = model.classify([text])[0]
    assert isinstance(answer.entities, list) and all(e["word"] == text[e["start"]:e["end"]] for e in answer.entities)
