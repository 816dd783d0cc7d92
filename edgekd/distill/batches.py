"""Training data on the torch side: texts tokenized once, padded batches, and the batch order of an
epoch as a pure function of (seed, epoch), so a resumed stage sees exactly the batches an
uninterrupted one would. (The file readers, torch-free, are in edgekd/data.py.)"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from edgekd.tokens import IGNORE
from runtime.exits import TOKENS
from runtime.tokenize import TextEncoder


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B,T)
    mask: torch.Tensor  # (B,T)
    labels: torch.Tensor | None  # (B,) class ids | (B,C) 0/1 (multi-label) | (B,) values (regression) | (B,T) tags
    index: torch.Tensor  # (B,) row numbers in the dataset
    targets: torch.Tensor | None = None  # (B,C) ((B,T,C) per token) soft / teacher targets when precomputed
    token_type_ids: torch.Tensor | None = None  # (B,T) segment ids of text pairs; None for single texts


def label_tensor(labels: list, problem: str = "single-label", num_labels: int = 0) -> torch.Tensor:
    """A dataset's labels as training wants them: class ids (N,) long; multi-label index lists as 0/1 rows
    (N, num_labels) float; regression values (N,) float. Unknown gold (transfer rows) stays -1 (a row of -1
    for multi-label) or NaN."""
    if problem == "regression":
        return torch.tensor([float("nan") if v is None else float(v) for v in labels], dtype=torch.float32)
    if problem == TOKENS:  # one tag id per token, padded (and unknown: None) with IGNORE
        width = max((len(row) for row in labels if row is not None), default=1)
        rows = torch.full((len(labels), width), IGNORE, dtype=torch.long)
        for i, row in enumerate(labels):
            if row is not None:
                rows[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return rows
    if problem == "multi-label":
        rows = torch.zeros(len(labels), num_labels)
        for i, chosen in enumerate(labels):
            if chosen is None:
                rows[i] = -1.0
            else:
                rows[i, list(chosen)] = 1.0
        return rows
    return torch.tensor([-1 if v is None else v for v in labels], dtype=torch.long)


class TokenizedData:
    """Texts (or text pairs) tokenized once; batches padded to their own longest row."""

    def __init__(self, encoder: TextEncoder, texts: list, labels: list | torch.Tensor | None = None,
                 targets: torch.Tensor | None = None, per_token: bool = False):
        self.encoder = encoder
        self.per_token = per_token  # labels (N,T) and targets (N,T,C) padded wider: cut to each batch's width
        self.ids, types = encoder.tokens(texts)
        self.pair = any(isinstance(t, tuple) for t in texts)
        self.types = types if self.pair else None
        self.lengths = torch.tensor([len(i) for i in self.ids])
        if labels is None or isinstance(labels, torch.Tensor):
            self.labels = labels
        else:
            self.labels = label_tensor(labels)
        self.targets = targets

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def width(self) -> int:
        """The longest row's tokens: what per-token outputs over the whole set are padded to."""
        return int(self.lengths.max()) if len(self.lengths) else 1

    def rule_mask(self, special_ids) -> torch.Tensor:
        """(N, width) bool: the tokens the token-classification exit rule reads (real, not special)."""
        out = torch.zeros(len(self), self.width, dtype=torch.bool)
        specials = torch.tensor(sorted(special_ids), dtype=torch.long)
        for i, row in enumerate(self.ids):
            ids = torch.tensor(row, dtype=torch.long)
            out[i, : len(row)] = ~torch.isin(ids, specials)
        return out

    def batch(self, index: torch.Tensor, device: torch.device) -> Batch:
        rows = index.tolist()
        padded = self.encoder.pad([self.ids[i] for i in rows], None if self.types is None else
                                  [self.types[i] for i in rows])
        labels = None if self.labels is None else self.labels[index].to(device)
        targets = None if self.targets is None else self.targets[index].to(device)
        ids, mask, *types = (torch.from_numpy(a).to(device) for a in padded)
        if self.per_token:
            labels = None if labels is None else fit_width(labels, ids.shape[1], IGNORE)
            targets = None if targets is None else fit_width(targets, ids.shape[1], 0.0)
        return Batch(ids, mask, labels, index, targets, types[0] if types else None)

    def step_rows(self, step: int, batch_size: int, seed: int) -> torch.Tensor:
        """Rows of global training step `step` (see epoch_batches); one epoch is cached."""
        per_epoch = max(1, math.ceil(len(self) / batch_size))
        epoch, position = divmod(step, per_epoch)
        key = (batch_size, seed, epoch)
        if getattr(self, "_epoch_key", None) != key:
            self._epoch = epoch_batches(epoch, self.lengths, batch_size, seed)
            self._epoch_key = key
        return self._epoch[position]

    def batches(self, batch_size: int, device: torch.device):
        """In order, for evaluation."""
        for start in range(0, len(self), batch_size):
            yield self.batch(torch.arange(start, min(start + batch_size, len(self))), device)


def fit_width(rows: torch.Tensor, width: int, fill) -> torch.Tensor:
    """Per-token rows (B,T,...) cut or padded with `fill` to `width` tokens."""
    if rows.shape[1] >= width:
        return rows[:, :width]
    pad = rows.new_full((rows.shape[0], width - rows.shape[1], *rows.shape[2:]), fill)
    return torch.cat([rows, pad], 1)


GROUP_BATCHES = 50  # length grouping window, in batches


def epoch_batches(epoch: int, lengths: torch.Tensor, batch_size: int, seed: int) -> list[torch.Tensor]:
    """The batches of one epoch, a pure function of (seed, epoch).

    Rows are shuffled, then sorted by length inside windows of GROUP_BATCHES
    batches so that each batch pads little; the batches are shuffled again.
    """
    rows = len(lengths)
    gen = torch.Generator().manual_seed(seed * 100003 + epoch)
    perm = torch.randperm(rows, generator=gen)
    window = batch_size * GROUP_BATCHES
    batches = []
    for start in range(0, rows, window):
        chunk = perm[start : start + window]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches += list(chunk.split(batch_size))
    order = torch.randperm(len(batches), generator=gen)
    return [batches[i] for i in order.tolist()]
