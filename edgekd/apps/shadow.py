"""`edgekd serve --shadow SHARE`: the server checks its own exits.

A sampled share of the answered texts is run again at full depth, after the answer is sent and off the request
path (a bounded queue; when it is full the sample is shed, and counted). Each checked text counts as a
disagreement when its early answer differs from full depth's (another class, another label set, a score moved
by more than the tolerance, other entities): disagreement bounds the promised loss from above, since an answer
that agrees with full depth was not made worse. Over a sliding window of checked texts, the exact upper
confidence bound on the disagreement rate is compared with the promised budget (the bundle's
`calibration.guarantee`, else `--shadow-budget`), once the window holds enough checks for the bound to mean
something (the rows that could keep the budget at that confidence): above it, the serving speed steps down one
grid step (logged, in `/v1/model` and the metrics); once a full window at the lowered speed stays under half
the budget, it steps back up toward the calibrated speed (hysteresis: a promise is broken quickly and trusted
again slowly)."""

from __future__ import annotations

import asyncio
import random
import sys
from collections import deque
from dataclasses import dataclass

from edgekd.guarantee import rows_needed, upper_bound
from runtime.exits import CALIBRATION_GRID

WINDOW = 400  # checked texts the bound is computed over
MIN_ROWS = 50  # checked texts in the window before the bound can lower the speed
QUEUE_TEXTS = 256  # texts waiting to be checked at most; beyond, samples are shed


@dataclass
class Decision:
    speed: float
    changed: str = ""  # "down" | "up" | ""


class ShadowMonitor:
    """The speed controller, pure: `record(disagree)` per checked text -> the serving speed to use now."""

    def __init__(self, calibrated: float, budget: float, confidence: float = 0.95, window: int = WINDOW,
                 min_rows: int = MIN_ROWS):
        self.calibrated, self.budget, self.confidence = calibrated, budget, confidence
        # a verdict needs the rows that could keep the budget at this confidence with none disagreeing (fewer
        # rows always "break" it), and returning needs three times that many at under half the budget
        self.min_rows = max(min_rows, rows_needed(budget, confidence))
        self.window = max(window, 3 * self.min_rows)
        self.speed = calibrated
        self.recent: deque[bool] = deque(maxlen=self.window)
        self.checked = self.disagreements = 0
        self.bound = 1.0  # the upper confidence bound on the disagreement rate over the window (1: no checks)

    def record(self, disagree: bool) -> Decision:
        self.checked += 1
        self.disagreements += bool(disagree)
        self.recent.append(bool(disagree))
        self.bound = upper_bound(sum(self.recent), len(self.recent), self.confidence)
        if len(self.recent) >= self.min_rows and self.speed > 0 and self.bound > self.budget:
            return self._move(_step(self.speed, -1), "down")  # the next verdict is on rows served at the new speed
        if len(self.recent) == self.window and self.speed < self.calibrated and self.bound < self.budget / 2:
            return self._move(min(self.calibrated, _step(self.speed, +1)), "up")
        return Decision(self.speed)

    def _move(self, speed: float, changed: str) -> Decision:
        self.speed = speed
        self.recent.clear()
        self.bound = 1.0
        return Decision(speed, changed)


def _step(speed: float, direction: int) -> float:
    """The next speed of the calibration grid below (-1) or above (+1) `speed`."""
    grid = sorted(CALIBRATION_GRID)
    if direction < 0:
        return max([s for s in grid if s < speed - 1e-9], default=0.0)
    return min([s for s in grid if s > speed + 1e-9], default=speed)


class Shadow:
    """The background checker: `offer(texts, answers, speed)` after a response; a worker runs the sample at full
    depth in a thread, compares, and moves the server's speed through the monitor."""

    def __init__(self, model, share: float, monitor: ShadowMonitor, metrics, on_speed, tolerance: float,
                 capacity: int = QUEUE_TEXTS, seed: int = 0):
        self.model, self.share, self.monitor, self.metrics = model, share, monitor, metrics
        self.on_speed, self.tolerance, self.capacity = on_speed, tolerance, capacity
        self.random = random.Random(seed)
        self.waiting = 0
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def offer(self, texts: list, answers: list, speed: float) -> None:
        """Sample `share` of the answered texts into the queue (never waits; a full queue sheds)."""
        if self._queue is None or speed <= 0:
            return  # full-depth answers have nothing to check
        picked = [(t, a) for t, a in zip(texts, answers) if self.random.random() < self.share]
        for text, answer in picked:
            if self.waiting >= self.capacity:
                self.metrics.shadow_shed.inc()
                continue
            self.waiting += 1
            self._queue.put_nowait((text, answer))

    def disagree(self, early, full) -> bool:
        if early.label is not None:
            return early.label != full.label
        if early.labels is not None:
            return set(early.labels) != set(full.labels)
        if early.entities is not None:  # token classification: other entities (type or span)
            return [(e["entity_group"], e["start"], e["end"]) for e in early.entities] != \
                [(e["entity_group"], e["start"], e["end"]) for e in full.entities]
        return abs(early.score - full.score) > self.tolerance

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await self._queue.get()
            batch = [item] + [self._queue.get_nowait() for _ in range(min(self._queue.qsize(), 31))]
            self.waiting -= len(batch)
            try:
                full = await loop.run_in_executor(None, lambda: self.model.classify([t for t, _ in batch],
                                                                                    speed=0.0))
            except Exception as exc:  # a failed check must not stop the server
                sys.stderr.write(f"edgekd serve: a shadow check failed: {exc}\n")
                continue
            for (_, early), answer in zip(batch, full):
                before, differs = self.monitor.speed, self.disagree(early, answer)
                decision = self.monitor.record(differs)
                self.metrics.shadow_checked.inc()
                if differs:
                    self.metrics.shadow_disagreements.inc()
                if decision.changed:
                    sys.stderr.write(f"edgekd serve: shadow checks: serving speed {before:g} -> {decision.speed:g} "
                                     f"({'the bound broke the budget' if decision.changed == 'down' else 'recovered'};"
                                     f" budget {100 * self.monitor.budget:g}%)\n")
                    self.on_speed(decision.speed)
            self.metrics.shadow_bound.set(self.monitor.bound)
