"""Hostile input and a new user's mistakes (issue: trust the artifact). Each test names its item."""

from __future__ import annotations

import json
import os
import shutil
import stat
import warnings

import numpy as np
import pytest

import runtime
from edgekd.data import DataError, read_labelled, read_unlabelled
from edgekd.export import export_run
from runtime.errors import BundleError
from runtime.manifest import sha256_file
from tests.runtime.test_bundle_checks import edit_manifest


def _tree(path):
    return {p.relative_to(path).as_posix(): sha256_file(p) for p in sorted(path.rglob("*")) if p.is_file()}


def test_1_export_with_bad_data_leaves_the_old_bundle_untouched(finished_run, tmp_path):
    out = tmp_path / "b"
    export_run(finished_run, out)
    before = _tree(out)
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\ngood film\tneutral\n")
    with pytest.raises(DataError, match="neutral"):
        export_run(finished_run, out, overwrite=True, data=bad, max_drop=1.0)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "bad.tsv"], "no temporary folder left behind"


def test_1_a_failure_after_the_graphs_still_leaves_nothing(finished_run, tmp_path, monkeypatch):
    import edgekd.calibrate

    out = tmp_path / "b"
    export_run(finished_run, out)
    before = _tree(out)

    def boom(*args, **kwargs):
        raise RuntimeError("killed during calibration")

    monkeypatch.setattr(edgekd.calibrate, "calibrate", boom)
    good = tmp_path / "dev.tsv"
    good.write_text("sentence\tlabel\ngood film\tpositive\nawful film\tnegative\n")
    with pytest.raises(RuntimeError, match="killed"):
        export_run(finished_run, out, overwrite=True, data=good, max_drop=1.0)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "dev.tsv"]


def test_1_stale_temporary_folders_are_removed(finished_run, tmp_path):
    (tmp_path / ".b.tmp-dead").mkdir()
    (tmp_path / ".b.tmp-dead" / "embed.onnx").write_bytes(b"half")
    export_run(finished_run, tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_2_bundles_are_readable_by_other_users(bundle):
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o777 & ~mask
    for path in bundle.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path.name


def test_3_a_replaced_tokenizer_is_refused(bundle_copy):
    path = bundle_copy / "tokenizer.json"
    path.write_text(path.read_text().replace('"good"', '"goood"'))
    with pytest.raises(BundleError, match="tokenizer.json does not match its sha256"):
        runtime.load(bundle_copy)


def test_5_quoted_newlines_and_unicode_line_separators_survive(tmp_path):
    odd = "one\u2028two\x85three\x0cfour"
    csv_file = tmp_path / "d.csv"
    csv_file.write_text('text,label\n"line one\nline two",a\n"' + odd + '",b\nplain,a\n', encoding="utf-8")
    d = read_labelled(csv_file)
    assert d.texts == ["line one\nline two", odd, "plain"] and d.labels == [0, 1, 0]
    tsv = tmp_path / "d.tsv"
    tsv.write_text(f"sentence\tlabel\n{odd}\t1\nfine\t0\n", encoding="utf-8")
    assert read_labelled(tsv).texts == [odd, "fine"]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(json.dumps({"text": odd, "label": 1}) + "\n" + json.dumps({"text": "x", "label": 0}) + "\n")
    assert read_labelled(jsonl).texts == [odd, "x"]
    txt = tmp_path / "u.txt"
    txt.write_text(f"{odd}\nsecond\n", encoding="utf-8")
    assert read_unlabelled(txt).texts == [odd, "second"]


def test_5_text_and_label_columns_are_named_on_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from edgekd.cli import app

    result = CliRunner().invoke(app, ["distill", "--help"])
    assert "--text-column" in result.output and "--label-column" in result.output


def test_6_numeric_labels_are_one_class_per_value(tmp_path):
    f = tmp_path / "d.tsv"
    f.write_text("sentence\tlabel\na\t1\nb\t1.0\nc\t 1\nd\t0\ne\t0.0\n")
    d = read_labelled(f)
    assert d.label_names == ["0", "1"] and d.labels == [1, 1, 1, 0, 0]


def test_6_a_rare_label_warns_and_an_unknown_dev_label_is_named(tmp_path):
    train = tmp_path / "t.tsv"
    train.write_text("sentence\tlabel\na\tpos\nb\tpos\nc\tneg\nd\tneg\ne\tneu\n")
    with pytest.warns(UserWarning, match="'neu' occur only once"):
        names = read_labelled(train).label_names
    dev = tmp_path / "d.tsv"
    dev.write_text("sentence\tlabel\na\tpos\nb\tmixed\n")
    with pytest.raises(DataError, match="unknown label 'mixed' in row 3"):
        read_labelled(dev, label_names=names)


def test_8_bad_inputs_name_the_item(bundle):
    model = runtime.load(bundle)
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        model.classify(["fine", None])
    with pytest.raises(TypeError, match="speed must be a number"):
        model.classify(["fine"], speed="0.3")
    with pytest.raises(ValueError, match="speed must lie"):
        model.classify(["fine"], speed=2)


def test_8_non_utf8_stdin_to_predict_is_one_clear_line(bundle):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "edgekd.cli", "predict", str(bundle), "-"],
                         input=b"good film\n\xff\xfe bad bytes\n", capture_output=True)
    assert out.returncode == 2
    err = out.stderr.decode()
    assert "UTF-8" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_8_predict_file_writes_one_row_per_input_line_in_order(bundle, tmp_path):
    from typer.testing import CliRunner

    from edgekd.cli import app
    from tests.conftest import TEXTS

    src = tmp_path / "in.txt"
    lines = TEXTS[:5] + [""] + TEXTS[5:9]
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["predict", str(bundle), "--file", str(src), "--out", str(out), "--speed", "0.5"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["row"] for r in rows] == list(range(1, len(lines) + 1))
    assert rows[5] == {"row": 6, "text": "", "empty": True}
    want = runtime.load(bundle).classify([t for t in lines if t], speed=0.5)
    assert [(r["label"], r["exit_layer"]) for r in rows if "label" in r] == [(p.label, p.exit_layer) for p in want]
    # CSV by extension, with a header
    csv_out = tmp_path / "out.csv"
    assert CliRunner().invoke(app, ["predict", str(bundle), "--file", str(src), "--out", str(csv_out)]).exit_code == 0
    assert csv_out.read_text().splitlines()[0].startswith("row,text,label")
    assert len(csv_out.read_text().splitlines()) == len(lines) + 1


