"""Text pairs through distillation: pair columns found (and refused when one is missing), the teacher and
student fed token_type_ids, pair augmentation, export to a pair bundle, predict (arguments, stdin, --file)
and calibrate on pairs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import runtime
from edgekd.cli import app
from edgekd.data import DataError, read_labelled, read_unlabelled
from edgekd.testing.fixtures import tiny_sentiment


def pair_rows(n: int, seed: int):
    left, right = tiny_sentiment(n, seed), tiny_sentiment(n, seed + 100)
    return [(a, b, int(la == lb)) for (a, la), (b, lb) in zip(left, right)]


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairdata")
    files = {}
    for name, n, seed in (("train", 120, 0), ("dev", 40, 1)):
        path = folder / f"{name}.tsv"
        path.write_text("id\tquestion1\tquestion2\tis_duplicate\n" +
                        "".join(f"{i}\t{a}\t{b}\t{y}\n" for i, (a, b, y) in enumerate(pair_rows(n, seed))))
        files[name] = path
    return files


def test_pair_columns_are_found_and_named(pair_files, tmp_path):
    data = read_labelled(pair_files["train"])
    assert data.text_pair and isinstance(data.texts[0], tuple) and len(data.texts[0]) == 2
    assert data.columns == "text columns 'question1' + 'question2' (pairs), label column 'is_duplicate' (single-label)"
    odd = tmp_path / "odd.tsv"
    odd.write_text("a\tb\tlabel\nx\ty\t0\nz\t\t1\n")
    pairs = read_labelled(odd, text_column="a", text_pair_column="b")
    assert pairs.texts == [("x", "y"), ("z", "")]  # an empty second text is a valid pair
    with pytest.raises(DataError, match=r"no second text column 'c' \(--text-pair-column\); columns are: a, b, label"):
        read_labelled(odd, text_column="a", text_pair_column="c")
    assert read_unlabelled(pair_files["dev"]).text_pair
    # a sentence1/sentence2 file is read as pairs, not silently as single texts from sentence1
    glue = tmp_path / "rte.tsv"
    glue.write_text("index\tsentence1\tsentence2\tlabel\n0\ta b\tc d\tentailment\n1\te\tf\tnot_entailment\n")
    assert read_labelled(glue).texts == [("a b", "c d"), ("e", "f")]


@pytest.fixture(scope="module")
def pair_run(tiny_teacher_dir, pair_files, tmp_path_factory):
    from edgekd.distill.pipeline import distill
    from tests.conftest import tiny_config

    lines = []
    cfg = tiny_config(tiny_teacher_dir, pair_files, tmp_path_factory.mktemp("pairrun") / "run",
                      stages=["teacher", "attention", "finetune", "branches"], student={"init": "teacher"},
                      data={"augment": 2})
    run = distill(cfg, log=lines.append)
    return run, lines


def test_distill_reads_pairs_augments_them_and_publishes_a_pair_student(pair_run):
    from edgekd.run_folder import RunFolder, StudentFolder

    run, lines = pair_run
    assert any("text columns 'question1' + 'question2' (pairs)" in line for line in lines)
    assert StudentFolder(RunFolder(run).student).text_pair is True
    variants = json.loads((RunFolder(run).transfer / "variants.json").read_text())
    assert len(variants) == 2 * 120 and all(isinstance(v, list) and len(v) == 2 for v in variants)


@pytest.mark.slow  # fast-tier budget: kept in the full suite
def test_a_pair_run_exports_predicts_and_calibrates(pair_run, pair_files, tmp_path):
    from edgekd.distill.export import export_run

    run, _ = pair_run
    bundle = export_run(run, tmp_path / "b", data=pair_files["dev"], max_drop=5.0).path
    model = runtime.load(bundle)
    assert model.manifest.text_pair and model.manifest.calibration is not None
    a, b = "good film", "a superb moving story"
    want = model.classify([(a, b)], speed=0.0)[0]
    cli = CliRunner()
    out = cli.invoke(app, ["predict", str(bundle), a, b, "--speed", "0", "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.output.strip().splitlines()[-1])
    assert (got["text"], got["text_pair"], got["label"]) == (a, b, want.label)
    out = cli.invoke(app, ["predict", str(bundle), "-", "--speed", "0", "--json"], input=f"{a}\t{b}\n")
    assert json.loads(out.output.strip().splitlines()[-1])["label"] == want.label
    out = cli.invoke(app, ["predict", str(bundle), a])
    assert out.exit_code == 2 and "give the texts two by two" in out.output
    target = tmp_path / "out.jsonl"
    out = cli.invoke(app, ["predict", str(bundle), "--file", str(pair_files["dev"]), "--out", str(target)])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    dev = read_labelled(pair_files["dev"])
    assert [(r["text"], r["text_pair"]) for r in rows] == dev.texts
    direct = model.classify(dev.texts)
    assert [r["label"] for r in rows] == [r.label for r in direct]


@pytest.mark.slow
def test_the_bench_on_pairs_compares_the_teacher_and_the_pair_baselines(pair_run, pair_files, tmp_path):
    from edgekd.bench import BenchOptions, run_bench
    from edgekd.distill.export import export_run

    run, _ = pair_run
    bundle = export_run(run, tmp_path / "b").path
    payload = run_bench(BenchOptions(bundle, pair_files["dev"], tmp_path / "out", run_dir=run, speeds=[0.0, 0.5],
                                     latency_texts=4, js=False, thread_study=False, competitors=True, rss=True),
                        log=lambda _: None)
    rows = {r["kind"]: r for r in payload["rows"]}
    assert payload["failed"] == {}
    # the teacher as one ONNX graph takes token_type_ids and answers as torch does
    assert rows["teacher-onnx"]["accuracy"] == rows["teacher-torch"]["accuracy"]
    assert rows["student-onnx"]["accuracy"] == rows["edgekd"]["accuracy"]  # speed 0 = full depth
    for kind in ("fasttext", "tfidf-lr", "model2vec", "teacher-optimum"):
        assert 0 <= rows[kind]["accuracy"] <= 1 and rows[kind]["f1"] is not None, kind
        assert rows[kind]["peak_rss_mb"] > 0, kind
    assert "F1 %" in (tmp_path / "out" / "bench.md").read_text()
