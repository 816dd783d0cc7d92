"""The runtime against the torch student it was exported from: numbers at full depth, exits by the entropy rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import runtime
from edgekd.distill.evaluate import apply_exit_rule
from runtime.tokenize import TextEncoder
from tests.conftest import TEXTS


def torch_exit_logits(student, encoder: TextEncoder, texts: list[str]) -> torch.Tensor:
    """Every exit's logits for each text, each text run alone (no padding): (L,N,C)."""
    per_text = []
    with torch.no_grad():
        for text in texts:
            ids, mask = encoder([text])
            out = student(torch.from_numpy(ids), torch.from_numpy(mask))
            per_text.append(torch.stack(out.exit_logits)[:, 0])
    return torch.stack(per_text, 1)


@pytest.fixture(scope="module")
def model(bundle):
    return runtime.load(bundle)


def test_speed_zero_matches_torch_trunk_on_padded_batches(model, student):
    ids, mask = model.encoder(TEXTS[:12])  # mixed lengths, right-padded
    assert (mask.sum(1) < mask.shape[1]).any(), "the batch must contain padding"
    logits, layers, _ = model.run_ids(ids, mask, speed=0.0)
    with torch.no_grad():
        want = student(torch.from_numpy(ids), torch.from_numpy(mask)).logits.numpy()
    assert np.abs(logits - want).max() < 1e-4
    assert (layers == student.config.num_layers).all()


@pytest.mark.parametrize("speed", [0.05, 0.2, 0.4, 0.6, 0.9])
def test_exits_follow_the_entropy_rule(model, student, speed):
    reference_logits, reference_layers = apply_exit_rule(torch_exit_logits(student, model.encoder, TEXTS), speed)
    results = model.classify(TEXTS, speed=speed, batch_size=8)
    assert [r.exit_layer for r in results] == reference_layers.tolist()
    assert [r.label for r in results] == [model.labels[i] for i in reference_logits.argmax(-1).tolist()]
    for r, logits in zip(results, reference_logits):
        p = torch.softmax(logits, -1)
        u = float(-(p * p.log()).sum() / math.log(len(p)))
        assert r.uncertainty == pytest.approx(u, abs=1e-4)
        assert r.exit_layer == model.num_layers or r.uncertainty < speed
