"""The model card: README.md in every bundle exported from a run, listed and hashed, with a hub's front
matter; its numbers are the manifest's, and calibrate writes it again."""

from __future__ import annotations

import re

import pytest

import runtime
from edgekd.card import front_matter
from edgekd.distill.export import export_run
from runtime.errors import BundleError


def table(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| speed")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


@pytest.mark.slow  # fast-tier budget: kept in the full suite
def test_every_exported_bundle_has_a_card_whose_numbers_are_the_manifests(finished_run, tiny_data, tmp_path):
    bundle = export_run(finished_run, tmp_path / "b", data=tiny_data["dev"], max_drop=5.0).path
    manifest = runtime.read_manifest(bundle)
    text = (bundle / "README.md").read_text()
    assert manifest.card == "README.md" and manifest.card_sha256
    meta = front_matter(text)
    assert meta["library_name"] == "edgekd" and meta["pipeline_tag"] == "text-classification"
    assert meta["metrics"] == ["accuracy", "f1"] and meta["base_model"] and "license" in meta
    assert f"`{manifest.source['train']}` ({manifest.source['train_rows']} rows)" in text
    rows = table(text)
    # the card shows every 0.05 of speed and the default one; the manifest keeps calibration's finer grid
    shown = [p for p in manifest.calibration.points if round(20 * p.speed, 6).is_integer()
             or p.speed == manifest.default_speed]
    assert len(rows) == len(shown) < len(manifest.calibration.points)
    for row, point in zip(rows, shown):
        assert float(row[0]) == pytest.approx(point.speed)
        assert float(row[1]) == pytest.approx(100 * point.accuracy, abs=0.005)
        assert float(row[3]) == pytest.approx(point.average_layers, abs=0.005)
    assert re.search(rf"default speed is {manifest.default_speed:g}", text)
    assert "token_type_ids" not in text and "model.onnx" in text
    runtime.load(bundle)  # listed and hashed: it verifies


@pytest.mark.slow  # fast-tier budget: kept in the full suite
def test_an_edited_card_is_said_not_refused_and_rehash_or_calibrate_write_it_again(finished_run, tiny_data, tmp_path):
    """Issue 43, item 9: the card is documentation: an edit is warned about, naming the command that records
    it; the graphs stay verified strictly."""
    import shutil
    import warnings

    from typer.testing import CliRunner

    from edgekd.calibrate import calibrate
    from edgekd.cli import app
    from runtime.manifest import BundleWarning

    bundle = export_run(finished_run, tmp_path / "b", data=tiny_data["dev"], max_drop=5.0).path
    before = (bundle / "README.md").read_text()
    (bundle / "README.md").write_text(before + "\nedited\n")
    with pytest.warns(BundleWarning, match=f"edgekd card {bundle} --rehash"):
        assert runtime.load(bundle).classify(["a superb film"])
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    (broken / "layer_01.onnx").write_bytes((broken / "layer_02.onnx").read_bytes())
    with pytest.raises(BundleError, match="layer_01.onnx does not match its sha256"):
        runtime.load(broken)
    out = CliRunner().invoke(app, ["card", str(bundle), "--rehash"])
    assert out.exit_code == 0 and "recorded as edited" in out.output
    with warnings.catch_warnings():
        warnings.simplefilter("error", BundleWarning)
        runtime.load(bundle)
    assert (bundle / "README.md").read_text().endswith("edited\n")
    (bundle / "README.md").write_text(before)
    calibrate(bundle, tiny_data["dev"], max_drop=0.0)
    after = (bundle / "README.md").read_text()
    manifest = runtime.load(bundle).manifest  # hashed again: it verifies
    assert "max_drop=0 points" in after and f"default speed is {manifest.default_speed:g}" in after


def test_the_teacher_is_named_by_its_own_folder_and_no_path_is_stored(tmp_path):
    """Issue 43, item 13: all-MiniLM-L6-v2 was named by config._name_or_path (its base, nreimers/MiniLM-...),
    and the manifest kept the teacher's absolute path."""
    import json as js

    from edgekd.card import _model_name, training_source

    st = tmp_path / "st"
    st.mkdir()
    (st / "config.json").write_text(js.dumps({"_name_or_path": "nreimers/MiniLM-L6-H384-uncased"}))
    (st / "modules.json").write_text("[]")
    (st / "README.md").write_text("# all-MiniLM\nmodel = SentenceTransformer('sentence-transformers/all-MiniLM-L6-v2')")
    assert _model_name(str(st)) == "sentence-transformers/all-MiniLM-L6-v2"
    cached = tmp_path / "hub" / "models--prajjwal1--bert-tiny" / "snapshots" / "abc123"
    cached.mkdir(parents=True)
    (cached / "config.json").write_text("{}")
    assert _model_name(str(cached)) == "prajjwal1/bert-tiny"
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text(js.dumps({"_name_or_path": "bert-base-uncased"}))
    assert _model_name(str(plain)) == "bert-base-uncased"
    (plain / "config.json").write_text(js.dumps({"_name_or_path": str(tmp_path / "somewhere")}))
    assert _model_name(str(plain)) == "plain" and _model_name("org/model") == "org/model"
    source = training_source({"teacher": str(st), "data": {"train": str(tmp_path / "t.tsv")}}, {}, 64, 10)
    assert str(tmp_path) not in js.dumps(source) and source["teacher"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_the_card_states_the_rows_the_student_learnt_from(tmp_path):
    """Issue 43, item 13: a run trained on 64 rows (data.max_train) said the file's 100."""
    from edgekd.config import DistillConfig
    from edgekd.distill.export import _source
    from tests.conftest import make_student

    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\n" + "".join(f"text {i}\t{i % 2}\n" for i in range(100)))
    cfg = DistillConfig(teacher="org/model")
    cfg.data.train, cfg.data.max_train = str(train), 64
    assert _source(cfg, make_student())["train_rows"] == 64
    cfg.data.max_train = 0
    assert _source(cfg, make_student())["train_rows"] == 100
