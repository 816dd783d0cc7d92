"""Timing helpers for choices made at export (graph fusion, int8 method): feeds of the layer
contract at fixed shapes, a plain CPU session, and a median over repeated runs."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from runtime.manifest import PART_INPUTS

TIMING_SHAPES = ((1, 24), (32, 24))  # (batch, tokens): a short text alone, and a serving batch


def layer_feeds(batch: int, tokens: int, hidden: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of one layer graph: random hidden states, a mask with padding in half the rows, all rows kept."""
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, tokens), np.int64)
    mask[batch // 2 :, tokens * 2 // 3 :] = 0
    return dict(zip(PART_INPUTS["layer"], (rng.standard_normal((batch, tokens, hidden)).astype(np.float32), mask,
                                           np.arange(batch, dtype=np.int64))))


def cpu_session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def median_ms(session: ort.InferenceSession, feeds: dict, repeats: int = 60) -> float:
    for _ in range(5):
        session.run(None, feeds)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - began)
    return 1e3 * statistics.median(times)
