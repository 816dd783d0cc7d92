"""scripts/arm64_check.sh: the fixture bundles (fp32 and int8) answer the same on emulated ARM64 CPUs as here.

Slow: the first run builds an ARM64 Debian root and fetches aarch64 wheels (cached in ~/.cache/edgekd);
skips, saying why, where qemu-user-static cannot be installed (exit 3 of the script)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "js" / "test" / "fixtures"

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["fp32", "int8"])
def test_fixture_bundles_answer_the_same_on_arm64(name, tmp_path):
    report = tmp_path / "report.json"
    out = subprocess.run(["bash", "scripts/arm64_check.sh", str(FIXTURES / name), "", str(report)], cwd=ROOT,
                         capture_output=True, text=True, timeout=1200)
    if out.returncode == 3:
        pytest.skip(f"no ARM64 emulator here: {out.stderr.strip().splitlines()[-1]}")
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    reports = json.loads(report.read_text())
    assert [r["arm64"]["cpu"] for r in reports] == ["neoverse-n1", "cortex-a76"]
    for r in reports:
        assert r["arm64"]["machine"] == "aarch64" and r["passed"]
        engines = {row["engine"] for row in r["rows"]}
        assert engines == {"graph", "staged", "onnxruntime"}
        for row in r["rows"]:
            if name == "fp32":
                assert row["answer_agreement"] == 1.0 and row["exit_agreement"] == 1.0 and row["max_prob_diff"] <= 1e-4
            else:
                assert row["answer_agreement"] >= 0.99 and row["exit_agreement"] >= 0.98


def test_the_compare_step_fails_when_answers_move(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT))
    from scripts.arm64_compare import compare

    x86 = {"precision": "fp32", "problem": "single-label", "machine": "x86_64", "onnxruntime": "1", "numpy": "2",
           "engines": {"graph": {"0": {"logits": [[1.0, 0.0], [0.0, 1.0]], "exit_layer": [2, 2]}}}}
    arm = json.loads(json.dumps(x86))
    arm["machine"] = "aarch64"
    assert compare(x86, arm)["passed"]
    arm["engines"]["graph"]["0"]["logits"][1] = [1.0, 0.0]
    result = compare(x86, arm)
    assert not result["passed"] and "answers differ on 1 rows" in result["failures"][0]
