"""Data reading: formats, label sets, and errors that name the file, row and fix."""

from __future__ import annotations

import json

import pytest

from edgekd.data import DataError, read_labelled, read_unlabelled


def write(tmp_path, name, text, mode="w"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_tsv_csv_jsonl_agree(tmp_path):
    rows = [("good film", "pos"), ("bad, dull film", "neg"), ("fine", "pos")]
    tsv = write(tmp_path, "a.tsv", "sentence\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows))
    csv_ = write(tmp_path, "a.csv", "text,label\n" + "".join(f'"{t}",{l}\n' for t, l in rows))
    jsonl = write(tmp_path, "a.jsonl", "".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in rows))
    for path in (tsv, csv_, jsonl):
        d = read_labelled(path)
        assert d.texts == [t for t, _ in rows]
        assert d.label_names == ["neg", "pos"] and d.labels == [1, 0, 1]


def test_integer_labels_sort_numerically_and_fifteen_classes_work(tmp_path):
    text = "sentence\tlabel\n" + "".join(f"row {i}\t{i % 15}\n" for i in range(45))
    d = read_labelled(write(tmp_path, "many.tsv", text))
    assert d.label_names == [str(i) for i in range(15)]
    assert d.labels[:3] == [0, 1, 2] and len(d) == 45


def test_named_columns(tmp_path):
    path = write(tmp_path, "c.tsv", "id\treview\tstars\n1\tgreat\t5\n2\tawful\t1\n")
    d = read_labelled(path, text_column="review", label_column="stars")
    assert d.texts == ["great", "awful"] and d.label_names == ["1", "5"]
    with pytest.raises(DataError, match="no text column 'body'; columns are: id, review, stars"):
        read_labelled(path, text_column="body")


def test_missing_column(tmp_path):
    with pytest.raises(DataError, match=r"no label column found .* --label-column"):
        read_labelled(write(tmp_path, "x.tsv", "sentence\tstars\na\t1\n"))


def test_unknown_dev_label_names_row_and_labels(tmp_path):
    dev = write(tmp_path, "dev.tsv", "sentence\tlabel\nok\tpositive\nhmm\tneutral\n")
    with pytest.raises(DataError, match=r"unknown label 'neutral' in row 3; the training labels are: negative, positive"):
        read_labelled(dev, label_names=["negative", "positive"])


def test_empty_and_header_only(tmp_path):
    with pytest.raises(DataError, match="empty"):
        read_labelled(write(tmp_path, "e.tsv", ""))
    with pytest.raises(DataError, match="no rows"):
        read_labelled(write(tmp_path, "h.tsv", "sentence\tlabel\n"))


def test_undecodable_bytes(tmp_path):
    path = write(tmp_path, "bad.tsv", b"sentence\tlabel\ncaf\xe9\t1\nok\t0\n")
    with pytest.raises(DataError, match=r"line 2 has bytes that are not UTF-8.*UTF-8"):
        read_labelled(path)


def test_wrong_delimiter(tmp_path):
    with pytest.raises(DataError, match="comma-separated.*.csv"):
        read_labelled(write(tmp_path, "x.tsv", "sentence,label\ngood,1\n"))
    with pytest.raises(DataError, match="fields but the header has"):
        read_labelled(write(tmp_path, "y.tsv", "sentence\tlabel\ngood\t1\textra\n"))


def test_single_label_and_unknown_extension(tmp_path):
    with pytest.raises(DataError, match="only one label"):
        read_labelled(write(tmp_path, "one.tsv", "sentence\tlabel\na\tx\nb\tx\n"))
    with pytest.raises(DataError, match="cannot tell the format"):
        read_labelled(write(tmp_path, "x.parquet", "abc"))


def test_bad_jsonl_line(tmp_path):
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        read_labelled(write(tmp_path, "x.jsonl", '{"text": "a", "label": 1}\n{oops\n'))


def test_unlabelled_lines_and_columns(tmp_path):
    assert read_unlabelled(write(tmp_path, "u.txt", "one\n\ntwo\n")).texts == ["one", "two"]
    d = read_unlabelled(write(tmp_path, "u.tsv", "sentence\tlabel\na\t1\nb\t0\n"))
    assert d.texts == ["a", "b"] and d.labels is None


def test_quoted_newlines_and_unicode_line_separators_survive(tmp_path):
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


def test_text_and_label_columns_are_named_on_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from edgekd.cli import app

    result = CliRunner().invoke(app, ["distill", "--help"])
    assert "--text-column" in result.output and "--label-column" in result.output


def test_numeric_labels_are_one_class_per_value(tmp_path):
    f = tmp_path / "d.tsv"
    f.write_text("sentence\tlabel\na\t1\nb\t1.0\nc\t 1\nd\t0\ne\t0.0\n")
    d = read_labelled(f)
    assert d.label_names == ["0", "1"] and d.labels == [1, 1, 1, 0, 0]


@pytest.mark.parametrize("labels, words", [
    (["positive"] * 30 + ["negative"] * 20 + ["postive"], "'postive' (1 row) beside 'positive' (30 rows)"),
    (["positive"] * 3 + ["negative"] * 3 + ["Negative"], "'Negative' (1 row) differs only in case from 'negative'"),
    (["0"] * 3 + ["1"] * 3 + ["1.0x"], "'1.0x' (1 row) is not a number beside '0', '1'"),
])
def test_suspect_labels_are_refused_naming_them_unless_accepted(tmp_path, labels, words):
    """Issue 43, item 3: a typo trained an extra class after a raw UserWarning."""
    train = tmp_path / "t.tsv"
    train.write_text("sentence\tlabel\n" + "".join(f"text {i}\t{label}\n" for i, label in enumerate(labels)))
    with pytest.raises(DataError, match="suspect labels") as refused:
        read_labelled(train)
    assert words in str(refused.value) and "--accept-labels" in str(refused.value)
    assert len(read_labelled(train, accept_labels=True).label_names) == 3


def test_an_unknown_dev_label_is_named(tmp_path):
    train = tmp_path / "t.tsv"
    train.write_text("sentence\tlabel\na\tpos\nb\tpos\nc\tneg\nd\tneg\ne\tneu\n")
    names = read_labelled(train).label_names  # a class seen once beside classes seen twice: not suspect
    dev = tmp_path / "d.tsv"
    dev.write_text("sentence\tlabel\na\tpos\nb\tmixed\n")
    with pytest.raises(DataError, match="unknown label 'mixed' in row 3"):
        read_labelled(dev, label_names=names)


def test_label_ids_index_the_label_names_even_when_train_lacks_a_class(tiny_teacher_dir, tmp_path):
    """Issue 43, item 4: `--label-names @labels.txt` with ids was refused when train lacked a class."""
    from edgekd.distill.prepare import prepare
    from edgekd.run_folder import RunFolder
    from tests.conftest import tiny_config

    words = ["good film", "bad plot", "fine cast", "dull story", "superb acting", "awful script"]
    train, dev = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    train.write_text("sentence\tlabel\n" + "".join(f"{w} {i}\t{[0, 1, 3][i % 3]}\n" for i, w in enumerate(words * 3)))
    dev.write_text("sentence\tlabel\na good film\t0\na dull plot\t1\n")
    names = ["joy", "anger", "fear", "calm"]
    cfg = tiny_config(tiny_teacher_dir, {"train": train, "dev": dev}, tmp_path / "run",
                      data={"label_names": names})
    logs: list[str] = []
    ready = prepare(cfg, RunFolder(tmp_path / "run"), logs.append)
    assert ready.task.labels == names and ready.task.label_values == ["0", "1", "2", "3"]
    assert sorted(set(ready.train_set.labels)) == [0, 1, 3] and ready.dev_set.labels == [0, 1]
    assert any("has no row of 1 of them (2 fear)" in line for line in logs)
    with pytest.raises(Exception, match="gives 2 names but .* has 3 labels"):  # too few names: refused
        prepare(tiny_config(tiny_teacher_dir, {"train": train, "dev": dev}, tmp_path / "run2",
                            data={"label_names": names[:2]}), RunFolder(tmp_path / "run2"), logs.append)
