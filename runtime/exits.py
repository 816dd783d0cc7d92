"""The exit rules, in one place (numpy): what every consumer of exits calls.

After layer l a row has an uncertainty u in [0, 1]; the row leaves at the first
layer with u < speed; speed 0 runs every layer; the last layer always decides.
What u is depends on the problem type (`PROBLEMS`):

- single-label (softmax over C >= 2 classes): the normalized entropy of the
  exit head, u = -sum(p log p) / log(C);
- multi-label (C independent sigmoids): the largest binary entropy over the
  labels, u = max_j H(p_j) / log 2, so a row leaves when every label is sure;
  with per-label thresholds t_j (`ExitRule.thresholds`, the rule "at thresholds"
  that export writes where it chose thresholds) each logit is first moved by
  logit(t_j): u = max_j H(sigmoid(z_j - logit t_j)) / log 2, 1 exactly at a
  label's decision boundary (a label at p = 0.5 with t = 0.2 is already decided);
- regression (one value): no distribution exists, so u is the disagreement of
  consecutive heads (PABEE's idea): the gap g_l = min(1, |y_l - y_(l-1)| / s) with s
  the training targets' standard deviation (`ExitRule.scale`) and g_1 = 1, and
  u_l = max(g_l, ..., g_(l-patience+1)), the manifest's `exit_rule.patience`
  (PABEE's patience; 1, u_l = g_l, is what export writes and what bundles that
  record none use; with 2 the last three heads must agree);
- token-classification (a softmax over the C tags at every token): the largest
  normalized entropy over the sentence's real tokens (`rule_mask`: not padding,
  not the tokenizer's special tokens), so a sentence leaves when every token is
  sure (the multi-label rule's analogue); the heads' outputs are (..., T, C) and
  every function below that takes them also takes that mask.

The staged runtime, the compiled graph's checks, calibration, evaluation and
the bench all use these functions; torch code converts to numpy at the
boundary (`edgekd.distill.evaluate` has a torch twin that a test proves equal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from runtime.errors import InputError, InputTypeError

# Speeds that calibration tables, agreement checks and the bench sweep: 0.00 .. 0.95.
SPEED_GRID: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(20))
# The speeds calibration chooses among: a finer grid (every 0.025), since speeds are simulated from one trace and
# a coarse grid leaves layers unused (CLINC150: 0.55 gave 2.69 layers within the 1-point budget, 0.575 2.56).
CALIBRATION_GRID: tuple[float, ...] = tuple(round(0.025 * i, 3) for i in range(40))
# The speeds tables and the bench report by default: a subset of the grid.
REPORT_SPEEDS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Elementwise logistic function, finite for any input."""
    return (0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, dtype=np.float32)))).astype(np.float32)


def normalized_entropy(logits: np.ndarray) -> np.ndarray:
    """u = -sum(p log p) / log(C) over the last axis, clipped to [0, 1]; (..., C) -> (...).

    A one-class head has no uncertainty: u = 0.
    """
    logits = np.asarray(logits)
    num_classes = logits.shape[-1]
    z = logits - logits.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    entropy = -(np.exp(log_p) * log_p).sum(axis=-1)
    if num_classes < 2:
        return np.zeros_like(entropy)
    return np.clip(entropy / math.log(num_classes), 0.0, 1.0)


def binary_entropy(logits: np.ndarray) -> np.ndarray:
    """u = max_j H(sigmoid(z_j)) / log 2 over the last axis, in [0, 1]; (..., C) -> (...).

    Computed from the logits without forming p: H = softplus(-|z|) + |z| sigmoid(-|z|) is exact and finite."""
    z = np.abs(np.asarray(logits, dtype=np.float64))
    e = np.exp(-z)  # z >= 0: no overflow
    entropy = np.log1p(e) + z * e / (1.0 + e)
    return np.clip(entropy.max(axis=-1) / math.log(2.0), 0.0, 1.0).astype(np.float32)


