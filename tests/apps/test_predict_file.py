"""`edgekd predict --file`: every input row answered, in order, streaming; resumable."""

from __future__ import annotations

import json

import pytest

import runtime


def test_predict_file_writes_one_row_per_input_line_in_order(bundle, tmp_path):
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
    # an empty row is answered as classify("") answers it, and marked
    assert rows[5]["text"] == "" and rows[5]["empty"] is True and "empty" not in rows[4]
    want = runtime.load(bundle).classify(lines, speed=0.5)
    assert [(r["label"], r["exit_layer"]) for r in rows] == [(p.label, p.exit_layer) for p in want]
    # CSV by extension, with a header
    csv_out = tmp_path / "out.csv"
    assert CliRunner().invoke(app, ["predict", str(bundle), "--file", str(src), "--out", str(csv_out)]).exit_code == 0
    assert csv_out.read_text().splitlines()[0].startswith("row,text,label")
    assert len(csv_out.read_text().splitlines()) == len(lines) + 1


def test_predict_file_resume_continues_after_the_last_complete_row(bundle, tmp_path):
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


def test_progress_lines_when_not_a_terminal_and_ctrl_c_says_how_to_resume(bundle, tmp_path, monkeypatch, capsys):
    from edgekd.apps import predict_file as module
    from tests.conftest import TEXTS

    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS * 100) + "\n")
    model = runtime.load(bundle)
    monkeypatch.setattr(module, "CHUNK", 500)
    monkeypatch.setattr(module, "PROGRESS_EVERY_S", 0.0)
    module.predict_file(model, src, tmp_path / "a.jsonl")
    err = capsys.readouterr().err
    assert "classify: 500 rows (" in err and f"classify: {len(TEXTS) * 100} rows (" in err and ", done" in err
    real, calls = module._write, []

    def killed(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "_write", killed)
    with pytest.raises(KeyboardInterrupt):
        module.predict_file(model, src, tmp_path / "b.jsonl")
    assert ("interrupted after row 1000: " + str(tmp_path / "b.jsonl") + " holds rows 1-1000; run the same command "
            "with --resume to continue") in capsys.readouterr().err
    monkeypatch.setattr(module, "_write", real)
    assert module.predict_file(model, src, tmp_path / "b.jsonl", resume=True) == len(TEXTS) * 100 - 1000


def test_an_out_format_it_cannot_append_to_is_refused(bundle, tmp_path):
    from edgekd.apps.predict_file import predict_file

    src = tmp_path / "in.txt"
    src.write_text("good\n")
    with pytest.raises(runtime.EdgeKDError, match=r"cannot write \.parquet; give a \.jsonl or \.csv file"):
        predict_file(runtime.load(bundle), src, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()
