"""Task metrics beside accuracy, torch-free (calibration and the bench run with torch blocked)."""

from __future__ import annotations

import numpy as np

from runtime.entities import entity_spans, split_tag
from runtime.exits import TOKENS, sigmoid
from runtime.task import METRICS


def binary_f1(pred, gold, classes: int) -> float | None:
    """F1 of class 1, the positive class of a binary task (GLUE reports it for QQP and MRPC); None with more
    classes. `pred` and `gold` are class indices."""
    if classes != 2:
        return None
    pred, gold = np.asarray(pred), np.asarray(gold)
    tp = float(((pred == 1) & (gold == 1)).sum())
    return 2 * tp / max(float((pred == 1).sum() + (gold == 1).sum()), 1.0)


# METRICS: the metrics of each problem type, the first the main one (calibration's --max-drop, the bench's ratios,
# "best checkpoint" during training); written once, in the task record's module


def main_metric(problem: str) -> str:
    return METRICS[problem][0]


def multi_label_f1(pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Micro and macro F1 of (N, C) 0/1 predictions against (N, C) 0/1 gold. A label with no gold and no
    predicted positive counts as F1 1 in the macro mean (nothing to find, nothing found wrongly)."""
    pred, gold = np.asarray(pred).astype(bool), np.asarray(gold).astype(bool)
    tp = (pred & gold).sum(0).astype(float)
    predicted, actual = pred.sum(0).astype(float), gold.sum(0).astype(float)
    micro = 2 * tp.sum() / max(predicted.sum() + actual.sum(), 1.0)
    per_label = np.where(predicted + actual > 0, 2 * tp / np.maximum(predicted + actual, 1.0), 1.0)
    return {"micro_f1": float(micro), "macro_f1": float(per_label.mean())}


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), as Spearman's correlation wants."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=float)
    sorted_x = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], len(x)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end - 1) / 2.0
    return ranks


def pearson(a, b) -> float:
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def spearman(a, b) -> float:
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    return pearson(_ranks(a), _ranks(b))


def label_sets(logits: np.ndarray, thresholds) -> np.ndarray:
    """Multi-label decisions: sigmoid(logit) >= threshold (one number, or one per label); (N, C) -> (N, C) bool."""
    return sigmoid(logits) >= np.asarray(thresholds, dtype=float)


def strict_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """The entities of a tag sequence read strictly (seqeval's mode="strict" with IOB2): an entity is a B-X and
    the I-X that follow it; an I- that continues nothing of its type starts no entity."""
    out: list[tuple[str, int, int]] = []
    open_kind = None
    for i, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        if prefix == "B":
            out.append((kind, i, i + 1))
        elif prefix == "I" and kind == open_kind:
            out[-1] = (kind, out[-1][1], i + 1)
        open_kind = kind if prefix == "B" or (prefix == "I" and kind == open_kind) else None
    return out


def entity_f1(predicted: list[list[str]], gold: list[list[str]]) -> dict[str, float]:
    """Entity-level micro precision, recall and F1 of tag sequences (one list per sentence) against gold: an
    entity counts when its type and both ends match (runtime.entities.entity_spans: seqeval's default reading
    of BIO, the one the runtime's answers repair to); `entity_f1_strict` reads both sides with `strict_spans`."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predicted sentences against {len(gold)} gold ones")
    counts = np.zeros((2, 3))  # (lenient, strict) x (found, wanted, right)
    for p, g in zip(predicted, gold):
        if len(p) != len(g):
            raise ValueError(f"a sentence of {len(g)} gold tags has {len(p)} predicted ones")
        for row, spans in enumerate((entity_spans, strict_spans)):
            ps, gs = set(spans(p)), set(spans(g))
            counts[row] += (len(ps), len(gs), len(ps & gs))
    (found, wanted, right), (s_found, s_wanted, s_right) = counts
    precision, recall = right / max(found, 1), right / max(wanted, 1)
    return {"entity_f1": 2 * right / max(found + wanted, 1), "entity_precision": precision, "entity_recall": recall,
            "entity_f1_strict": 2 * s_right / max(s_found + s_wanted, 1)}


def word_tags(logits: np.ndarray, gold: np.ndarray, names: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    """Token classification: (predicted, gold) tags of every sentence's words, read where gold holds a tag (a
    word's first sub-token; IGNORE elsewhere). logits (N, T, C), gold (N, T) -> two lists of N tag lists."""
    predicted, wanted = [], []
    for row_logits, row_gold in zip(np.asarray(logits), np.asarray(gold)):
        where = row_gold[: len(row_logits)] >= 0
        predicted.append([names[i] for i in row_logits[where].argmax(-1)])
        wanted.append([names[i] for i in row_gold[: len(row_logits)][where]])
    return predicted, wanted


def task_scores(problem: str, logits, gold, thresholds=0.5, names: list[str] | None = None) -> dict[str, float]:
    """Every metric of `problem` for the deciding heads' outputs (N, C) against gold: class indices (N,),
    0/1 rows (N, C), or values (N,). Single-label adds the positive class's F1 on binary tasks. Token
    classification: outputs (N, T, C) against tag ids (N, T) (IGNORE where no word starts), scored by entity
    with the tag `names`."""
    logits, gold = np.asarray(logits), np.asarray(gold)
    if problem == TOKENS:
        if names is None:
            raise ValueError("token classification is scored by entity: give the tag names")
        return entity_f1(*word_tags(logits, gold, names))
    if problem == "multi-label":
        return multi_label_f1(label_sets(logits, thresholds), gold)
    if problem == "regression":
        values = logits.reshape(len(logits), -1)[:, 0]
        return {"pearson": pearson(values, gold), "spearman": spearman(values, gold)}
    pred = logits.argmax(-1)
    f1 = binary_f1(pred, gold, logits.shape[-1])
    return {"accuracy": float((pred == gold).mean()), **({} if f1 is None else {"f1": f1})}


def gold_array(labels: list, problem: str, num_labels: int) -> np.ndarray:
    """A dataset's labels for `task_scores`: class ids (N,); multi-label index lists as 0/1 rows (N, C);
    regression values (N,)."""
    if problem == "multi-label":
        rows = np.zeros((len(labels), num_labels), dtype=np.int8)
        for i, chosen in enumerate(labels):
            rows[i, list(chosen)] = 1
        return rows
    return np.asarray(labels, dtype=np.float64 if problem == "regression" else np.int64)


THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95


def fit_thresholds(probs: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Per label, the threshold of THRESHOLD_GRID with the best F1 of that label (ties: nearest 0.5; a label
    never seen keeps 0.5). probs, gold (N, C) -> (C,)."""
    out = np.full(probs.shape[1], 0.5)
    for j in range(probs.shape[1]):
        if not gold[:, j].any():
            continue
        best = max(THRESHOLD_GRID, key=lambda t: (multi_label_f1(probs[:, j:j + 1] >= t, gold[:, j:j + 1])["micro_f1"],
                                                  -abs(t - 0.5)))
        out[j] = best
    return out


def choose_thresholds(logits: np.ndarray, gold: np.ndarray, min_gain: float = 0.001) -> tuple[list[float] | None, dict]:
    """Per-label thresholds for a multi-label model, kept only when they measure better than 0.5 for all:
    fitted on one half of the rows and scored on the other (both ways, pooled), so the comparison is not
    made on the rows they were fitted to. Returns (thresholds fitted on every row, or None; the record)."""
    probs = sigmoid(logits)
    gold = np.asarray(gold).astype(bool)
    halves = [np.arange(len(probs))[i::2] for i in (0, 1)]
    pred = np.zeros_like(gold)
    for fit_rows, score_rows in (halves, halves[::-1]):
        pred[score_rows] = probs[score_rows] >= fit_thresholds(probs[fit_rows], gold[fit_rows])
    held_out = multi_label_f1(pred, gold)["micro_f1"]
    default = multi_label_f1(probs >= 0.5, gold)["micro_f1"]
    keep = held_out >= default + min_gain
    record = {"default_0.5_micro_f1": default, "per_label_held_out_micro_f1": held_out,
              "chosen": "per-label" if keep else "0.5",
              "why": ("per-label thresholds fitted on half the rows beat 0.5 on the other half" if keep else
                      "per-label thresholds did not beat 0.5 on held-out rows")}
    return ([round(float(t), 2) for t in fit_thresholds(probs, gold)] if keep else None), record
