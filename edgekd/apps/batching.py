"""Cross-request batching for `edgekd serve`, apart from the HTTP routes and metrics.

One worker task runs the model; a job that arrives while it is idle runs at once, jobs that
arrive while it is busy wait in the queue and go together into the next model call (up to
`max_batch` texts), so batched early exit works across users while each row still exits on
its own. The model call runs in a thread so the event loop keeps accepting requests.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class _Job:
    texts: list[str]
    speed: float
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


class BatchQueue:
    """`await submit(texts, speed)` -> that job's predictions, computed together with whatever else waits.

    `classify(texts, speed)` is the model call (blocking; run in the default executor);
    `on_batch(n)` and `on_waiting(n)` report batch sizes and the queue depth to the caller's metrics."""

    def __init__(self, classify: Callable[[list[str], float], list], max_batch: int,
                 on_batch: Callable[[int], None] = lambda n: None, on_waiting: Callable[[int], None] = lambda n: None):
        self.classify = classify
        self.max_batch = max_batch
        self.on_batch = on_batch
        self.on_waiting = on_waiting
        self.waiting = 0  # texts accepted and not yet answered
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Answer every job already accepted, then stop the worker."""
        await self._queue.join()
        self._worker.cancel()

    async def submit(self, texts: list[str], speed: float) -> list:
        job = _Job(texts, speed, asyncio.get_running_loop().create_future())
        self._set_waiting(self.waiting + len(texts))
        await self._queue.put(job)
        return await job.future

    def _set_waiting(self, value: int) -> None:
        self.waiting = value
        self.on_waiting(value)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            jobs, texts = [first], len(first.texts)
            while not self._queue.empty() and texts < self.max_batch:
                job = self._queue.get_nowait()
                jobs.append(job)
                texts += len(job.texts)
            try:
                results = await loop.run_in_executor(None, self._classify_jobs, jobs)
                for job, result in zip(jobs, results):
                    if not job.future.done():
                        job.future.set_result(result)
            except Exception as exc:  # the model failed: every waiting request hears why
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
            finally:
                self._set_waiting(self.waiting - texts)
                for _ in jobs:
                    self._queue.task_done()

    def _classify_jobs(self, jobs: list[_Job]) -> list[list]:
        """One model call per speed among the gathered jobs (usually one); rows exit on their own."""
        out: list[list | None] = [None] * len(jobs)
        for speed in {job.speed for job in jobs}:
            group = [i for i, job in enumerate(jobs) if job.speed == speed]
            texts = [t for i in group for t in jobs[i].texts]
            self.on_batch(len(texts))
            results = self.classify(texts, speed)
            start = 0
            for i in group:
                out[i] = results[start : start + len(jobs[i].texts)]
                start += len(jobs[i].texts)
        return out  # type: ignore[return-value]