def test_8_predict_file_resume_continues_after_the_last_complete_row(bundle, tmp_path):
    from edgekd.apps.predict_file import predict_file
    from tests.conftest import TEXTS

    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS) + "\n")
    out = tmp_path / "out.jsonl"
    model = runtime.load(bundle)
    predict_file(model, src, out, progress=False)
    full = out.read_text()
    lines = full.splitlines(keepends=True)
    out.write_text("".join(lines[:10]) + lines[10][:7])  # killed mid-row
    written = predict_file(model, src, out, resume=True, progress=False)
    assert written == len(TEXTS) - 10 and out.read_text() == full
    with pytest.raises(runtime.EdgeKDError, match="--resume"):
        predict_file(model, src, out, progress=False)


def test_14_a_distill_that_cannot_start_leaves_no_folder(tiny_teacher_dir, tiny_data, tmp_path):
    from edgekd.config import ConfigError
    from edgekd.pipeline import distill
    from tests.conftest import tiny_config

    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\nonly one\tpos\n")
    cfg = tiny_config(tiny_teacher_dir, {"train": bad, "dev": tiny_data["dev"]}, tmp_path / "run")
    with pytest.raises(DataError):
        distill(cfg, log=lambda _: None)
    assert not (tmp_path / "run").exists()
    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "run", data={"label_names": ["a", "b", "c"]})
    with pytest.raises(ConfigError, match="--label-names gives 3 names"):
        distill(cfg, log=lambda _: None)
    assert not (tmp_path / "run").exists()


def test_15_label_names_reach_the_bundle_and_predictions(tiny_teacher_dir, tmp_path):
    from edgekd.pipeline import distill
    from edgekd.fixtures import tiny_sentiment
    from tests.conftest import tiny_config

    files = {}
    for name, n, seed in (("train", 64, 0), ("dev", 24, 1)):
        files[name] = tmp_path / f"{name}.tsv"
        files[name].write_text("sentence\tlabel\n" + "".join(
            f"{t}\t{1 if l == 'positive' else 0}\n" for t, l in tiny_sentiment(n, seed)))
    cfg = tiny_config(tiny_teacher_dir, files, tmp_path / "run", stages=["teacher", "finetune"],
                      data={"label_names": ["negative", "positive"]})
    run = distill(cfg, log=lambda _: None)
    bundle = export_run(run, tmp_path / "b", data=files["dev"], max_drop=1.0).path  # dev labels are 0/1
    model = runtime.load(bundle)
    assert model.labels == ["negative", "positive"] and model.manifest.label_values == ["0", "1"]
    p = model.classify(["good film"])[0]
    assert p.label in ("negative", "positive") and list(p.probs) == ["negative", "positive"]


