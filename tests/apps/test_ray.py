"""Ray Data over 10k rows on a local Ray: the same answers as the single-process runtime."""

from __future__ import annotations

import pytest

import runtime
from tests.conftest import TEXTS

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'edgekd[ray]' (the dev extra has it)")

pytestmark = pytest.mark.slow


def test_classify_dataset_equals_the_runtime(bundle):
    from edgekd.ray import classify_dataset

    texts = [f"{TEXTS[i % len(TEXTS)]} {'really ' * (i % 5)}".strip() for i in range(10_000)]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)])
        rows = classify_dataset(ds, bundle, speed=0.5, actors=2).take_all()
    finally:
        ray.shutdown()
    assert len(rows) == 10_000
    rows.sort(key=lambda r: r["id"])
    want = runtime.load(bundle).classify(texts, speed=0.5)
    assert [r["label"] for r in rows] == [w.label for w in want]
    assert [int(r["exit_layer"]) for r in rows] == [w.exit_layer for w in want]
    assert max(abs(float(r["prob_positive"]) - w.probs["positive"]) for r, w in zip(rows, want)) < 1e-5
