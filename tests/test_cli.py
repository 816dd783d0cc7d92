"""The command line through typer's CliRunner, and `--help` without torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekd.cli import app

runner = CliRunner()


def test_help_does_not_import_torch():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom edgekd.cli import app\n"
            "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0, r.output\n"
            "for c in ('distill', 'export', 'predict', 'inspect'):\n"
            "    assert CliRunner().invoke(app, [c, '--help']).exit_code == 0\n"
            "print('TORCH', 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "TORCH False" in proc.stdout


def test_predict_plain_and_json(bundle):
    result = runner.invoke(app, ["predict", str(bundle), "a superb film", "dull", "--speed", "0.3"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[0] in ("negative", "positive") and "layer" in lines[0]
    result = runner.invoke(app, ["predict", str(bundle), "a superb film", "--json", "--speed", "0"])
    row = json.loads(result.output)
    assert row["exit_layer"] == 3 and abs(sum(row["probs"].values()) - 1) < 1e-5
    assert list(row["probs"]) == ["negative", "positive"]


def test_predict_reads_stdin(bundle):
    result = runner.invoke(app, ["predict", str(bundle), "-", "--json"], input="good\nbad film\n")
    assert result.exit_code == 0 and len(result.output.strip().splitlines()) == 2


def test_predict_errors_are_one_line(bundle, tmp_path):
    result = runner.invoke(app, ["predict", str(tmp_path / "nope"), "x"])
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["predict", str(bundle), "x", "--speed", "3"])
    assert result.exit_code == 2 and "speed must lie in [0, 1]" in result.output


def test_inspect(bundle):
    result = runner.invoke(app, ["inspect", str(bundle)])
    assert result.exit_code == 0, result.output
    assert "layer_03.onnx" in result.output and "negative, positive" in result.output and "MB" in result.output
    data = json.loads(runner.invoke(app, ["inspect", str(bundle), "--json"]).output)
    assert data["schema_version"] == 4 and len(data["parts"]) == 5 and data["task"]["text_pair"] is False


@pytest.mark.slow
def test_distill_then_export_then_predict(tiny_teacher_dir, tiny_data, tmp_path):
    run = tmp_path / "run"
    args = ["distill", "--teacher", str(tiny_teacher_dir), "--train", str(tiny_data["train"]), "--dev",
            str(tiny_data["dev"]), "--out", str(run), "--preset", "tiny", "--stages", "teacher,finetune,branches",
            "--device", "cpu", "--init", "random"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (run / "student" / "model.safetensors").is_file()
    result = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "max diff" in result.output
    # a plain export turns early exit on: calibrated on the run's dev set at the default budget, said so
    assert f"calibrating the default speed on the run's dev set ({tiny_data['dev']}) with --max-drop 1" in result.output
    assert "optimistic" in result.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["calibration"]["rule"] == "max_drop=1 points"
    result = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "--overwrite" in result.output
    result = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "b0"), "--no-calibrate"])
    assert result.exit_code == 0 and json.loads((tmp_path / "b0" / "manifest.json").read_text())["default_speed"] == 0
    result = runner.invoke(app, ["predict", str(tmp_path / "b"), "good film"])
    assert result.exit_code == 0 and "layer" in result.output


def test_distill_config_errors_listed_together(tmp_path):
    result = runner.invoke(app, ["distill", "--layers", "0", "--head-type", "max"])
    assert result.exit_code == 2
    for words in ("teacher is required", "data.train is required", "student.layers must be positive", "head_type"):
        assert words in result.output


def test_distill_data_error_names_the_file(tiny_teacher_dir, tmp_path):
    bad = tmp_path / "train.tsv"
    bad.write_text("sentence,label\na,1\n")
    result = runner.invoke(app, ["distill", "--teacher", str(tiny_teacher_dir), "--train", str(bad), "--dev", str(bad),
                                 "--out", str(tmp_path / "r"), "--preset", "tiny"])
    assert result.exit_code == 2 and "train.tsv" in result.output and ".csv" in result.output


def test_export_of_a_missing_run(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path / "nope"), "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "no such folder" in result.output


def test_own_errors_are_one_line_and_a_bug_keeps_its_traceback(bundle, monkeypatch):
    import runtime

    result = CliRunner().invoke(app, ["predict", str(bundle), "x", "--speed", "2"])
    assert result.exit_code == 2 and result.output.strip().startswith("error: speed must lie in [0, 1]")

    def bug(self, *args, **kwargs):
        raise ValueError("a bug inside edgekd")

    monkeypatch.setattr(runtime.EdgeModel, "classify", bug)
    result = CliRunner().invoke(app, ["predict", str(bundle), "x"])
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)
    assert "error: a bug" not in result.output


def test_non_utf8_stdin_to_predict_is_one_clear_line(bundle):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "edgekd.cli", "predict", str(bundle), "-"],
                         input=b"good film\n\xff\xfe bad bytes\n", capture_output=True)
    assert out.returncode == 2
    err = out.stderr.decode()
    assert "UTF-8" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_version_and_license():
    from pathlib import Path

    from typer.testing import CliRunner

    from edgekd.cli import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("edgekd ")
    assert "Apache License" in (Path(__file__).resolve().parents[1] / "LICENSE").read_text()


@pytest.mark.slow
def test_help_text_shows_no_bool_placeholder_lists_every_stage_and_no_false_version():
    import os

    from edgekd.cli import DISTILL_STAGES
    from edgekd.config import STAGES

    assert DISTILL_STAGES.split(",") == list(STAGES)
    env = {**os.environ, "COLUMNS": "200"}
    for command in (["distill"], ["bench"], ["demo"], ["serve"], []):
        out = subprocess.run([sys.executable, "-m", "edgekd.cli", *command, "--help"], capture_output=True, text=True,
                             env=env)
        assert out.returncode == 0 and "<bool>" not in out.stdout, command
    distill = subprocess.run([sys.executable, "-m", "edgekd.cli", "distill", "--help"], capture_output=True, text=True,
                             env=env).stdout
    assert "refine" in distill and "teacher,refine,attention,baseline,finetune,branches" in distill
    demo = subprocess.run([sys.executable, "-m", "edgekd.cli", "demo", "--help"], capture_output=True, text=True,
                          env=env).stdout
    assert ">= 0.2" not in demo


# every flag `edgekd distill` had before its options were made from the config's field metadata
DISTILL_FLAGS = {"teacher", "train", "dev", "out", "unlabeled", "text-column", "text-pair-column", "label-column",
                 "label-names", "problem", "standardize", "overwrite", "student", "layers", "hidden", "heads", "ffn",
                 "head-type", "init", "student-init", "vocab-keep", "vocab-size", "augment", "stages", "epochs",
                 "max-steps", "batch-size", "max-length", "kd", "objective", "seed", "device", "config", "preset",
                 "online", "keep-checkpoints"}


def test_distill_options_come_from_the_config_fields_with_their_old_spelling():
    from edgekd.cli import command

    distill = command().commands["distill"]
    names = {opt[2:] for p in distill.params for opt in [*p.opts, *p.secondary_opts]
             if opt.startswith("--") and opt != "--help"}
    assert names >= DISTILL_FLAGS
    assert {n for n in names if n.startswith("no-")} <= {"no-" + n for n in DISTILL_FLAGS | {"accept-labels"}}


def test_distill_flags_land_in_their_config_fields(tmp_path):
    from edgekd.config import resolve_config
    from edgekd.flags import flag_overrides

    names = tmp_path / "labels.txt"
    names.write_text("neg\npos\n")
    given = {"teacher": "T", "out": "O", "train": "a.tsv", "dev": "b.tsv", "layers": 3, "student": "transformer",
             "student_init": "ckpt", "label_names": f"@{names}", "stages": "teacher, finetune", "online": True,
             "kd": "mse", "objective": "both", "standardize": False, "vocab_keep": 0.5, "text_pair_column": "q2",
             "hidden": None, "heads": None}
    cfg = resolve_config(None, None, flag_overrides(given))
    assert (cfg.teacher, cfg.out, cfg.data.train, cfg.data.dev) == ("T", "O", "a.tsv", "b.tsv")
    assert (cfg.student.layers, cfg.student.init_from, cfg.student.vocab_keep) == (3, "ckpt", 0.5)
    assert cfg.student.hidden == 256  # not given: the default stays
    assert cfg.data.label_names == ["neg", "pos"] and cfg.stages == ["teacher", "finetune"]
    assert cfg.offline is False and cfg.finetune.kd == "mse" and cfg.attention.objective == "both"
    assert cfg.data.standardize is False and cfg.data.text_pair_column == "q2"
    assert resolve_config(None, None, flag_overrides({**given, "online": False})).offline is True


PAIR_FIXTURE = Path(__file__).resolve().parents[1] / "js" / "test" / "fixtures" / "pair"


def test_stdin_of_a_pair_bundle_takes_one_pair_a_line_and_refuses_a_line_without_a_tab():
    """Issue 43, item 1: no fallback to two by two on stdin (it paired the wrong texts)."""
    bad = runner.invoke(app, ["predict", str(PAIR_FIXTURE), "-"], input="a\tb\nno tab here\nc\td\ne\tf\n")
    assert bad.exit_code == 2 and "stdin: line 2 has no tab" in bad.output
    good = runner.invoke(app, ["predict", str(PAIR_FIXTURE), "-", "--json"], input="good\tbad film\nfun\tok\n")
    assert good.exit_code == 0, good.output
    rows = [json.loads(line) for line in good.output.splitlines()]
    assert [(r["text"], r["text_pair"]) for r in rows] == [("good", "bad film"), ("fun", "ok")]


def test_blank_lines_on_stdin_are_kept_and_marked_so_the_answers_line_up(bundle):
    """Issue 43, item 2."""
    out = runner.invoke(app, ["predict", str(bundle), "-", "--json"], input="a superb film\n\nbad plot\n")
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert [r["text"] for r in rows] == ["a superb film", "", "bad plot"]
    assert [r.get("empty", False) for r in rows] == [False, True, False]


def test_predict_file_names_the_fix_for_a_comma_separated_tsv(bundle, tmp_path):
    """Issue 43, item 6: one reader, one message (distill's)."""
    data = tmp_path / "texts.tsv"
    data.write_text("sentence,label\na superb film,1\n")
    out = runner.invoke(app, ["predict", str(bundle), "--file", str(data)])
    assert out.exit_code == 2 and "give it a .csv extension" in out.output


def test_every_help_shows_the_defaults_written_in_its_help_texts():
    """Issue 43, item 10: rich read "[default: ...]" as markup and dropped it, leaving a sentence ending in " ."."""
    import re

    from click.testing import CliRunner as ClickRunner

    from edgekd.cli import command

    cli = command()  # what the `edgekd` entry point runs
    wide = ClickRunner(env={"COLUMNS": "400"})
    for name, sub in cli.commands.items():
        out = wide.invoke(cli, [name, "--help"])
        assert out.exit_code == 0, name
        text = " ".join(out.output.replace("│", " ").split())
        for param in sub.params:
            for written in re.findall(r"\[default: [^\]]*\]", (param.help or "").replace("\\[", "[")):
                assert " ".join(written.split()) in text, (name, param.name, written)
        assert not re.search(r"\w \.(\s|$)", text), (name, re.search(r".{40}\w \.(\s|$)", text))
    calibrate = wide.invoke(cli, ["calibrate", "--help"]).output
    assert "one of --max-drop and --latency-ms is required" in " ".join(calibrate.split())


def test_export_refuses_a_folder_that_is_not_a_run_and_a_bad_speed_before_any_work(tmp_path, monkeypatch):
    """Issue 43, item 8: both were refused only after unrelated work (a line about the dev set; the whole
    export, then "manifest is malformed")."""
    import edgekd.distill.export as export_module

    def must_not_run(*args, **kwargs):
        raise AssertionError("export_run ran")

    monkeypatch.setattr(export_module, "export_run", must_not_run)
    out = runner.invoke(app, ["export", str(tmp_path), "--out", str(tmp_path / "b")])
    assert out.exit_code == 2 and f"RUN_DIR {tmp_path} is not a run folder" in out.output
    assert "dev set" not in out.output
    out = runner.invoke(app, ["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")])
    assert out.exit_code == 2 and "no such folder" in out.output
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "student").mkdir()
    out = runner.invoke(app, ["export", str(tmp_path), "--out", str(tmp_path / "b"), "--speed", "2"])
    assert out.exit_code == 2 and "--speed 2: speed must lie in [0, 1]" in out.output


