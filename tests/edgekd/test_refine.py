"""Two-teacher refinement: the split, the merge, and the stage in the pipeline."""

from __future__ import annotations

import json

import pytest
import torch

from edgekd.distill.pipeline import distill
from edgekd.distill.refine import flip_labels, merge_targets, score_rows, split_rows
from tests.conftest import tiny_config


def test_scores_and_split():
    logits = torch.log(torch.tensor([[0.95, 0.05], [0.6, 0.4], [0.2, 0.8], [0.05, 0.95]]))
    labels = torch.tensor([0, 0, 0, 1])
    assert score_rows(logits, labels).tolist() == pytest.approx([0.95, 0.6, 0.2, 0.95])
    assert score_rows(logits, labels, "margin").tolist() == pytest.approx([0.9, 0.2, -0.6, 0.9])
    assert score_rows(logits, labels, "ratio").tolist() == pytest.approx([1.0, 1.0, 0.25, 1.0])
    assert split_rows(logits, labels, 0.9, "ratio").tolist() == [True, True, False, True]
    assert split_rows(logits, labels, 0.9).tolist() == [True, False, False, True]
    assert split_rows(logits, labels, 0.5, "margin").tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="unknown score"):
        score_rows(logits, labels, "entropy")


def test_merge_replaces_exactly_the_failing_rows():
    a = torch.arange(10.0).view(5, 2)
    keep = torch.tensor([True, False, True, False, True])
    b = torch.tensor([[-1.0, -2.0], [-3.0, -4.0]])
    merged = merge_targets(a, b, keep)
    assert merged[keep].tolist() == a[keep].tolist()
    assert merged[~keep].tolist() == b.tolist()
    assert torch.equal(a, torch.arange(10.0).view(5, 2)), "inputs untouched"
    with pytest.raises(ValueError, match="refined rows"):
        merge_targets(a, b[:1], keep)


def test_flip_labels_changes_the_asked_share():
    labels = [i % 3 for i in range(1000)]
    noisy = flip_labels(labels, 3, 0.2, seed=0)
    changed = sum(a != b for a, b in zip(labels, noisy))
    assert changed == 200 and all(0 <= y < 3 for y in noisy)
    assert noisy == flip_labels(labels, 3, 0.2, seed=0)


@pytest.mark.parametrize("b_data", ["failing", pytest.param("kept", marks=pytest.mark.slow)])  # fast tier: one
def test_refine_stage_feeds_finetune(tiny_teacher_dir, tiny_data, tmp_path, b_data):
    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "run", stages=["teacher", "refine", "finetune"],
                      refine={"threshold": 0.5, "b_data": b_data}, data={"label_noise": 0.2})
    run = distill(cfg, log=lambda _: None)
    m = json.loads((run / "metrics.json").read_text())["refine"]
    assert m["kept"] + m["failing"] == 160 and m["failing"] > 0 and m["kept"] > 0
    teacher = torch.load(run / "teacher_logits.pt", weights_only=True)
    refined = torch.load(run / "refined_logits.pt", weights_only=True)
    changed = (teacher != refined).any(1)
    assert int(changed.sum()) == m["failing"], "exactly the failing rows get teacher B's targets"
    # teacher B really trained on the asked rows: the failing ones, or the kept ones
    assert m["b_rows"] == (m["failing"] if b_data == "failing" else m["kept"])
