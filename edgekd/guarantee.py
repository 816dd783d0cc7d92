"""A calibrated speed with a promise (`edgekd calibrate --confidence`): the fastest speed whose share of rows made
worse by leaving early stays within the budget on new rows from the same distribution, with probability at least
the confidence over the draw of the calibration rows.

The procedure is Learn-then-Test (Angelopoulos et al. 2021) with fixed-sequence testing: the speeds are tested
from slow to fast, each null hypothesis "the risk at this speed exceeds the budget" rejected by an exact binomial
tail bound at level delta = 1 - confidence, and the fastest speed of the unbroken run of rejections is kept.
Testing in a fixed order needs no multiplicity correction, and the risk is bounded without any assumption on the
model or the data beyond exchangeability. Speed 0 has no loss (every row runs every layer), so it is always kept.

The loss per row, by problem type: single-label, wrong at this speed and right at full depth; multi-label, a
label set other than full depth's; regression, a score moved by more than a tolerance (in the data's units) from
full depth's; token classification, a sentence whose entities differ from full depth's. Torch-free (numpy and
the standard library).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from runtime.entities import entity_spans
from runtime.exits import TOKENS, ExitRule, decide, sigmoid

METHOD = "Learn-then-Test, fixed-sequence testing from slow to fast, exact binomial tail bound"


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (exact for the n of a calibration file)."""
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0 if k < n else 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
             for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def p_value(losses: int, rows: int, budget: float) -> float:
    """The p-value of "the risk exceeds `budget`" after `losses` of `rows` rows lost: P(Binom(rows, budget) <=
    losses), which is small when far fewer rows lost than the budget allows."""
    return binomial_cdf(losses, rows, budget)


def upper_bound(losses: int, rows: int, confidence: float) -> float:
    """The exact (Clopper-Pearson) upper confidence bound on the risk after `losses` of `rows` rows lost."""
    if rows == 0:
        return 1.0
    low, high = losses / rows, 1.0
    for _ in range(60):  # bisection on the binomial tail: P(X <= losses | p) = 1 - confidence
        mid = (low + high) / 2
        if binomial_cdf(losses, rows, mid) > 1 - confidence:
            low = mid
        else:
            high = mid
    return high


def rows_needed(budget: float, confidence: float) -> int:
    """The fewest rows that can keep `budget` at `confidence` when none of them is lost: (1 - budget) ** n must
    fall to 1 - confidence."""
    return math.ceil(math.log(1 - confidence) / math.log1p(-budget))


def row_losses(exit_logits: np.ndarray, gold: np.ndarray | None, speed: float, rule: ExitRule,
               thresholds=0.5, tolerance: float = 0.0, tokens: tuple | None = None) -> np.ndarray:
    """Per row, 1 where leaving at `speed` made the answer worse than full depth's (see the module's words).
    Token classification: `tokens` = (the rule's token mask (N, T), the word positions (N, T) bool, the tag
    names), and a row is worse when its entities differ from full depth's."""
    mask = None if tokens is None else tokens[0]
    early = decide(exit_logits, speed, rule, mask)[0]
    full = decide(exit_logits, 0.0, rule, mask)[0]
    if rule.per_token:
        _, words, names = tokens
        return np.array([entity_spans([names[i] for i in e[w].argmax(-1)]) !=
                         entity_spans([names[i] for i in f[w].argmax(-1)])
                         for e, f, w in zip(early, full, words)], dtype=bool)
    if rule.problem == "multi-label":
        t = np.asarray(thresholds, dtype=np.float32)
        on_early, on_full = sigmoid(early) >= t, sigmoid(full) >= t
        return (on_early != on_full).any(-1)
    if rule.problem == "regression":
        return np.abs(early[:, 0] - full[:, 0]) > tolerance
    return (early.argmax(-1) != gold) & (full.argmax(-1) == gold)


def fixed_sequence(losses: list[int], rows: int, budget: float, delta: float) -> int:
    """How many hypotheses, taken in order (slow to fast speeds), are rejected before the first that is not:
    hypothesis j says the risk at speed j exceeds `budget`; its p-value comes from losses[j] of `rows`."""
    passed = 0
    for count in losses:
        if p_value(count, rows, budget) > delta:
            break
        passed += 1
    return passed


@dataclass
class Guarantee:
    """What calibration promises, as the manifest and the card record it."""

    budget: float  # the share of rows, in [0, 1], whose answer may get worse (regression: move beyond tolerance)
    confidence: float  # the probability, over the draw of the calibration rows, that the promise holds
    rows: int  # calibration rows
    speed: float  # the fastest speed certified
    losses: int  # rows made worse at that speed on the calibration file
    bound: float  # the upper confidence bound on the risk at that speed
    loss: str  # what counts as made worse
    method: str = METHOD
    tested: int = 0  # speeds certified in the fixed sequence (speed 0 included)
    note: str = ""  # e.g. that too few rows let no speed above 0 pass

    def to_dict(self) -> dict:
        return dict(self.__dict__)


LOSS_WORDS = {"single-label": "wrong at this speed and right at full depth",
              "multi-label": "a label set other than full depth's",
              TOKENS: "a sentence whose entities differ from full depth's",
              "regression": "a score moved by more than {tolerance:g} from full depth's"}


def certify(exit_logits: np.ndarray, gold: np.ndarray | None, rule: ExitRule, speeds: list[float], budget: float,
            confidence: float, thresholds=0.5, tolerance: float = 0.0, tokens: tuple | None = None) -> Guarantee:
    """The fastest speed of `speeds` whose risk is at most `budget` with probability >= `confidence` (`tokens`:
    token classification's masks and names, as `row_losses` takes them)."""
    if not 0 < budget < 1:
        raise ValueError(f"the budget is a share of rows in (0, 1), got {budget:g}")
    if not 0 < confidence < 1:
        raise ValueError(f"the confidence lies in (0, 1), got {confidence:g}")
    rows = exit_logits.shape[1]
    order = sorted(s for s in speeds if s > 0)
    counts = [int(row_losses(exit_logits, gold, s, rule, thresholds, tolerance, tokens).sum()) for s in order]
    passed = fixed_sequence(counts, rows, budget, 1 - confidence)
    chosen, chosen_losses, tested = (order[passed - 1], counts[passed - 1], passed + 1) if passed else (0.0, 0, 1)
    note = ""
    if chosen == 0.0:
        least = rows_needed(budget, confidence)
        note = (f"no speed above 0 could be certified on {rows} rows" +
                (f" (with no row made worse, {least} rows are needed at this budget and confidence)"
                 if rows < least else "") + ": speed 0 is kept")
    return Guarantee(budget, confidence, rows, chosen, chosen_losses, upper_bound(chosen_losses, rows, confidence),
                     LOSS_WORDS[rule.problem].format(tolerance=tolerance), tested=tested, note=note)