def test_20_version_and_license():
    from pathlib import Path

    from typer.testing import CliRunner

    from edgekd.cli import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("edgekd ")
    assert "Apache License" in (Path(__file__).resolve().parents[1] / "LICENSE").read_text()


@pytest.mark.parametrize("engine", ["graph", "staged"])
def test_4_manifest_checked_against_the_graphs(bundle_copy, engine):
    edit_manifest(bundle_copy, lambda d: d.update(labels=["a", "b", "c"]))
    with pytest.raises(BundleError, match="gives 2 logits but the manifest lists 3 labels"):
        runtime.load(bundle_copy, engine=engine)


def test_4_swapped_layer_files_are_found(bundle_copy):
    def swap(d):
        first, second = d["stages"][1], d["stages"][2]
        first["file"], second["file"] = second["file"], first["file"]
        first["sha256"], second["sha256"] = second["sha256"], first["sha256"]

    edit_manifest(bundle_copy, swap)
    with pytest.raises(BundleError, match="the stage list is out of order or a file was swapped"):
        runtime.load(bundle_copy, engine="staged")
    edit_manifest(bundle_copy, lambda d: d["stages"].insert(1, d["stages"].pop(2)))
    with pytest.raises(BundleError, match="out of order"):
        runtime.load(bundle_copy)


def test_4_max_length_beyond_the_position_table(bundle_copy):
    edit_manifest(bundle_copy, lambda d: d.update(max_length=100000))
    with pytest.raises(BundleError, match="exceeds the 64 positions"):
        runtime.load(bundle_copy)


def test_4_hostile_manifests_give_one_clear_error(bundle_copy, tmp_path):
    path = bundle_copy / "manifest.json"
    good = path.read_text()
    path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(BundleError, match="nested too deeply|schema_version"):
        runtime.load(bundle_copy)
    path.write_text(good)
    edit_manifest(bundle_copy, lambda d: d.update(max_length="40", tokenizer=None))
    with pytest.raises(BundleError, match="max_length has the wrong type.*\\n.*tokenizer has the wrong type"):
        runtime.load(bundle_copy)
    path.write_text(good)
    edit_manifest(bundle_copy, lambda d: d.update(max_length=1, default_speed=7))
    with pytest.raises(BundleError, match="max_length must be an integer >= 2.*\\n.*default_speed must lie"):
        runtime.load(bundle_copy)
    path.write_text(good)
    outside = tmp_path / "m.json"
    outside.write_text(good)
    path.unlink()
    path.symlink_to(outside)
    with pytest.raises(BundleError, match="symbolic link"):
        runtime.load(bundle_copy)


def test_3_unlisted_files_are_refused(bundle_copy):
    (bundle_copy / "vocab_map.json").write_text("{}")
    with pytest.raises(BundleError, match="files the manifest does not list: vocab_map.json"):
        runtime.load(bundle_copy)


