"""Multi-label and regression from the data file to the answers: the problem type found (and every refusal),
the losses against hand computations, a tiny run of each type distilled, exported, calibrated on its own
metric and answering through classify, `predict --json` and `predict --file`."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from typer.testing import CliRunner

import runtime
from edgekd.distill import losses
from edgekd.distill.factory import new_student
from edgekd.cli import app
from edgekd.data import DataError, detect_problem, label_names_option, read_labelled
from edgekd.testing.fixtures import tiny_sentiment
from runtime.exits import AT_THRESHOLDS


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ which problem
def test_the_problem_type_is_found_from_the_labels(tmp_path):
    multi = read_labelled(write(tmp_path / "m.tsv", "text\tlabel\na\t8,20\nb\t3\nc\t20\n"))
    assert multi.problem == "multi-label" and "8,20" in multi.problem_why
    assert multi.label_names == ["3", "8", "20"] and multi.labels == [[1, 2], [0], [2]]
    jsonl = read_labelled(write(tmp_path / "m.jsonl", '{"text": "a", "labels": ["joy", "fear"]}\n'
                                                       '{"text": "b", "labels": []}\n{"text": "c", "labels": ["joy"]}\n'))
    assert jsonl.problem == "multi-label" and jsonl.labels == [[0, 1], [], [1]]
    reg = read_labelled(write(tmp_path / "r.tsv", "sentence1\tsentence2\tscore\na\tb\t5.000\nc\td\t3.800\n"))
    assert reg.problem == "regression" and reg.labels == [5.0, 3.8] and reg.label_names == ["score"]
    assert reg.text_pair
    whole = read_labelled(write(tmp_path / "w.tsv", "text\tlabel\na\t1\nb\t0\nc\t1\nd\t0\n"))
    assert whole.problem == "single-label"
    assert detect_problem(["1.5", "2"])[0] == "regression"
    # asked for: integer scores read as regression
    assert read_labelled(tmp_path / "w.tsv", problem="regression").labels == [1.0, 0.0, 1.0, 0.0]


def test_refusals_name_the_row_and_the_fix(tmp_path):
    bad = write(tmp_path / "bad.tsv", "text\tscore\na\t1.5\nb\tvery similar\n")
    with pytest.raises(DataError, match=r"row 3 has 'score' = 'very similar', not a number"):
        read_labelled(bad, problem="regression")
    dev = write(tmp_path / "dev.tsv", "text\tlabel\na\t8,99\n")
    with pytest.raises(DataError, match=r"unknown label '99' in row 2"):
        read_labelled(dev, label_names=["3", "8", "20"], problem="multi-label")
    names = write(tmp_path / "labels.txt", "admiration\namusement\n\n")
    assert label_names_option(f"@{names}") == ["admiration", "amusement"]
    assert label_names_option("neg, pos") == ["neg", "pos"]
    with pytest.raises(DataError, match="no such file"):
        label_names_option("@missing.txt")
    with pytest.raises(DataError, match="names a label twice"):
        label_names_option("a,a")


def test_a_flag_that_contradicts_the_teacher_is_refused(tmp_path, tiny_data):
    from edgekd.config import ConfigError
    from edgekd.testing.fixtures import tiny_teacher
    from edgekd.distill.prepare import declared_problem
    from tests.conftest import tiny_config

    teacher = tiny_teacher(tmp_path / "t", num_labels=3)
    config = json.loads((teacher / "config.json").read_text())
    config.update(problem_type="multi_label_classification", architectures=["BertForSequenceClassification"])
    (teacher / "config.json").write_text(json.dumps(config))
    cfg = tiny_config(teacher, tiny_data, tmp_path / "run")
    assert declared_problem(cfg) == ("multi-label", "the teacher's config.problem_type is multi_label_classification")
    cfg.data.problem = "regression"
    with pytest.raises(ConfigError, match=r"--problem regression, but the teacher's config.problem_type is "
                                          r"multi_label_classification \(multi-label\)"):
        declared_problem(cfg)


def test_standardize_is_refused_for_labels(tmp_path, tiny_teacher_dir, tiny_data):
    from edgekd.config import ConfigError
    from edgekd.distill.stages import RunContext
    from tests.conftest import tiny_config

    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "run", data={"standardize": True})
    with pytest.raises(ConfigError, match="--standardize scales regression targets; this task is single-label"):
        RunContext(cfg, log=lambda _: None)
    assert not (tmp_path / "run").exists()


def test_standardize_defaults_to_on_for_regression_only_and_a_resume_keeps_the_runs_choice(tmp_path, tiny_teacher_dir,
                                                                                           tiny_data):
    from edgekd.config import ConfigError
    from edgekd.distill.stages import RunContext
    from tests.conftest import tiny_config

    files = {n: write(tmp_path / f"{n}.tsv", typed_rows("regression", k, s)) for n, k, s in (("train", 32, 0),
                                                                                              ("dev", 8, 1))}
    saved = lambda run: json.loads((run / "config.json").read_text())["data"]["standardize"]  # noqa: E731
    ctx = RunContext(tiny_config(tiny_teacher_dir, files, tmp_path / "auto"), log=lambda _: None)
    assert saved(tmp_path / "auto") is True and ctx.loss_scale == ctx.task.target_scale != 1.0
    RunContext(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "labels"), log=lambda _: None)
    assert saved(tmp_path / "labels") is False
    # a run made in data units (as before this default) resumes in data units; asking for the other is refused
    RunContext(tiny_config(tiny_teacher_dir, files, tmp_path / "units", data={"standardize": False}), log=lambda _: None)
    ctx = RunContext(tiny_config(tiny_teacher_dir, files, tmp_path / "units"), log=lambda _: None)
    assert saved(tmp_path / "units") is False and ctx.loss_scale == 1.0
    with pytest.raises(ConfigError, match=r"different config \(data changed: data.standardize False -> True\)"):
        RunContext(tiny_config(tiny_teacher_dir, files, tmp_path / "units", data={"standardize": True}),
                   log=lambda _: None)


@pytest.mark.parametrize("kind", ["transformer", "bilstm"])
def test_head_bias_prior_starts_each_multi_label_head_at_its_labels_share_of_the_training_rows(kind, tmp_path):
    from edgekd.config import ConfigError
    from edgekd.testing.fixtures import tiny_teacher
    from edgekd.distill.stages import RunContext
    from tests.conftest import tiny_config

    files = {n: write(tmp_path / f"{n}.tsv", typed_rows("multi-label", k, s)) for n, k, s in (("train", 40, 0),
                                                                                               ("dev", 8, 1))}
    teacher = tiny_teacher(tmp_path / "teacher", num_labels=3)
    rows = list(csv.reader((tmp_path / "train.tsv").open(encoding="utf-8"), delimiter="\t"))[1:]
    for bias in ("prior", "default"):
        ctx = RunContext(tiny_config(teacher, files, tmp_path / bias, student={"kind": kind, "head_bias": bias}),
                         log=lambda _: None)
        share = [sum(name in cell.split(",") for _, cell in rows) / len(rows) for name in ctx.labels]
        assert 0 < min(share) < max(share) < 1  # three labels of different frequency
        heads = new_student(ctx).heads if kind == "transformer" else [new_student(ctx)]
        for head in heads:
            p = torch.sigmoid(head.classifier.bias.detach())
            if bias == "prior":
                assert p.tolist() == pytest.approx(share, abs=1e-5)
            else:
                assert not torch.allclose(p, torch.tensor(share), atol=0.05)
    teacher_bias = ctx.teacher().model.classifier.bias  # the teacher's own head is left as transformers made it
    assert not torch.allclose(torch.sigmoid(teacher_bias.detach()), torch.tensor(share), atol=0.05)
    with pytest.raises(ConfigError, match="student.head_bias 'log-odds' is not default or prior"):
        RunContext(tiny_config(teacher, files, tmp_path / "bad", student={"head_bias": "log-odds"}),
                   log=lambda _: None)


# ------------------------------------------------------------------ losses by hand
def test_losses_per_type_match_hand_computations():
    s = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    t = torch.tensor([[1.0, -2.0], [0.0, 1.0]])
    gold = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p, q = torch.sigmoid(s), gold
    bce = -(q * p.log() + (1 - q) * (1 - p).log()).mean()
    assert losses.gold_loss(s, gold, "multi-label") == pytest.approx(float(bce), rel=1e-5)
    assert float(losses.soft_target_bce(t, t, 2.0)) == pytest.approx(0.0, abs=1e-6)  # zero at the teacher
    T = 2.0
    pt, ps = torch.sigmoid(t / T), torch.sigmoid(s / T)
    hand = T * T * (-(pt * ps.log() + (1 - pt) * (1 - ps).log()) + (pt * pt.log() + (1 - pt) * (1 - pt).log())).mean()
    assert float(losses.soft_target_bce(s, t, T)) == pytest.approx(float(hand), rel=1e-5)
    values, targets = torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, float("nan")])
    loss, parts = losses.task_distillation(values, torch.tensor([[1.5], [2.0]]), targets, weight=0.25,
                                           problem="regression")
    # gold MSE on the one known row ((1-2)^2 = 1), KD MSE to the teacher on both ((0.25 + 1) / 2)
    assert float(parts["ce"]) == pytest.approx(1.0) and float(parts["kd"]) == pytest.approx(0.625)
    assert float(loss) == pytest.approx(0.75 * 1.0 + 0.25 * 0.625)
    heads = [torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0], [1.0]])]
    assert float(losses.branch_self_distillation(heads, "regression")) == pytest.approx(2.0)
    # standardised targets (data.standardize): every regression MSE in units of the targets' s.d. (here 2)
    loss, parts = losses.task_distillation(values, torch.tensor([[1.5], [2.0]]), targets, weight=0.25,
                                           problem="regression", scale=2.0)
    assert float(parts["ce"]) == pytest.approx(1.0 / 4) and float(parts["kd"]) == pytest.approx(0.625 / 4)
    assert float(losses.gold_loss(values[:1], targets[:1], "regression", 2.0)) == pytest.approx(1.0 / 4)
    assert float(losses.branch_self_distillation(heads, "regression", 2.0)) == pytest.approx(2.0 / 4)


# ------------------------------------------------------------------ tiny runs of each type
def typed_rows(problem: str, n: int, seed: int) -> str:
    rows = tiny_sentiment(n, seed)
    if problem == "multi-label":  # polarity, and "long" for texts of more than 6 words
        cells = [",".join([label] + (["long"] if len(text.split()) > 6 else [])) for text, label in rows]
        return "text\tlabel\n" + "".join(f"{t}\t{c}\n" for (t, _), c in zip(rows, cells))
    scores = [(1.0 if label == "positive" else -1.0) * 2.0 + 0.05 * len(text.split()) for text, label in rows]
    return "text\tscore\n" + "".join(f"{t}\t{v:.3f}\n" for (t, _), v in zip(rows, scores))


@pytest.fixture(scope="module", params=["multi-label", "regression"])
def typed_run(request, tiny_teacher_dir, tmp_path_factory):
    from edgekd.distill.pipeline import distill
    from tests.conftest import tiny_config

    problem = request.param
    folder = tmp_path_factory.mktemp(problem)
    files = {name: write(folder / f"{name}.tsv", typed_rows(problem, n, seed))
             for name, n, seed in (("train", 96, 0), ("dev", 32, 1))}
    lines: list[str] = []
    cfg = tiny_config(tiny_teacher_dir, files, folder / "run", stages=["teacher", "attention", "finetune", "branches"],
                      student={"init": "teacher"})
    run = distill(cfg, log=lines.append)
    return problem, run, files, lines


@pytest.mark.slow
def test_a_run_says_its_type_and_reports_its_metrics(typed_run):
    from edgekd.run_folder import RunFolder, StudentFolder

    problem, run, _, lines = typed_run
    assert any(line.startswith(f"problem type: {problem}") for line in lines)
    metrics = json.loads((RunFolder(run).metrics).read_text())
    main = {"multi-label": "dev_micro_f1", "regression": "dev_pearson"}[problem]
    for stage in ("teacher", "finetune", "branches"):
        assert main in metrics[stage] and "dev_accuracy" not in metrics[stage]
    assert main[4:] in metrics["branches"]["exits"][0]
    task = StudentFolder(RunFolder(run).student).task
    assert task.problem == problem
    if problem == "regression":
        assert task.target_scale > 0


@pytest.mark.slow
def test_a_typed_run_exports_calibrates_and_answers_everywhere(typed_run, tmp_path):
    from edgekd.distill.export import export_run

    problem, run, files, _ = typed_run
    bundle = export_run(run, tmp_path / "b", data=files["dev"], max_drop=5.0).path
    model = runtime.load(bundle)
    manifest = model.manifest
    assert manifest.problem == problem and manifest.exit_rule["name"]
    metric = {"multi-label": "micro_f1", "regression": "pearson"}[problem]
    assert manifest.calibration.metric == metric
    assert all(p.accuracy is None and metric in p.metrics for p in manifest.calibration.points)
    if problem == "regression":
        assert manifest.target_scale == pytest.approx(json.loads((run / "task.json").read_text())["target_scale"])
    else:  # thresholds chosen on --data: kept per label only when they beat 0.5 on held-out rows
        choice = manifest.threshold_choice
        assert choice["rows"] == 32 and (manifest.thresholds is None) == (choice["chosen"] == "0.5")
        # where thresholds were chosen, rows leave by the rule at them, in model.onnx as in the staged runtime
        assert (manifest.exit_rule["name"] == AT_THRESHOLDS) == (manifest.thresholds is not None)
        staged = runtime.load(bundle, engine="staged")
        texts = [row.split("\t")[0] for row in open(files["dev"]).read().splitlines()[1:]]
        for speed in (0.3, 0.6, 0.9):
            assert (model.outputs(texts, speed=speed)[1] == staged.outputs(texts, speed=speed)[1]).all()
    card = (bundle / "README.md").read_text()
    assert f"{metric.replace('_', '-')} x 100" in card
    texts = ["great fun movie", "awful boring plot with a long and dull story"]
    direct = model.classify(texts)
    got = CliRunner().invoke(app, ["predict", str(bundle), *texts, "--json"])
    assert got.exit_code == 0, got.output
    answers = [json.loads(line) for line in got.output.strip().splitlines()]
    assert [{k: v for k, v in a.items() if k != "text"} for a in answers] == [r.to_dict() for r in direct]
    out = tmp_path / "out.csv"
    source = write(tmp_path / "in.txt", "\n".join(texts) + "\n")
    got = CliRunner().invoke(app, ["predict", str(bundle), "--file", str(source), "--out", str(out)])
    assert got.exit_code == 0, got.output
    rows = list(csv.DictReader(out.open()))
    if problem == "multi-label":
        assert [r["labels"] for r in rows] == [",".join(r.labels) for r in direct]
    else:
        assert [float(r["score"]) for r in rows] == pytest.approx([r.score for r in direct], rel=1e-6)


@pytest.mark.slow
def test_bench_scores_each_type_with_its_metrics_and_baselines(typed_run, tmp_path):
    from edgekd.bench import BenchOptions, run_bench
    from edgekd.distill.export import export_run

    problem, run, files, _ = typed_run
    bundle = export_run(run, tmp_path / "b").path
    systems = ["teacher-torch", "student-onnx", "student-torch-exit", "edgekd-graph", "tfidf-lr", "node"] + \
        (["fasttext"] if problem == "multi-label" else [])
    payload = run_bench(BenchOptions(bundle, files["dev"], out=tmp_path / "bench", run_dir=run, speeds=[0.0, 0.3],
                                     latency_texts=4, thread_study=False, js=True, competitors=True,
                                     systems=systems), log=lambda _: None)
    assert not payload["failed"]
    metric, second = {"multi-label": ("micro_f1", "macro_f1"), "regression": ("pearson", "spearman")}[problem]
    rows = {r["name"]: r for r in payload["rows"]}
    assert all(r["metric"] == metric and r["accuracy"] is None and set(r["metrics"]) == {metric, second}
               for r in rows.values())
    # the runtime at speed 0 and the student as one graph are the same network: the same metric
    full = rows["student, one ONNX graph"]["metrics"][metric]
    assert rows["edgekd graph, speed 0"]["metrics"][metric] == pytest.approx(full, abs=1e-6)
    # PyTorch per-sample exit follows the same rule as the runtime: the same layers at the same speed
    node = rows.get("edgekd graph in Node, speed 0")  # the JS bench's answers scored by the same metrics
    from edgekd.bench.js import missing

    if missing("node") is None:
        assert node["metrics"][metric] == pytest.approx(rows["edgekd graph, speed 0"]["metrics"][metric], abs=1e-6)
    exit_row = next(r for name, r in rows.items() if name.startswith("student, PyTorch per-sample exit"))
    graph_row = rows[f"edgekd graph, speed {exit_row['speed']:g}"]
    assert exit_row["average_layers"] == pytest.approx(graph_row["average_layers"])
    table = (tmp_path / "bench" / "bench.md").read_text()
    head = {"micro_f1": "micro-F1 %", "pearson": "Pearson x 100"}[metric]
    assert head in table and ("TF-IDF + one-vs-rest" in table if problem == "multi-label" else "TF-IDF + ridge" in table)


def test_the_regression_rule_study_scores_the_runtime_rule_as_the_runtime_decides():
    import numpy as np

    from benchmarks.regression_exit_rules import decide as study_decide
    from benchmarks.regression_exit_rules import study, uncertainties
    from runtime.exits import ExitRule, decide

    rng = np.random.default_rng(0)
    gold = rng.normal(size=200)
    noise = [1.0, 0.4, 0.1, 0.0]
    values = np.stack([gold + n * rng.normal(size=200) for n in noise])  # heads converge on the gold value
    u = uncertainties(values, 1.0)
    for name, patience in (("gap-1", 1), ("gap-2", 2)):  # the runtime's rule at patience 1 and 2
        rule = ExitRule("regression", 1.0, patience)
        assert np.allclose(u[name], rule.trace(values[..., None]))
        for speed in (0.1, 0.3, 0.6):
            want_values, want_layers, _ = decide(values[..., None], speed, rule)
            got_values, got_layers = study_decide(values, u[name], speed)
            assert got_layers.tolist() == want_layers.tolist() and np.allclose(got_values, want_values[:, 0])
    # two heads that happen to agree early: gap-2 waits for a third
    assert (u["gap-2"][:2] == 1.0).all() and (u["gap-2"] >= u["gap-1"]).all()
    result = study(values, gold, 1.0, max_drop=1.0)
    assert result["full_depth_pearson"] == pytest.approx(100.0)
    assert set(result["ranking"]) == {"gap-1", "gap-2", "drift"}
    for rule in result["rules"].values():
        assert result["full_depth_pearson"] - rule["within_budget"]["pearson"] <= 1.0 + 1e-9


@pytest.mark.slow
@pytest.mark.parametrize("problem,kind", [("regression", "textcnn"), ("multi-label", "bilstm")])
def test_small_students_train_and_answer_for_both_types(problem, kind, tiny_teacher_dir, tmp_path):
    import numpy as np

    from edgekd.distill.export import export_run
    from edgekd.distill.pipeline import distill
    from tests.conftest import tiny_config

    files = {n: write(tmp_path / f"{n}.tsv", typed_rows(problem, k, s)) for n, k, s in (("train", 64, 0), ("dev", 16, 1))}
    cfg = tiny_config(tiny_teacher_dir, files, tmp_path / "run", student={"kind": kind}, stages=["teacher", "finetune"])
    bundle = export_run(distill(cfg, log=lambda _: None), tmp_path / "b", data=files["dev"]).path
    model = runtime.load(bundle)
    assert model.manifest.problem == problem and model.manifest.student == kind
    got = model.classify(["great fun", "awful"])
    logits = model.outputs(["great fun", "awful"])[0]
    if problem == "regression":
        assert [r.score for r in got] == pytest.approx(logits[:, 0].tolist())
        assert all(r.uncertainty == 1.0 for r in got)  # one head: nothing to agree with
    else:
        probs = 1 / (1 + np.exp(-logits))
        assert [r.labels for r in got] == [[n for n, p, t in zip(model.labels, row, model.thresholds) if p >= t]
                                           for row in probs]


@pytest.mark.slow
@pytest.mark.parametrize("standardize", [True, False])
def test_standardized_regression_heads_start_at_the_targets_mean(standardize, tiny_teacher_dir, tmp_path):
    from edgekd.distill.pipeline import distill
    from edgekd.distill.stages import RunContext
    from tests.conftest import tiny_config

    def shifted(n, seed):  # scores around 3 (like STS-B's 0..5), far from a zero-initialised head
        head, *rows = typed_rows("regression", n, seed).splitlines()
        return "\n".join([head] + [f"{t}\t{float(v) + 3:.3f}" for t, v in (r.split("\t") for r in rows)]) + "\n"

    files = {n: write(tmp_path / f"{n}.tsv", shifted(k, s)) for n, k, s in (("train", 32, 0), ("dev", 8, 1))}
    cfg = tiny_config(tiny_teacher_dir, files, tmp_path / "run", stages=["teacher"], data={"standardize": standardize},
                      teacher_stage={"max_steps": 1, "lr": 1e-9, "weight_decay": 0.0})
    run = distill(cfg, log=lambda _: None)
    mean = json.loads((run / "task.json").read_text())["target_mean"]
    ctx = RunContext(cfg, log=lambda _: None)
    teacher_bias = float(ctx.teacher().model.classifier.bias)  # the new head, one step at a rate of 1e-9
    student_biases = [float(head.classifier.bias.detach()) for head in new_student(ctx).heads]
    assert ctx.loss_scale == (json.loads((run / "task.json").read_text())["target_scale"] if standardize else 1.0)
    if standardize:
        assert teacher_bias == pytest.approx(mean) and student_biases == pytest.approx([mean] * len(student_biases))
    else:  # transformers' and PyTorch's initialisation: biases near zero, far from the mean of these targets
        assert mean > 2.5 and abs(teacher_bias) < 0.5 and all(abs(b) < 0.5 for b in student_biases)


def test_per_label_thresholds_are_kept_only_when_they_win_on_held_out_rows():
    import numpy as np

    from edgekd.metrics import choose_thresholds

    rng = np.random.default_rng(1)
    gold = rng.random((400, 2)) < 0.3
    # label 0 is calibrated at 0.5; label 1's model is shy: its positives sit around p = 0.3
    p0 = np.where(gold[:, 0], 0.8, 0.2) + rng.normal(0, 0.05, 400)
    p1 = np.where(gold[:, 1], 0.3, 0.05) + rng.normal(0, 0.03, 400)
    logits = np.log(np.clip(np.stack([p0, p1], 1), 1e-4, 1 - 1e-4) / (1 - np.clip(np.stack([p0, p1], 1), 1e-4, 1 - 1e-4)))
    thresholds, record = choose_thresholds(logits, gold)
    assert record["chosen"] == "per-label" and thresholds[1] < 0.3 < 0.5
    assert record["per_label_held_out_micro_f1"] > record["default_0.5_micro_f1"]
    calibrated = np.where(gold, 3.0, -3.0) + rng.normal(0, 0.5, gold.shape)  # 0.5 is already right
    thresholds, record = choose_thresholds(calibrated, gold)
    assert thresholds is None and record["chosen"] == "0.5"


def test_the_readmes_multi_label_config_resolves_over_the_quick_preset_to_the_settings_it_names():
    from pathlib import Path

    from edgekd.config import resolve_config

    file = Path(__file__).resolve().parents[2] / "benchmarks" / "multi_label.json"
    cfg = resolve_config(str(file), preset="quick", overrides={"teacher": "t", "out": "o",
                                                               "data": {"train": "train.tsv", "dev": "dev.tsv"}})
    assert cfg.student.head_bias == "prior"
    assert cfg.finetune.head_lr == 10.0
    assert cfg.branches.epochs == 10.0  # the heads self-distilled longer: fewer layers within a point (issue 41)
    assert cfg.finetune.patience == 3  # the rest of the quick schedule is kept


def test_the_multi_label_rule_study_scores_the_runtime_rule_and_a_threshold_aware_one():
    import numpy as np

    from benchmarks.multi_label_rules import decide as study_decide
    from benchmarks.multi_label_rules import study, uncertainties
    from runtime.exits import ExitRule, decide

    rng = np.random.default_rng(1)
    gold = (rng.random((300, 5)) < 0.3).astype(np.int8)
    target = np.where(gold == 1, 3.0, -3.0)
    logits = np.stack([target + n * rng.normal(size=target.shape) for n in (3.0, 1.5, 0.5, 0.0)])  # (L, N, C)
    thresholds = np.array([0.5, 0.2, 0.8, 0.5, 0.35])
    u = uncertainties(logits, thresholds)
    rule = ExitRule("multi-label")
    assert np.allclose(u["entropy-0.5"], rule.trace(logits))  # the runtime's rule, as the runtime computes it
    for speed in (0.2, 0.5, 0.8):
        want_logits, want_layers, _ = decide(logits, speed, rule)
        got_logits, got_layers = study_decide(logits, u["entropy-0.5"], speed)
        assert got_layers.tolist() == want_layers.tolist() and np.allclose(got_logits, want_logits)
    # at 0.5 thresholds the two rules are one; a head exactly at its label's threshold is fully unsure
    assert np.allclose(uncertainties(logits, 0.5)["entropy-threshold"], u["entropy-0.5"])
    at_boundary = np.array([[[9.0, np.log(0.2 / 0.8), -9.0, 9.0, -9.0]]])  # p = 0.2 where the threshold is 0.2
    assert uncertainties(at_boundary, thresholds)["entropy-threshold"][0, 0] == pytest.approx(1.0)
    h = -(0.2 * np.log(0.2) + 0.8 * np.log(0.8)) / np.log(2)  # the 0.5 rule calls it fairly sure
    assert uncertainties(at_boundary, thresholds)["entropy-0.5"][0, 0] == pytest.approx(h, abs=1e-5)
    result = study(logits, gold, thresholds, max_drop=1.0)
    assert set(result["ranking"]) == {"entropy-0.5", "entropy-threshold"}
    for found in result["rules"].values():
        assert result["full_depth_micro_f1"] - found["within_budget"]["micro_f1"] <= 1.0 + 1e-9
        assert 1.0 <= found["within_budget"]["average_layers"] <= 4.0


def test_label_set_agreement_reads_sets_at_0_5_and_at_each_labels_threshold():
    import numpy as np

    from benchmarks.multi_label_rules import label_set_agreement

    thresholds = [0.5, 0.2]  # logit(0.2) = -1.386
    reference = np.array([[[2.0, -1.0], [-2.0, -3.0]]])  # one exit, two texts
    # text 0: label 1 moves from -1.0 to -1.6: the same set at 0.5 (off both), another at 0.2 (on -> off)
    # text 1: label 0 moves from -2.0 to 0.1: another set at both
    other = np.array([[[2.0, -1.6], [0.1, -3.0]]])
    assert label_set_agreement(other, reference, thresholds) == {"at_0.5": [0.5], "at_thresholds": [0.0]}
    assert label_set_agreement(reference, reference, thresholds) == {"at_0.5": [1.0], "at_thresholds": [1.0]}
