"""The JavaScript runtime's committed fixtures still hold what the Python runtime answers.

Node (js/test/parity.test.js) and the browser compare against js/test/fixtures/expected.json;
this test compares the same file against Python, so the two runtimes cannot drift apart.
Regenerate with `python scripts/make_js_fixtures.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import runtime

FIXTURES = Path(__file__).resolve().parents[2] / "js" / "test" / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(EXPECTED["bundles"]))
@pytest.mark.parametrize("engine", ["graph", "staged"])
def test_committed_expectations_match_the_python_runtime(name, engine):
    want = EXPECTED["bundles"][name]
    model = runtime.load(FIXTURES / name, engine=engine)
    items = [tuple(p) for p in want["pairs"]] if "pairs" in want else EXPECTED["texts"]
    ids, types = model.encoder.tokens(items)
    assert ids == want["ids"] and ("types" not in want or types == want["types"])
    for case in want["cases"]:
        got = model.classify(items, speed=case["speed"], words=model.problem == "token-classification")
        for text, g, w in zip(items, got, case["results"]):
            if g.entities is not None:  # token classification: the same words, tags and entities
                assert [(x["word"], x["start"], x["end"], x["tag"]) for x in g.words] == \
                    [(x["word"], x["start"], x["end"], x["tag"]) for x in w["words"]], (name, case["speed"], text)
                assert [(e["entity_group"], e["start"], e["end"]) for e in g.entities] == \
                    [(e["entity_group"], e["start"], e["end"]) for e in w["entities"]]
                assert [e["score"] for e in g.entities] == pytest.approx([e["score"] for e in w["entities"]],
                                                                         abs=1e-5)
            assert (g.label, g.labels, g.exit_layer) == (w.get("label"), w.get("labels"), w["exitLayer"]), \
                (name, case["speed"], text)
            if g.score is not None:
                assert abs(g.score - w["score"]) < 1e-5
            if g.probs is not None:
                assert all(abs(g.probs[k] - w["probs"][k]) < 1e-5 for k in model.labels)


def test_fixture_bundles_stay_small():
    for name in EXPECTED["bundles"]:
        size = sum(p.stat().st_size for p in (FIXTURES / name).iterdir())
        assert size < 1_000_000, f"{name} fixture is {size} bytes"
