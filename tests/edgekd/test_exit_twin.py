"""The one exit rule (runtime/exits.py) and its torch twin (edgekd/distill/evaluate.py) agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekd.distill.evaluate import apply_exit_rule
from edgekd.distill.evaluate import normalized_entropy as torch_entropy
from runtime.exits import SPEED_GRID, check_speed, decide, leaves, normalized_entropy


def test_torch_twin_equals_the_numpy_rule():
    rng = np.random.default_rng(0)
    for classes in (2, 3, 6):
        logits = (rng.normal(size=(4, 50, classes)) * rng.uniform(0.1, 8, size=(4, 50, 1))).astype(np.float32)
        np.testing.assert_allclose(torch_entropy(torch.from_numpy(logits)).numpy(), normalized_entropy(logits),
                                   atol=1e-6)
        for speed in SPEED_GRID + (1.0,):
            want_logits, want_layer, _ = decide(logits, speed)
            got_logits, got_layer = apply_exit_rule(torch.from_numpy(logits), speed)
            assert (got_layer.numpy() == want_layer).all()
            assert np.array_equal(got_logits.numpy(), want_logits)


def test_one_class_heads_have_no_uncertainty_on_both_sides():
    logits = np.array([[3.0], [-1.0]], dtype=np.float32)
    assert normalized_entropy(logits).tolist() == [0.0, 0.0]
    assert torch_entropy(torch.from_numpy(logits)).tolist() == [0.0, 0.0]


def test_decide_by_hand():
    # 2 layers x 3 rows: row 0 confident at layer 1, row 1 never, row 2 exactly uniform at layer 1
    exits = np.array([[[9.0, 0.0], [0.1, 0.0], [0.0, 0.0]],
                      [[0.0, 9.0], [0.0, 0.2], [5.0, 0.0]]], dtype=np.float32)
    logits, layer, unc = decide(exits, 0.5)
    assert layer.tolist() == [1, 2, 2]
    np.testing.assert_array_equal(logits, exits[[0, 1, 1], [0, 1, 2]])
    assert unc[0] < 0.5 and unc[1] > 0.5
    assert decide(exits, 0.0)[1].tolist() == [2, 2, 2], "speed 0 runs every layer"
    assert decide(exits, 1.0)[1].tolist() == [1, 1, 2], "u = 1 (uniform) never leaves, even at speed 1"
    assert leaves(np.array([0.9, 0.1]), 0.5, last=True).tolist() == [True, True]


def test_check_speed_types_and_range():
    assert check_speed(0) == 0.0 and check_speed(np.float32(0.5)) == 0.5
    for bad in ("0.3", None, True, [0.1]):
        with pytest.raises(TypeError):
            check_speed(bad)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            check_speed(bad)