def _teacher_with_head(folder, names, auto_map=False):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from edgekd.fixtures import SPECIALS, WORDS, tiny_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tiny_tokenizer(folder / "tokenizer.json")
    config = BertConfig(vocab_size=len(SPECIALS) + len(WORDS) + 2, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=len(names), id2label=dict(enumerate(names)),
                        label2id={n: i for i, n in enumerate(names)})
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(folder), safe_serialization=True)
    if auto_map:
        data = json.loads((folder / "config.json").read_text())
        data["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
        (folder / "config.json").write_text(json.dumps(data))
    return folder


def test_11_a_head_with_other_class_names_is_mapped_by_name_or_refused(tmp_path, tiny_data):
    import torch

    from edgekd.teacher import TeacherError, load_teacher

    teacher = _teacher_with_head(tmp_path / "t", ["positive", "negative"])  # the reverse of the data's order
    model = load_teacher(teacher, 2, labels=["negative", "positive"])
    plain = load_teacher(teacher, 2)
    ids = torch.tensor([[2, 5, 6, 3]])
    with torch.no_grad():
        a, b = model.eval()(input_ids=ids).logits, plain.eval()(input_ids=ids).logits
    assert torch.allclose(a, b.flip(-1)), "output k of the mapped head is the label k of the data"
    with pytest.raises(TeacherError, match="cannot be matched by name"):
        load_teacher(teacher, 2, labels=["sports", "politics"])
    placeholder = _teacher_with_head(tmp_path / "p", ["LABEL_0", "LABEL_1"])
    with torch.no_grad():
        same = load_teacher(placeholder, 2, labels=["negative", "positive"]).eval()(input_ids=ids).logits
        raw = load_teacher(placeholder, 2).eval()(input_ids=ids).logits
    assert torch.equal(same, raw), "LABEL_k placeholders are mapped by index"


def test_10_remote_code_and_stray_weights_are_refused_up_front(tmp_path):
    from edgekd.teacher import TeacherError, check_teacher

    evil = _teacher_with_head(tmp_path / "evil", ["a", "b"], auto_map=True)
    with pytest.raises(TeacherError, match="remote code"):
        check_teacher(evil, True, "teacher")
    stray = _teacher_with_head(tmp_path / "stray", ["a", "b"])
    (stray / "model.safetensors").rename(stray / "other-model.safetensors")
    with pytest.raises(TeacherError, match="other-model.safetensors"):
        check_teacher(stray, True, "teacher")


def test_9_factorised_embeddings_with_init_teacher_are_accepted(tmp_path):
    """Issue 16 superseded the refusal: ELECTRA with embedding size != hidden size is supported (its projection
    comes along; tests/edgekd/test_families.py checks the copy is exact)."""
    from transformers import ElectraConfig, ElectraModel

    from edgekd.teacher import check_teacher

    ElectraModel(ElectraConfig(vocab_size=60, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=2, intermediate_size=64)).save_pretrained(
        str(tmp_path / "e"), safe_serialization=True)
    check_teacher(tmp_path / "e", True, "teacher")
    check_teacher(tmp_path / "e", True, "random")


def test_7_a_tokenizer_that_is_not_the_teachers_is_refused_or_warned(tiny_teacher_dir, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    from edgekd.teacher import TeacherError, check_tokenizer
    from runtime.tokenize import TextEncoder

    big = Tokenizer(models.WordLevel({f"w{i}": i for i in range(500)} | {"[UNK]": 500}, unk_token="[UNK]"))
    big.pre_tokenizer = pre_tokenizers.Whitespace()
    big.save(str(tmp_path / "big.json"))
    with pytest.raises(TeacherError, match="wrong folder"):
        check_tokenizer(TextEncoder.from_file(tmp_path / "big.json", 16), tiny_teacher_dir, True, ["w1 w2"])
    encoder = TextEncoder.from_file(tiny_teacher_dir / "tokenizer.json", 16)
    with pytest.warns(UserWarning, match="unknown to the teacher's tokenizer"):
        share = check_tokenizer(encoder, tiny_teacher_dir, True, ["das ist ein ganz anderer satz"])
    assert share > 0.5
    assert check_tokenizer(encoder, tiny_teacher_dir, True, ["a good film"]) == 0.0


def test_19_global_threading_without_the_pool_says_what_to_do(bundle):
    import subprocess
    import sys

    script = f"""
import runtime, runtime.sessions as rs
rs._global_pool.append(0)  # as if the pool were made, while onnxruntime's environment has none
try:
    runtime.load({str(bundle)!r}, threading="global")
except runtime.EdgeKDError as exc:
    print(type(exc).__name__, exc)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    last = out.stdout.strip().splitlines()[-1]  # onnxruntime prints its own EP error block before it
    assert last.startswith("EdgeKDError threading='global' needs onnxruntime's process-wide thread pool")
    assert "threading='stop'" in last and "BundleError" not in out.stdout


def test_14_overwrite_starts_over_and_never_removes_a_foreign_folder(tiny_teacher_dir, tiny_data, tmp_path):
    from edgekd.config import ConfigError
    from edgekd.pipeline import distill
    from tests.conftest import tiny_config

    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "run", stages=["teacher"])
    distill(cfg, log=lambda _: None)
    (tmp_path / "run" / "marker").write_text("old")
    distill(cfg, log=lambda _: None, overwrite=True)
    assert not (tmp_path / "run" / "marker").exists() and (tmp_path / "run" / "state.json").is_file()
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"\xff\xd8")
    cfg = tiny_config(tiny_teacher_dir, tiny_data, foreign, stages=["teacher"])
    with pytest.raises(ConfigError, match="not a run folder"):
        distill(cfg, log=lambda _: None, overwrite=True)
    assert (foreign / "cat.jpg").is_file()