def threshold_logits(thresholds, labels: int) -> np.ndarray:
    """logit(t_j) per label (C,), from one threshold or one per label: where the multi-label rule at
    thresholds centres each label's entropy."""
    t = np.clip(np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (labels,)), 1e-6, 1 - 1e-6)
    return np.log(t / (1 - t))


def disagreement(values: np.ndarray, previous: np.ndarray | None, scale: float) -> np.ndarray:
    """u = min(1, max |y - y_prev| / scale) over the last axis; 1 where there is no previous head. (..., C) -> (...)."""
    values = np.asarray(values, dtype=np.float32)
    if previous is None:
        return np.ones(values.shape[:-1], dtype=np.float32)
    gap = np.abs(values - np.asarray(previous, dtype=np.float32)).max(axis=-1)
    return np.minimum(1.0, gap / np.float32(scale)).astype(np.float32)


TOKENS = "token-classification"  # one tag per token; a sentence leaves when every real token is sure
PROBLEMS = ("single-label", "multi-label", "regression", TOKENS)
# Hugging Face's names (config.problem_type) for the sequence types (a token classifier is its own model class)
HF_PROBLEM_TYPES = {"single-label": "single_label_classification", "multi-label": "multi_label_classification",
                    "regression": "regression"}


# the name of each type's rule, as manifests record it (manifest.exit_rule["name"])
RULE_NAMES = {"single-label": "normalized-entropy", "multi-label": "max-binary-entropy",
              "regression": "consecutive-gap", TOKENS: "max-token-entropy"}
# the multi-label rule with each label's entropy centred on its threshold. Measured on GoEmotions (issue 41,
# benchmarks/results/goemotions_exits_int8.md): within 1 micro-F1 point of full depth it ran 2.59 of 4 layers on
# test against 2.75 for the entropy at 0.5 (dev: 2.55 against 2.98), so export writes it wherever it chose thresholds
AT_THRESHOLDS = "max-binary-entropy-at-thresholds"
# regression's patience in the bundles export writes (manifest.exit_rule["patience"]). Measured on STS-B dev
# (benchmarks/regression_exit_rules.py): with weak early heads patience 2 saved more layers within 1 point (3.19
# of 4 against 3.35), with heads self-distilled on the transfer set patience 1 did (2.94 against 3.21: patience 2
# cannot leave before layer 3), so 1 it is; the runtime, the compiled graph and the torch twin take any patience
REGRESSION_PATIENCE = 1


def patience_problem(patience: object, problem: str) -> str | None:
    """What is wrong with an exit rule's `patience` (to follow "patience"), or None: a whole number >= 1, above
    1 for regression only. ExitRule raises it; a manifest lists it among its problems."""
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        return f"must be a whole number >= 1, got {patience!r}"
    if patience != 1 and problem != "regression":
        return f"belongs to the regression exit rule; a {problem} rule has none"
    return None


def combined_gap(gap: np.ndarray, recent: tuple[np.ndarray, ...]) -> np.ndarray:
    """u = the largest of this head's gap and the `recent` heads' gaps (regression with patience > 1)."""
    return np.maximum.reduce([gap, *recent]).astype(np.float32) if recent else gap