MULTI_FIXTURE = Path(__file__).resolve().parents[1] / "js" / "test" / "fixtures" / "multi"


def test_multi_label_thresholds_are_shown_and_can_be_overridden():
    """Issue 43, item 12: the thresholds were invisible and fixed; plain predict printed no probabilities."""
    from starlette.testclient import TestClient

    from edgekd.apps.serve import Server

    shown = runner.invoke(app, ["inspect", str(MULTI_FIXTURE)]).output
    assert "thresholds (0.5 for every label (no --data at export)): joy 0.50, anger 0.50, fear 0.50" in shown
    texts = ["good", "bad film", "the plot was very dull and the acting was awful", "fun"]
    plain = runner.invoke(app, ["predict", str(MULTI_FIXTURE), *texts, "--speed", "0"])
    assert plain.exit_code == 0, plain.output
    assert any(re.search(r"\b(joy|anger|fear) 0\.\d{3}", line) for line in plain.output.splitlines())
    low, high = ([json.loads(line)["labels"] for line in runner.invoke(
        app, ["predict", str(MULTI_FIXTURE), *texts, "--speed", "0", "--json", "--threshold", t]).output.splitlines()]
        for t in ("0.01", "0.99"))
    assert all(len(a) >= len(b) for a, b in zip(low, high)) and low != high
    with TestClient(Server(MULTI_FIXTURE, warmup=False).app) as client:
        info = client.get("/v1/model").json()
    assert info["text_pair"] is False and info["thresholds"] == {"joy": 0.5, "anger": 0.5, "fear": 0.5}


def test_inspect_profile_reports_kernels_and_time_by_group():
    """Issue 40, section 1."""
    fixture = Path(__file__).resolve().parents[1] / "js" / "test" / "fixtures" / "fp32"
    out = runner.invoke(app, ["inspect", str(fixture), "--profile"])
    assert out.exit_code == 0, out.output
    assert re.search(r"speed 0: [\d.]+ kernels per text \([\d.]+ per layer\)", out.output)
    assert "matrix products" in out.output and "GFLOP/s" in out.output
