"""Task metrics and the early-exit rules in torch: the reference the runtime must match."""

from __future__ import annotations

import math

import torch

from edgekd.distill.batches import TokenizedData, fit_width
from edgekd.metrics import main_metric, task_scores
from runtime.exits import TOKENS, threshold_logits


def normalized_entropy(logits: torch.Tensor) -> torch.Tensor:
    """u = -sum(p log p) / log(C): (..., C) -> (...); the torch twin of `runtime.exits.normalized_entropy`
    (a test proves them equal), kept so training can stay on the device."""
    if logits.shape[-1] < 2:
        return torch.zeros(logits.shape[:-1], device=logits.device)
    log_p = torch.log_softmax(logits.float(), -1)
    return (-(log_p.exp() * log_p).sum(-1) / math.log(logits.shape[-1])).clamp(0.0, 1.0)


def binary_entropy(logits: torch.Tensor) -> torch.Tensor:
    """u = max_j H(sigmoid z_j) / log 2: (..., C) -> (...); the twin of `runtime.exits.binary_entropy`."""
    z = logits.double().abs()
    h = torch.nn.functional.softplus(-z) + z * torch.sigmoid(-z)
    return (h.max(-1).values / math.log(2.0)).clamp(0.0, 1.0).float()


def exit_uncertainty(exit_logits: torch.Tensor, problem: str = "single-label", scale: float = 1.0,
                     patience: int = 1, token_mask: torch.Tensor | None = None,
                     thresholds: list[float] | tuple[float, ...] | None = None) -> torch.Tensor:
    """u of every head: (L,B,C) -> (L,B), by the problem type's rule (the twin of `runtime.exits.ExitRule.trace`):
    normalized entropy; the largest binary entropy; regression's gap to the previous head over `scale` (1 at
    the first head), the largest of the last `patience` gaps; token classification (L,B,T,C): the largest
    normalized entropy over the tokens of `token_mask` (B,T); multi-label with `thresholds` (one per label): the
    rule at thresholds, each logit moved by logit(t) first."""
    if problem == TOKENS:
        if token_mask is None:
            raise ValueError("the token-classification exit rule needs the token mask")
        u = normalized_entropy(exit_logits) * token_mask.to(exit_logits.device)[None].float()
        return u.max(-1).values
    if problem == "multi-label":
        if thresholds is not None:
            shift = threshold_logits(thresholds, exit_logits.shape[-1])
            exit_logits = exit_logits.double() - torch.from_numpy(shift).to(exit_logits.device)
        return binary_entropy(exit_logits)
    if problem == "regression":
        values = exit_logits.float()
        gap = (values[1:] - values[:-1]).abs().max(-1).values / scale
        gap = torch.cat([torch.ones_like(values[:1, :, 0]), gap.clamp(max=1.0)])
        return torch.stack([gap[max(0, i - patience + 1):i + 1].max(0).values for i in range(len(gap))])
    return normalized_entropy(exit_logits)


def apply_exit_rule(exit_logits: torch.Tensor, speed: float, problem: str = "single-label", scale: float = 1.0,
                    patience: int = 1, token_mask: torch.Tensor | None = None,
                    thresholds: list[float] | tuple[float, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer by layer: a row leaves at the first layer with u < speed; the last always exits.

    exit_logits (L,B,C) ((L,B,T,C) and token_mask (B,T) per token) -> (logits (B,C) of the deciding layer, exit
    layer (B,) 1-based).
    """
    batch = exit_logits.shape[1]
    unc = exit_uncertainty(exit_logits, problem, scale, patience, token_mask, thresholds)  # (L,B)
    leave = unc < speed
    leave[-1] = True
    first = leave.float().argmax(0)  # (B,) first True
    return exit_logits[first, torch.arange(batch)], first + 1


@torch.no_grad()
def all_exit_logits(model, data: TokenizedData, device, batch_size: int = 64) -> torch.Tensor:
    """Every exit head's logits on every row: (L,N,C), on the CPU."""
    model.eval()
    chunks = []
    for batch in data.batches(batch_size, device):
        out = model(batch.input_ids, batch.mask, **segments(batch))
        logits = out.exit_logits if hasattr(out, "exit_logits") else [out.logits]
        chunks.append(torch.stack([_padded(x.float().cpu(), data.width) for x in logits]))
    return torch.cat(chunks, 1)


def _padded(logits: torch.Tensor, width: int) -> torch.Tensor:
    """Per-token outputs (B,T,C) padded with zeros to `width` tokens (the set's longest row), so batches of
    different widths stack; (B,C) outputs as they are."""
    return logits if logits.dim() < 3 else fit_width(logits, width, 0.0)


PROGRESS_FROM_ROWS = 2000  # a progress bar for logits over at least this many rows (minutes on 2 cores)


@torch.no_grad()
def classifier_logits(forward, data: TokenizedData, device, batch_size: int = 64, desc: str = "logits"
                      ) -> torch.Tensor:
    """Final logits of any classifier: `forward(input_ids, mask, token_type_ids) -> (B,C)` (token_type_ids None for
    single texts); returns (N,C) on the CPU. Many rows show a progress bar named `desc`."""
    from tqdm.auto import tqdm

    out = []
    with tqdm(total=len(data), desc=desc, unit="row", disable=len(data) < PROGRESS_FROM_ROWS, leave=False) as bar:
        for b in data.batches(batch_size, device):
            out.append(_padded(forward(b.input_ids, b.mask, b.token_type_ids).float().cpu(), data.width))
            bar.update(len(b.input_ids))
    return torch.cat(out)


def segments(batch) -> dict:
    """A student's keyword for a batch of text pairs (token_type_ids), none for single texts."""
    return {} if batch.token_type_ids is None else {"token_type_ids": batch.token_type_ids}


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(-1) == labels.cpu()).float().mean())


def scores(logits: torch.Tensor, labels: torch.Tensor, problem: str = "single-label",
           names: list[str] | None = None) -> dict[str, float]:
    """Every metric of the problem type (edgekd.metrics.task_scores) of (N,C) outputs against gold labels
    (token classification: (N,T,C) against (N,T) tag ids, scored by entity with the tag `names`)."""
    return task_scores(problem, logits.float().cpu().numpy(), labels.cpu().numpy(), names=names)


def main_score(logits: torch.Tensor, labels: torch.Tensor, problem: str = "single-label",
               names: list[str] | None = None) -> float:
    """The problem type's main metric: accuracy, micro-F1, Pearson, entity F1."""
    return scores(logits, labels, problem, names)[main_metric(problem)]


def exit_table(exit_logits: torch.Tensor, labels: torch.Tensor, speeds: list[float], problem: str = "single-label",
               scale: float = 1.0, patience: int = 1, names: list[str] | None = None,
               token_mask: torch.Tensor | None = None) -> list[dict[str, float]]:
    """The problem type's metrics and average layers at each speed, from recorded exit logits (L,N,C)."""
    rows = []
    layers = exit_logits.shape[0]
    for speed in speeds:
        logits, used = apply_exit_rule(exit_logits, speed, problem, scale, patience, token_mask)
        metrics = scores(logits, labels, problem, names)
        metrics.pop("f1", None)
        rows.append({"speed": speed, **metrics, "average_layers": float(used.float().mean()),
                     "layer_share": float(used.float().mean()) / layers})
    return rows
