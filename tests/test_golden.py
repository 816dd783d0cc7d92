"""A fresh tiny run equals the golden one (tests/golden/make_golden.py says how it was made)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.golden.make_golden import GOLDEN, golden_run


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    return golden_run(tmp_path_factory.mktemp("golden"))


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_first_losses_of_every_stage(fresh, golden):
    assert set(fresh["first_losses"]) == set(golden["first_losses"]) >= {"teacher", "attention", "refine", "baseline",
                                                                        "finetune", "branches"}
    for stage, losses in golden["first_losses"].items():
        assert len(losses) == 3, stage
        np.testing.assert_allclose(fresh["first_losses"][stage], losses, rtol=1e-5, err_msg=stage)


def test_dev_metrics_after_every_stage(fresh, golden):
    assert fresh["dev"].keys() == golden["dev"].keys()
    for stage, want in golden["dev"].items():
        got = fresh["dev"][stage]
        assert abs(got["dev_accuracy"] - want["dev_accuracy"]) <= 1e-6, stage
        got_by_speed = {row["speed"]: row for row in got["exits"] or []}
        common = [w for w in want["exits"] or [] if w["speed"] in got_by_speed]
        assert len(common) >= 3 or not want["exits"], stage
        for w in common:
            g = got_by_speed[w["speed"]]
            assert all(abs(g[k] - w[k]) <= 1e-6 for k in w), (stage, w)


def test_bundle_answers(fresh, golden):
    for speed, want in golden["answers"].items():
        got = fresh["answers"][speed]
        assert [(g["label"], g["exit_layer"]) for g in got] == [(w["label"], w["exit_layer"]) for w in want], speed
        worst = max(abs(g["probs"][k] - w["probs"][k]) for g, w in zip(got, want) for k in w["probs"])
        assert worst <= 1e-6, (speed, worst)
