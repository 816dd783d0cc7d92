"""Calibration: simulated speeds equal the runtime's decisions; the rule picks as documented."""

from __future__ import annotations

import numpy as np
import pytest

import runtime
from edgekd.calibrate import GRID, calibrate
from edgekd.data import read_labelled
from runtime.errors import EdgeKDError
from runtime.manifest import read_manifest


def test_simulated_points_equal_real_runs(bundle_copy, tiny_data):
    result = calibrate(bundle_copy, tiny_data["dev"], max_drop=1.0, latency_texts=8)
    model = runtime.load(bundle_copy)
    dev = read_labelled(tiny_data["dev"], label_names=model.labels)
    for point in result.points[::4]:
        got = model.classify(dev.texts, speed=point.speed)
        acc = np.mean([model.labels.index(r.label) == y for r, y in zip(got, dev.labels)])
        assert point.accuracy == pytest.approx(acc)
        assert point.average_layers == pytest.approx(np.mean([r.exit_layer for r in got]))
    assert [p.speed for p in result.points] == GRID
    latencies = [p.latency_ms for p in result.points]
    assert all(lat > 0 for lat in latencies)
    layers = [p.average_layers for p in result.points]
    assert layers == sorted(layers, reverse=True), "more speed never runs more layers"


def test_max_drop_rule_and_manifest_update(bundle_copy, tiny_data):
    result = calibrate(bundle_copy, tiny_data["dev"], max_drop=2.0, latency_texts=8)
    chosen = next(p for p in result.points if p.speed == result.chosen)
    assert 100 * (result.full_accuracy - chosen.accuracy) <= 2.0 + 1e-9
    for p in result.points:
        if p.speed > result.chosen:
            assert 100 * (result.full_accuracy - p.accuracy) > 2.0
    manifest = read_manifest(bundle_copy)
    assert manifest.default_speed == result.chosen
    assert manifest.calibration.rule == "max_drop=2 points" and len(manifest.calibration.points) == len(GRID)
    runtime.load(bundle_copy)  # still verifies: graphs untouched


def test_latency_rule(bundle_copy, tiny_data, monkeypatch):
    # fixed stage times (0.1 ms front, 1 ms a layer) so the test does not depend on this machine's noise
    monkeypatch.setattr(runtime.EdgeModel, "stage_times", lambda self, texts, repeats=3: (1e-4, np.full(3, 1e-3)))
    probe = calibrate(bundle_copy, tiny_data["dev"], max_drop=100.0, latency_texts=48, write=False)
    for p in probe.points:  # latency = front + the layers each sampled text runs
        assert p.latency_ms == pytest.approx(0.1 + p.average_layers)
    budget = float(np.median([p.latency_ms for p in probe.points]))
    result = calibrate(bundle_copy, tiny_data["dev"], latency_ms=budget, latency_texts=48)
    chosen = next(p for p in result.points if p.speed == result.chosen)
    # the rule: the most accurate speed whose latency fits the budget; every more accurate speed missed it
    fits = [p for p in result.points if p.latency_ms <= budget]
    assert 0 < len(fits) < len(result.points), "the budget must rule some speeds out for this test to mean anything"
    assert chosen in fits and chosen.accuracy == max(p.accuracy for p in fits)
    assert all(p.latency_ms > budget for p in result.points if p.accuracy > chosen.accuracy)
    with pytest.raises(EdgeKDError, match="no speed meets"):
        calibrate(bundle_copy, tiny_data["dev"], latency_ms=0.05, latency_texts=4)


def test_needs_exactly_one_budget(bundle_copy, tiny_data):
    with pytest.raises(EdgeKDError, match="exactly one"):
        calibrate(bundle_copy, tiny_data["dev"])
    with pytest.raises(EdgeKDError, match="exactly one"):
        calibrate(bundle_copy, tiny_data["dev"], max_drop=1, latency_ms=3)