@dataclass(frozen=True)
class ExitRule:
    """The exit rule of a bundle's problem type: `uncertainty` of one head, `decide` over every head.

    scale: regression only, the training targets' standard deviation (a gap of one s is full uncertainty).
    patience: regression only, how many consecutive gaps must all be small (u = the largest of the last
    `patience` gaps; 1 = the last gap alone, the rule of bundles that record none).
    thresholds: multi-label only, one per label: each label's entropy is taken around its threshold rather than
    0.5 (the rule at thresholds), and `agree` compares label sets there; None = 0.5 for every label."""

    problem: str = "single-label"
    scale: float = 1.0
    patience: int = 1
    thresholds: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.problem not in PROBLEMS:
            raise InputError(f"unknown problem type {self.problem!r}; known: {', '.join(PROBLEMS)}")
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise InputError(f"the regression exit rule's scale must be a positive number, got {self.scale!r}")
        wrong = patience_problem(self.patience, self.problem)
        if wrong:
            raise InputError(f"the exit rule's patience {wrong}")
        if self.thresholds is not None and (self.problem != "multi-label" or not self.thresholds or
                                            not all(0 < t < 1 for t in self.thresholds)):
            raise InputError(f"exit-rule thresholds belong to a multi-label rule, one in (0, 1) per label; got "
                             f"{self.thresholds!r} for {self.problem}")

    @property
    def name(self) -> str:
        return AT_THRESHOLDS if self.thresholds is not None else RULE_NAMES[self.problem]

    def _shift(self, labels: int) -> np.ndarray | float:
        """What a multi-label head's logits are measured from: logit(t_j) per label, or 0."""
        if self.thresholds is None:
            return 0.0
        if len(self.thresholds) != labels:
            raise InputError(f"the exit rule has {len(self.thresholds)} label thresholds; the head has {labels} labels")
        return threshold_logits(self.thresholds, labels).astype(np.float32)

    @property
    def needs_previous(self) -> bool:
        """True when a head's uncertainty depends on the previous head's output (regression)."""
        return self.problem == "regression"

    @property
    def per_token(self) -> bool:
        """True when a head's outputs are per token (..., T, C) and u needs the sentence's rule mask."""
        return self.problem == TOKENS

    def uncertainty(self, logits: np.ndarray, previous: np.ndarray | None = None,
                    mask: np.ndarray | None = None) -> np.ndarray:
        """u of one head's outputs (..., C) -> (...); regression: the gap to `previous`, the head before's outputs
        (with patience > 1, u also takes the gaps before it: use `step`); token classification: outputs
        (..., T, C) and `mask` (..., T) (`rule_mask`) -> (...)."""
        if self.problem == TOKENS:
            if mask is None:
                raise InputError("the token-classification exit rule needs the sentences' token mask")
            return token_uncertainty(logits, mask)
        if self.problem == "multi-label":
            logits = np.asarray(logits)
            return binary_entropy(logits - self._shift(logits.shape[-1]))
        if self.problem == "regression":
            return disagreement(logits, previous, self.scale)
        return normalized_entropy(logits).astype(np.float32)

    def step(self, logits: np.ndarray, state: tuple | None = None, mask: np.ndarray | None = None
             ) -> tuple[np.ndarray, tuple | None]:
        """u of one head's outputs (R, C) -> (R,), and what the next head's u needs (regression: these outputs
        and the last patience - 1 gaps; None for the other types). `state` is None at the first head; keep its
        rows in step with the batch's (`keep_rows`). Token classification: (R, T, C) and `mask` (R, T)."""
        if not self.needs_previous:
            return self.uncertainty(logits, mask=mask), None
        previous, recent = state if state is not None else (None, ())
        gap = disagreement(logits, previous, self.scale)
        window = self.patience - 1
        return combined_gap(gap, recent), (logits, (*recent, gap)[-window:] if window else ())

    @staticmethod
    def keep_rows(state: tuple | None, rows: np.ndarray) -> tuple | None:
        """`state` (from `step`) for the rows that stay (a boolean mask or indices)."""
        if state is None:
            return None
        previous, recent = state
        return previous[rows], tuple(g[rows] for g in recent)

    def trace(self, exit_logits: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """u of every head on every row: (L, B, C) -> (L, B); token classification (L, B, T, C) and `mask`
        (B, T)."""
        exit_logits = np.asarray(exit_logits)
        if self.per_token:
            if mask is None:
                raise InputError("the token-classification exit rule needs the sentences' token mask")
            return token_uncertainty(exit_logits, np.broadcast_to(mask, exit_logits.shape[:-1]))
        if not self.needs_previous:
            return self.uncertainty(exit_logits)
        out, state = [], None
        for logits in exit_logits:
            u, state = self.step(logits, state)
            out.append(u)
        return np.stack(out)

    def agree(self, a: np.ndarray, b: np.ndarray, tolerance: float = 0.1, mask: np.ndarray | None = None
              ) -> np.ndarray:
        """Whether two runs' outputs (..., C) give the same answer per row (...): the same class; the same label
        set (at 0.5, or at the rule's thresholds); values within `tolerance` x scale (regression). For parity
        and int8 agreement checks. Token classification: the same tag at every token of `mask` (..., T) (the
        words' first pieces give the same entities; `rule_mask`, every token read); without one, at every
        position, padding included."""
        a, b = np.asarray(a), np.asarray(b)
        if self.per_token:
            same = a.argmax(-1) == b.argmax(-1)
            return (same if mask is None else same | ~np.asarray(mask, dtype=bool)).all(-1)
        if self.problem == "multi-label":
            at = self._shift(a.shape[-1])
            return ((a >= at) == (b >= at)).all(-1)
        if self.problem == "regression":
            return (np.abs(a - b) <= tolerance * self.scale).all(-1)
        return a.argmax(-1) == b.argmax(-1)

    def decide(self, exit_logits: np.ndarray, speed: float, mask: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`decide` under this rule."""
        return decide(exit_logits, speed, self, mask)


SINGLE_LABEL = ExitRule()


def default_rule(problem: str, scale: float = 1.0) -> ExitRule:
    """The rule new bundles of `problem` are written with (regression: REGRESSION_PATIENCE)."""
    return ExitRule(problem, scale, REGRESSION_PATIENCE if problem == "regression" else 1)


def leaves(uncertainty: np.ndarray, speed: float, last: bool) -> np.ndarray:
    """Which rows leave after a layer: u < speed, or every row at the last layer."""
    if last:
        return np.ones(np.shape(uncertainty), dtype=bool)
    return np.asarray(uncertainty) < speed


def decide(exit_logits: np.ndarray, speed: float, rule: ExitRule | None = None, mask: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the rule (default: single-label) to every exit head's logits at once.

    exit_logits (L, B, C) -> (logits (B, C) of the deciding layer, exit layer (B,)
    int64 1-based, uncertainty (B,) at that layer). A row's result depends only
    on its own logits, so this equals running the layers with exits.
    """
    exit_logits = np.asarray(exit_logits)
    unc = (rule or SINGLE_LABEL).trace(exit_logits, mask)  # (L, B)
    first = first_exit(unc, speed)
    rows = np.arange(exit_logits.shape[1])
    return exit_logits[first, rows], (first + 1).astype(np.int64), unc[first, rows]


def first_exit(unc: np.ndarray, speed: float) -> np.ndarray:
    """The layer (0-based) each row leaves at from its uncertainties (L, B): the first with u < speed, else the
    last."""
    leave = np.asarray(unc) < speed
    leave[-1] = True
    return leave.argmax(0)


def token_uncertainty(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The sentence rule of token classification (issue 45): u is the largest normalized entropy over the
    sentence's real tokens (mask 1: `rule_mask`), so a sentence leaves when every token is sure; (..., T, C),
    (..., T) -> (...). A sentence without a real token has u = 0."""
    u = normalized_entropy(np.asarray(logits))
    return np.where(np.asarray(mask).astype(bool), u, 0.0).max(axis=-1).astype(np.float32)


def rule_mask(input_ids: np.ndarray, attention_mask: np.ndarray, special_ids) -> np.ndarray:
    """The tokens the token rule reads: real (attention mask 1) and not one of the tokenizer's special tokens
    ([CLS], [SEP], ...: no tag is trained there). (B, T) -> (B, T) bool."""
    return np.asarray(attention_mask).astype(bool) & ~np.isin(input_ids, np.asarray(list(special_ids), np.int64))


def check_speed(speed: object) -> float:
    """A speed as a float in [0, 1]; TypeError for a non-number, ValueError out of range."""
    if isinstance(speed, bool) or not isinstance(speed, (int, float, np.floating, np.integer)):
        raise InputTypeError(f"speed must be a number in [0, 1], got {type(speed).__name__} {speed!r}")
    value = float(speed)
    if not 0.0 <= value <= 1.0:
        raise InputError(f"speed must lie in [0, 1] (0 runs every layer), got {value}")
    return value
