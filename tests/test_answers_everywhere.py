"""scripts/answers_everywhere.py: one bundle's answers from Python, plain onnxruntime, serve, Node and
Chromium compared row by row (the fixtures of each problem type)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scripts.answers_everywhere import compare, same

FIXTURES = Path(__file__).resolve().parents[1] / "js" / "test" / "fixtures"
ITEMS = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))["texts"][:10]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name,speed", [("multi", 0.7), ("regression", 0.5), ("fp32", 0.5), ("tokens", 0.4)])
def test_every_runtime_answers_as_python(name, speed):
    runtimes = ["python staged", "onnxruntime (model.onnx)", "serve (HTTP)"]
    if shutil.which("node") and (FIXTURES.parents[1] / "node_modules").is_dir():
        runtimes.append("node")
    report = compare(FIXTURES / name, ITEMS, speed, runtimes)
    assert report["passed"], report
    assert set(report["runtimes"]) == set(runtimes)


def test_a_moved_answer_is_caught():
    a = {"labels": ["joy"], "probs": {"joy": 0.9, "fear": 0.1}, "exit_layer": 2}
    assert same(a, dict(a))[0]
    assert not same(a, {**a, "labels": []})[0]
    assert not same(a, {**a, "exit_layer": 3})[0]
    assert not same({"score": 1.0, "exit_layer": 1}, {"score": 1.001, "exit_layer": 1})[0]
    entity = {"entity_group": "PER", "score": 0.9, "word": "Ann", "start": 0, "end": 3}
    b = {"entities": [entity], "exit_layer": 1}
    assert same(b, {"entities": [dict(entity)], "exit_layer": 1})[0]
    assert not same(b, {"entities": [{**entity, "end": 4}], "exit_layer": 1})[0]  # another span
    assert not same(b, {"entities": [{**entity, "entity_group": "ORG"}], "exit_layer": 1})[0]
    assert not same(b, {"entities": [{**entity, "score": 0.91}], "exit_layer": 1})[0]
    assert not same(b, {"entities": [], "exit_layer": 1})[0]
