"""serve --shadow: the server checks a sample of its exits at full depth off the request path, backs the speed
off when the disagreement bound breaks the budget, and returns with hysteresis."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgekd.apps.shadow import Shadow, ShadowMonitor

FIXTURE = Path(__file__).resolve().parents[2] / "js" / "test" / "fixtures" / "fp32"


def test_the_monitor_backs_off_within_a_bounded_number_of_checks_and_returns_slowly():
    monitor = ShadowMonitor(calibrated=0.5, budget=0.02, confidence=0.95)
    assert monitor.min_rows == 149 and monitor.window == 447  # 0.98 ** 149 < 0.05: rows that can keep 2%
    changes = [monitor.record(i % 3 == 0).changed for i in range(monitor.min_rows)]  # a third disagree
    assert changes[-1] == "down" and changes.count("down") == 1 and monitor.speed == 0.475
    for _ in range(monitor.window - 1):  # all agree: one window, not yet full
        assert monitor.record(False).changed == ""
    assert monitor.record(False).changed == "up" and monitor.speed == 0.5
    for _ in range(400):
        monitor.record(False)
    assert monitor.speed == 0.5  # never above the calibrated speed


def test_the_check_queue_is_bounded_and_sheds_what_does_not_fit():
    counted = SimpleNamespace(value=0)
    metrics = SimpleNamespace(shadow_shed=SimpleNamespace(inc=lambda: setattr(counted, "value", counted.value + 1)))

    async def offer_many():
        shadow = Shadow(model=None, share=1.0, monitor=ShadowMonitor(0.5, 0.02), metrics=metrics,
                        on_speed=lambda s: None, tolerance=0.1, capacity=3)
        shadow._queue = asyncio.Queue()  # no worker: nothing is taken off
        shadow.offer([f"t{i}" for i in range(10)], [None] * 10, 0.5)
        return shadow._queue.qsize()

    assert asyncio.run(offer_many()) == 3 and counted.value == 7


@pytest.mark.slow
def test_a_stream_that_shifts_makes_the_server_back_off_without_making_requests_wait():
    import runtime
    from edgekd.apps.serve import Server
    from edgekd.testing.fixtures import WORDS
    from starlette.testclient import TestClient

    model = runtime.load(FIXTURE)
    pool = [" ".join(p) for p in itertools.permutations(WORDS[:12], 2)]
    early, full = model.classify(pool, speed=0.9), model.classify(pool, speed=0.0)
    agree = [t for t, a, b in zip(pool, early, full) if a.label == b.label]
    differ = [t for t, a, b in zip(pool, early, full) if a.label != b.label]
    assert len(differ) >= 5 and len(agree) >= 50
    server = Server(FIXTURE, warmup=False, speed=0.9, shadow=1.0, shadow_budget=0.02)
    real = server.shadow.model

    class Slow:  # the full-depth checks are slow; the answers must not wait for them
        def classify(self, texts, speed):
            time.sleep(0.05)
            return real.classify(texts, speed=speed)

    server.shadow.model = Slow()
    with TestClient(server.app) as client:
        for text in agree[:50]:  # the first half: early exits agree with full depth
            began = time.perf_counter()
            assert client.post("/v1/classify", json={"texts": [text]}).status_code == 200
            assert time.perf_counter() - began < 0.05
        deadline = time.time() + 30
        while server.shadow.monitor.checked < 50 and time.time() < deadline:
            time.sleep(0.05)
        assert server.speed == 0.9 and server.shadow.monitor.checked == 50
        for text in (differ * 20)[:server.shadow.monitor.min_rows]:  # then the traffic shifts
            client.post("/v1/classify", json={"texts": [text]})
        bound = 50 + server.shadow.monitor.min_rows  # backed off within this many checks
        while server.shadow.monitor.checked < bound and time.time() < deadline:
            time.sleep(0.05)
        assert server.speed < 0.9
        info = client.get("/v1/model").json()
        assert info["serving_speed"] == server.speed and info["shadow"]["disagreements"] >= 50
        metrics = client.get("/metrics").text
        assert "edgekd_shadow_checked_total" in metrics and "edgekd_serving_speed" in metrics
        assert "edgekd_shadow_loss_upper_bound" in metrics and "edgekd_shadow_shed_total" in metrics
