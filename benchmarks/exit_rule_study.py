"""What the exit-rule studies share (regression_exit_rules.py, multi_label_rules.py): every rule's uncertainty on
one trace of the exit heads, the layer each text would leave at for each speed of a grid, the task's score there,
and the fewest average layers within a budget of the full-depth score."""

from __future__ import annotations

from typing import Callable

import numpy as np

GRID = [round(0.025 * i, 3) for i in range(41)]  # 0 .. 1


def decide(outputs: np.ndarray, u: np.ndarray, speed: float) -> tuple[np.ndarray, np.ndarray]:
    """(output of the deciding head for each text, exit layer (N,) 1-based) from outputs (L, N, ...) and u (L, N):
    the first layer with u < speed, else the last."""
    from runtime.exits import first_exit

    first = first_exit(u, speed)
    return outputs[first, np.arange(outputs.shape[1])], first + 1


def compare(outputs: np.ndarray, rules: dict[str, np.ndarray], score: Callable[[np.ndarray], float], metric: str,
            max_drop: float) -> dict:
    """Each rule's curve over GRID ({"speed", metric, "average_layers"}), its point with the fewest average layers
    within `max_drop` points of full depth, and the rules ranked by it (fewest layers first)."""
    full = score(outputs[-1])
    found = {}
    for name, u in rules.items():
        curve = []
        for speed in GRID:
            got, layers = decide(outputs, u, speed)
            curve.append({"speed": speed, metric: score(got), "average_layers": float(layers.mean())})
        ok = [p for p in curve if full - p[metric] <= max_drop + 1e-9]
        found[name] = {"within_budget": min(ok, key=lambda p: p["average_layers"]), "curve": curve}
    ranking = sorted(found, key=lambda n: found[n]["within_budget"]["average_layers"])
    return {f"full_depth_{metric}": full, "layers": int(outputs.shape[0]), "max_drop_points": max_drop,
            "ranking": ranking, "rules": found}
