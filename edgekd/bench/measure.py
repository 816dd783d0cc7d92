"""How one system is measured: task metrics and layers used, batch-1 latency, batch throughput.

A system is a callable `texts -> (answers, layers_used)` with a name and a kind; its answers follow the
problem type (`answers`): class names (single-label), an (N, C) on/off matrix (multi-label), values
(regression), each text's word tags (token classification). Each measurement
here takes one system; the run (edgekd.bench.run) decides the order (blocks, two rounds with the
order reversed, so slow drifts of a shared machine hit all systems alike and one runtime's idle
threads do not tax the next) and keeps what each step measured, so a crash loses one step.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgekd.metrics import METRICS, binary_f1, entity_f1, label_sets, multi_label_f1, pearson, spearman
from runtime.entities import repair, words_of
from runtime.exits import TOKENS

LARGE_BATCH = 256  # the offline / bulk-scoring batch (bench --large-batch)
Predict = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]
Tick = Callable[[int], None]  # called with the texts done so far (progress)


@dataclass
class System:
    name: str
    predict: Predict
    # teacher-torch | teacher-onnx | teacher-optimum | student-onnx | student-torch-exit | fasttext | tfidf-lr |
    # model2vec | edgekd (staged runtime) | edgekd-graph (model.onnx) | edgekd-<precision> |
    # edgekd-graph-<precision> | edgekd-variant (thread-pool settings) | edgekd-node[-<precision>] |
    # edgekd-browser[-<precision>]
    kind: str
    speed: float | None = None
    size_bytes: int | None = None
    batched: bool = True  # False: runs texts one by one (peers' batch-1 exit)
    recipe: dict | None = None  # how edgekd.bench.registry rebuilds it in a fresh process (peak RSS)


@dataclass
class Row:
    name: str
    kind: str
    speed: float | None
    accuracy: float | None  # single-label; the other problem types report `metrics`
    average_layers: float
    gflops_per_text: float | None
    p50_ms_b1: float
    p95_ms_b1: float
    throughput_b32: float | None  # texts per second at batch 32
    p50_ms_b32: float | None  # per-batch latency at batch 32
    p95_ms_b32: float | None
    size_mb: float | None
    ratios: dict[str, float] = field(default_factory=dict)
    throughput_b256: float | None = None  # texts per second at batch 256 (bench --large-batch)
    peak_rss_mb: float | None = None  # the system alone in a fresh process (bench --rss)
    f1: float | None = None  # binary tasks: F1 of the positive class (the second label), as GLUE reports QQP / MRPC
    metric: str = "accuracy"  # the problem type's main metric: accuracy | micro_f1 | pearson | entity_f1
    # multi-label micro_f1, macro_f1; regression pearson, spearman; tokens entity_f1, _precision, _recall
    metrics: dict[str, float] | None = None

    @property
    def f1_points(self) -> float | None:
        return None if self.f1 is None else 100 * self.f1

    @property
    def main(self) -> float:
        """The main metric's value (accuracy, micro-F1, Pearson): what tables, plots and the frontier rank by."""
        return self.accuracy if self.metric == "accuracy" else (self.metrics or {})[self.metric]

    @property
    def second_points(self) -> float | None:
        """The type's second metric x 100 (macro-F1; Spearman), None for single-label (F1 has its column)."""
        names = METRICS.get({"micro_f1": "multi-label", "pearson": "regression", "entity_f1": TOKENS}.get(
            self.metric, ""), ())
        value = (self.metrics or {}).get(names[1]) if len(names) > 1 else None
        return None if value is None else 100 * value


def answers(logits: np.ndarray, problem: str, names: np.ndarray, thresholds=0.5, encodings=None) -> np.ndarray:
    """A model's raw outputs (N, C) as a system's answers: class names (single-label); an (N, C) on/off
    matrix at the thresholds (multi-label); values (N,) (regression); token classification, outputs (N, T, C)
    and the texts' `encodings`: each text's word tags (read at each word's first sub-token, as `repair` reads
    BIO), an object array of N lists."""
    if problem == TOKENS:  # (rows of one text each may differ in length: a list of (T, C) arrays is taken too)
        out = np.empty(len(logits), dtype=object)
        for i, (row, encoding) in enumerate(zip(logits, encodings)):
            out[i] = repair([str(names[c]) for c in np.asarray(row)[words_of(encoding)[1]].argmax(-1)])
        return out
    logits = np.asarray(logits)
    if problem == "multi-label":
        return label_sets(logits, thresholds)
    if problem == "regression":
        return logits.reshape(len(logits), -1)[:, 0].astype(np.float64)
    return names[logits.argmax(-1)]


def answer_scores(problem: str, got, gold: np.ndarray, label_index: dict[str, int]) -> dict[str, float]:
    """The problem type's metrics of a system's answers against gold (class ids; 0/1 rows; values; each text's
    word tags: a text cut at max_length is scored on the words both sides hold)."""
    if problem == TOKENS:
        sizes = [min(len(p), len(g)) for p, g in zip(got, gold)]
        return entity_f1([list(p)[:n] for p, n in zip(got, sizes)], [list(g)[:n] for g, n in zip(gold, sizes)])
    if problem == "multi-label":
        return multi_label_f1(np.asarray(got), gold)
    if problem == "regression":
        return {"pearson": pearson(got, gold), "spearman": spearman(got, gold)}
    pred = np.array([label_index[p] for p in got])
    f1 = binary_f1(pred, gold, len(label_index))
    return {"accuracy": float((pred == gold).mean()), **({} if f1 is None else {"f1": f1})}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def quality(system: System, texts: list, gold: np.ndarray, label_index: dict[str, int], batch_size: int = 32,
            tick: Tick = lambda n: None, problem: str = "single-label") -> dict:
    """{"metrics": the problem type's metrics (accuracy and a binary task's F1; micro/macro-F1; Pearson and
    Spearman), "layers": average layers used} over every text."""
    step = batch_size if system.batched else 1
    preds, layers = [], []
    for i in range(0, len(texts), step):
        p, used = system.predict(texts[i : i + step])
        preds += list(p)
        layers += list(used)
        tick(i + step)
    got = preds if problem == TOKENS else np.array(preds)  # (word-tag lists stay lists)
    return {"metrics": answer_scores(problem, got, gold, label_index), "layers": float(np.mean(layers))}


def latency_b1(system: System, texts: list[str], warmup: int = 10) -> list[float]:
    """Seconds per text at batch 1, every text of `texts` in one block (as in its own process)."""
    for text in texts[:warmup]:
        system.predict([text])
    times = []
    for text in texts:
        start = time.perf_counter()
        system.predict([text])
        times.append(time.perf_counter() - start)
    return times


def throughput(system: System, texts: list[str], batch_size: int) -> tuple[float, list[float]]:
    """(texts per second over all `texts` at `batch_size`, every batch's seconds)."""
    batches = []
    began = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        start = time.perf_counter()
        system.predict(texts[i : i + batch_size])
        batches.append(time.perf_counter() - start)
    return len(texts) / (time.perf_counter() - began), batches


def best_round(rounds: list[list[float]]) -> list[float]:
    """The batch-1 round with the lower median."""
    return min(rounds, key=statistics.median)


def layer_gflops(hidden: int, ffn: int, tokens: float) -> float:
    """Multiply-adds x2 of one transformer layer on `tokens` tokens (projections, FFN, attention)."""
    return (2 * tokens * (4 * hidden * hidden + 2 * hidden * ffn) + 4 * tokens * tokens * hidden) / 1e9
