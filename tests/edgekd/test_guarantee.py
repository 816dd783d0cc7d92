"""The calibrated speed with a promise (edgekd/guarantee.py, calibrate --confidence): Learn-then-Test keeps its
promise over many draws, refuses what a point estimate would take on few rows, and is recorded in the manifest."""

from __future__ import annotations

import numpy as np
import pytest

from edgekd.guarantee import binomial_cdf, fixed_sequence, upper_bound


def test_the_binomial_tail_and_bound_are_exact_on_small_cases():
    assert binomial_cdf(0, 3, 0.5) == pytest.approx(0.125) and binomial_cdf(1, 3, 0.5) == pytest.approx(0.5)
    assert binomial_cdf(3, 3, 0.2) == 1.0 and upper_bound(0, 20, 0.95) == pytest.approx(1 - 0.05 ** (1 / 20), 1e-6)


def test_few_rows_refuse_what_a_point_estimate_would_take():
    # 20 rows, none made worse at any speed: the point estimate says risk 0 everywhere; the bound cannot say
    # "at most 5%" with 95% confidence (0.95 ** 20 = 0.36 > 0.05)
    assert fixed_sequence([0, 0, 0], 20, 0.05, 0.05) == 0
    assert fixed_sequence([0, 0, 0], 100, 0.05, 0.05) == 3  # 0.95 ** 100 = 0.006: enough rows
    assert fixed_sequence([0, 9, 0], 100, 0.05, 0.05) == 1  # the sequence stops at the first failure


@pytest.mark.slow
def test_the_promise_holds_at_least_as_often_as_promised_over_many_draws():
    """Speeds with known, increasing risks; rows drawn afresh each time; the chosen speed's true risk exceeds the
    budget in at most 1 - confidence of the draws (with Monte Carlo slack)."""
    rng = np.random.default_rng(0)
    risks = np.linspace(0.0, 0.12, 13)  # speed j loses a row with probability risks[j] (nested: monotone)
    budget, confidence, rows, draws = 0.05, 0.9, 400, 2000
    broken = 0
    chosen_risks = []
    for _ in range(draws):
        u = rng.random(rows)
        counts = [int((u < r).sum()) for r in risks[1:]]
        passed = fixed_sequence(counts, rows, budget, 1 - confidence)
        risk = risks[passed]  # passed == 0 keeps speed 0 (risk 0)
        chosen_risks.append(risk)
        broken += risk > budget
    assert broken / draws <= (1 - confidence) + 0.02
    assert np.mean(chosen_risks) > 0.02  # it does take speed: not a procedure that never leaves speed 0


def test_calibrate_with_confidence_records_the_promise(bundle_copy, tmp_path):
    from typer.testing import CliRunner

    import runtime
    from edgekd.cli import app
    from tests.conftest import TEXTS

    data = tmp_path / "dev.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\t{'positive' if i % 3 else 'negative'}\n"
                                                  for i, t in enumerate(TEXTS)))
    out = CliRunner().invoke(app, ["calibrate", str(bundle_copy), "--data", str(data), "--max-drop", "5",
                                   "--confidence", "0.9"])
    assert out.exit_code == 0, out.output
    manifest = runtime.read_manifest(bundle_copy)
    g = manifest.calibration.guarantee
    assert g["budget"] == 0.05 and g["confidence"] == 0.9 and g["rows"] == len(TEXTS)
    assert g["speed"] == manifest.default_speed and 0 <= g["bound"] <= 1 and "Learn-then-Test" in g["method"]
    assert "guarantee" in manifest.calibration.rule
    if g["speed"] == 0:  # 36 rows are too few for 5% at 90% unless ... : it says so and keeps speed 0
        assert "speed 0 is kept" in out.output
    bad = CliRunner().invoke(app, ["calibrate", str(bundle_copy), "--data", str(data), "--latency-ms", "5",
                                   "--confidence", "0.9"])
    assert bad.exit_code == 2 and "--confidence" in bad.output


@pytest.mark.slow
def test_the_halving_study_writes_its_entry(tmp_path):
    """benchmarks/guarantee.py: the coverage and cost of the guarantee over random halvings of a labelled file."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import TEXTS

    root = Path(__file__).resolve().parents[2]
    data = tmp_path / "dev.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{t} {i}\t{'positive' if i % 3 else 'negative'}\n"
                                                  for i, t in enumerate(TEXTS * 8)))
    out = tmp_path / "guarantee.json"
    for task in ("a", "b", "a"):  # an entry per task, replaced when measured again
        run = subprocess.run([sys.executable, str(root / "benchmarks" / "guarantee.py"),
                              str(root / "js" / "test" / "fixtures" / "fp32"), "--data", str(data), "--task", task,
                              "--out", str(out), "--halvings", "20", "--max-drop", "10", "--confidence", "0.9"],
                             capture_output=True, text=True, cwd=root)
        assert run.returncode == 0, run.stderr[-2000:]
    tasks = json.loads(out.read_text())["tasks"]
    assert [t["task"] for t in tasks] == ["b", "a"]
    entry = tasks[1]
    assert entry["halvings"] == 20 and 0 <= entry["held_rate"] <= 1 and 1 <= entry["layers"] <= 3
    assert set(entry) >= {"task", "confidence", "max_drop", "halvings", "held_rate", "speed", "layers", "point_speed",
                          "point_layers"}
    assert entry["speed"] <= entry["point_speed"]  # the guarantee never takes a faster speed than the point estimate
