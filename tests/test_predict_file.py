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
    assert rows[5] == {"row": 6, "text": "", "empty": True}
    want = runtime.load(bundle).classify([t for t in lines if t], speed=0.5)
    assert [(r["label"], r["exit_layer"]) for r in rows if "label" in r] == [(p.label, p.exit_layer) for p in want]
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
