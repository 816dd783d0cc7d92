"""Two-teacher label refinement.

Teacher A (the fine-tuned teacher) scores every training row; rows whose score
reaches the threshold keep A's prediction as their target, the rest form the
failing set. Teacher B, another initialisation or architecture, is trained on
the failing set alone, and its predictions become the refined targets of those
rows. The student is then distilled on gold labels plus these targets.

Under random label noise the failing set is mostly the flipped rows, so a B
trained on it learns their wrong labels back (measured: benchmarks/results/
refine.md). `refine.b_data = "kept"` trains B on A's trusted rows instead and
lets it relabel the failing ones.
"""

from __future__ import annotations

import torch

SCORES = ("gold_prob", "margin", "ratio")


def score_rows(logits: torch.Tensor, labels: torch.Tensor, score: str = "gold_prob") -> torch.Tensor:
    """Per-row confidence in the gold label: (N,C), (N,) -> (N,).

    gold_prob: p(gold); margin: p(gold) - max p(other) (in [-1, 1]); ratio: p(gold) / max p
    (1 where A agrees with the given label, whatever its confidence: a teacher trained on noisy
    labels is calibrated to the noise, so its p(gold) rarely reaches 0.9)."""
    probs = logits.float().softmax(-1)
    gold = probs.gather(1, labels[:, None])[:, 0]
    if score == "gold_prob":
        return gold
    if score == "margin":
        other = probs.scatter(1, labels[:, None], -1.0).max(1).values
        return gold - other
    if score == "ratio":
        return gold / probs.max(1).values
    raise ValueError(f"unknown score {score!r}; use one of {', '.join(SCORES)}")


def split_rows(logits: torch.Tensor, labels: torch.Tensor, threshold: float, score: str = "gold_prob") -> torch.Tensor:
    """Bool (N,): True where teacher A keeps the row (score >= threshold); False = failing set."""
    return score_rows(logits, labels, score) >= threshold


def merge_targets(a_logits: torch.Tensor, b_logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """A's logits on kept rows, B's on the failing rows: (N,C), (F,C), (N,) -> (N,C).

    `b_logits` holds one row per failing row, in row order."""
    if int((~keep).sum()) != len(b_logits):
        raise ValueError(f"{len(b_logits)} refined rows for {int((~keep).sum())} failing rows")
    targets = a_logits.clone()
    targets[~keep] = b_logits.to(targets.dtype)
    return targets


def flip_labels(labels: list[int], num_labels: int, share: float, seed: int) -> list[int]:
    """Replace `share` of the labels by a different label, at random (for noise experiments)."""
    gen = torch.Generator().manual_seed(seed)
    n = len(labels)
    chosen = torch.randperm(n, generator=gen)[: round(share * n)]
    out = list(labels)
    for i in chosen.tolist():
        shift = int(torch.randint(1, num_labels, (1,), generator=gen))
        out[i] = (labels[i] + shift) % num_labels
    return out
