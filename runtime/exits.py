"""The exit rule, in one place (numpy): what every consumer of exits calls.

After layer l a row's uncertainty is the normalized entropy of its exit head,
u = -sum(p log p) / log(C) in [0, 1]. The row leaves at the first layer with
u < speed; speed 0 runs every layer; the last layer always decides.

The staged runtime, the compiled graph's checks, calibration, evaluation and
the bench all use these functions; torch code converts to numpy at the
boundary (`edgekd.evaluate` has a torch twin that a test proves equal).
"""

from __future__ import annotations

import math

import numpy as np

from runtime.errors import InputError, InputTypeError

# Speeds that calibration tables, agreement checks and the bench sweep: 0.00 .. 0.95.
SPEED_GRID: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(20))
# The speeds tables and the bench report by default: a subset of the grid.
REPORT_SPEEDS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def normalized_entropy(logits: np.ndarray) -> np.ndarray:
    """u = -sum(p log p) / log(C) over the last axis, clipped to [0, 1]; (..., C) -> (...).

    A one-class head has no uncertainty: u = 0.
    """
    logits = np.asarray(logits)
    num_classes = logits.shape[-1]
    z = logits - logits.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    entropy = -(np.exp(log_p) * log_p).sum(axis=-1)
    if num_classes < 2:
        return np.zeros_like(entropy)
    return np.clip(entropy / math.log(num_classes), 0.0, 1.0)


def leaves(uncertainty: np.ndarray, speed: float, last: bool) -> np.ndarray:
    """Which rows leave after a layer: u < speed, or every row at the last layer."""
    if last:
        return np.ones(np.shape(uncertainty), dtype=bool)
    return np.asarray(uncertainty) < speed


def decide(exit_logits: np.ndarray, speed: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the rule to every exit head's logits at once.

    exit_logits (L, B, C) -> (logits (B, C) of the deciding layer, exit layer (B,)
    int64 1-based, uncertainty (B,) at that layer). A row's result depends only
    on its own logits, so this equals running the layers with exits.
    """
    exit_logits = np.asarray(exit_logits)
    unc = normalized_entropy(exit_logits)  # (L, B)
    leave = unc < speed
    leave[-1] = True
    first = leave.argmax(0)  # first layer that lets the row go
    rows = np.arange(exit_logits.shape[1])
    return exit_logits[first, rows], (first + 1).astype(np.int64), unc[first, rows]


def check_speed(speed: object) -> float:
    """A speed as a float in [0, 1]; TypeError for a non-number, ValueError out of range."""
    if isinstance(speed, bool) or not isinstance(speed, (int, float, np.floating, np.integer)):
        raise InputTypeError(f"speed must be a number in [0, 1], got {type(speed).__name__} {speed!r}")
    value = float(speed)
    if not 0.0 <= value <= 1.0:
        raise InputError(f"speed must lie in [0, 1] (0 runs every layer), got {value}")
    return value
