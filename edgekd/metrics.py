"""Task metrics beside accuracy, torch-free (calibration and the bench run with torch blocked)."""

from __future__ import annotations

import numpy as np


def binary_f1(pred, gold, classes: int) -> float | None:
    """F1 of class 1, the positive class of a binary task (GLUE reports it for QQP and MRPC); None with more
    classes. `pred` and `gold` are class indices."""
    if classes != 2:
        return None
    pred, gold = np.asarray(pred), np.asarray(gold)
    tp = float(((pred == 1) & (gold == 1)).sum())
    return 2 * tp / max(float((pred == 1).sum() + (gold == 1).sum()), 1.0)
