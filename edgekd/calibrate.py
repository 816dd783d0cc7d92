"""`edgekd calibrate`: choose a bundle's default speed on this machine.

Every exit runs once on the calibration data (all layers, all rows); every
speed is then simulated from the recorded exit logits, which gives exactly the
runtime's decisions since a row's result does not depend on its batch. Latency
per speed comes from per-part timings measured here at batch 1: tokenize +
embed + the parts each text would run. The table and the chosen speed are
written into the manifest atomically.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import runtime
from edgekd.metrics import gold_array, main_metric, task_scores
from edgekd.card import write_card
from edgekd.data import read_bundle_data
from edgekd.guarantee import certify
from runtime.errors import BundleError, EdgeKDError
from runtime.exits import CALIBRATION_GRID, ExitRule, decide, rule_mask
from runtime.choose import fastest
from runtime.manifest import Calibration, CalibrationPoint, write_manifest
from runtime.timing import machine_description, layer_times

GRID = list(CALIBRATION_GRID)


@dataclass
class CalibrationResult:
    points: list[CalibrationPoint]
    chosen: float
    rule: str
    full_accuracy: float  # the main metric (accuracy, micro-F1, Pearson) at full depth
    metric: str = "accuracy"
    warnings: list[str] = field(default_factory=list)  # suspicious outcomes (also sent to calibrate's `log`)

    @property
    def chosen_point(self) -> CalibrationPoint:
        return next(p for p in self.points if p.speed == self.chosen)


def near_chance(problem: str, full: float, gold: np.ndarray) -> bool:
    """Whether a full-depth score is about what guessing gets: the majority class's share (single-label), a
    micro-F1 under 0.1 (multi-label), a Pearson under 0.1 (regression)."""
    if problem == "single-label":
        majority = np.bincount(np.asarray(gold, dtype=np.int64)).max() / max(len(gold), 1)
        return full <= majority + 0.02
    return full < 0.1


def point(exit_logits: np.ndarray, gold: np.ndarray, speed: float, rule: ExitRule, thresholds=0.5,
          tokens: tuple | None = None) -> tuple[CalibrationPoint, np.ndarray]:
    """The calibration point at `speed` (the problem type's metrics, multi-label labels at `thresholds`;
    latency filled in later) and per-row exit layers, from (L,N,C) exit logits (token classification: (L,N,T,C)
    and `tokens` = (the rule's token mask, the word positions, the tag names))."""
    logits, layers, _ = decide(exit_logits, speed, rule, None if tokens is None else tokens[0])
    scores = task_scores(rule.problem, logits, gold, thresholds, names=None if tokens is None else tokens[2])
    if rule.problem == "single-label":
        return CalibrationPoint(speed=speed, accuracy=scores["accuracy"], average_layers=float(layers.mean()),
                                f1=scores.get("f1")), layers
    return CalibrationPoint(speed=speed, accuracy=None, average_layers=float(layers.mean()), metrics=scores), layers


def trace_file(model: runtime.EdgeModel, dataset) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """Every exit head's outputs on every row of a labelled file (L, N, C), the gold (edgekd.metrics.gold_array),
    and for token classification (L, N, T, C) outputs, the tags on their tokens (N, T) (edgekd.tokens.
    token_labels) and what its rule and scores read: (the rule's token mask, the word positions, the tag
    names)."""
    items = model.items(dataset.texts)  # a pair bundle refuses single-text data, and the other way round
    ids, types = model.encoder.tokens(items)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    width = (max(len(row) for row in ids),) if model.rule.per_token else ()
    exit_logits = np.zeros((model.num_layers, len(ids), *width, len(model.labels)), dtype=np.float32)
    for start in range(0, len(order), 64):
        chunk = order[start : start + 64]
        padded, mask, token_type_ids = model.encoder.pad([ids[i] for i in chunk], [types[i] for i in chunk])
        traced = model.trace_ids(padded, mask, token_type_ids if model.manifest.text_pair else None)
        if width:
            exit_logits[:, chunk, : traced.shape[2]] = traced
        else:
            exit_logits[:, chunk] = traced
    return (exit_logits, *file_gold(model, dataset, ids))


def file_gold(model: runtime.EdgeModel, dataset, ids: list[list[int]]) -> tuple[np.ndarray, tuple | None]:
    """The gold of a labelled file as `trace_file` gives it: edgekd.metrics.gold_array, or for token
    classification the tag ids on the tokens `ids` at the longest row's width (N, T), the width per-token outputs
    over the file have, and (the rule's token mask, the word positions, the tag names)."""
    if not model.rule.per_token:
        return gold_array(dataset.labels, model.problem, len(model.labels)), None
    from edgekd.tokens import TokenDataset, tag_matrix, token_labels

    words = TokenDataset([text.split(" ") for text in dataset.texts], dataset.labels)
    _, tags = token_labels(model.encoder, words, model.labels)
    padded, mask = model.encoder.pad(ids)
    gold = tag_matrix(tags, padded.shape[1])
    return gold, (rule_mask(padded, mask, model.encoder.special_ids), gold >= 0, model.labels)


def engine_latency(model: runtime.EdgeModel, texts: list[str], speed: float, rounds: int = 3) -> dict[str, float]:
    """Mean ms per text at batch 1 and `speed` for each engine the bundle has (best of `rounds`, each engine
    over all texts in one block, the order reversed every other round)."""
    manifest = model.manifest
    engines = [e for e, ok in (("staged", bool(manifest.staged)), ("graph", manifest.graph is not None)) if ok]
    if len(engines) < 2:
        return {}
    models = {e: model if model.engine == e else model.variant(engine=e) for e in engines}
    encoded = [model.encode([text]) for text in texts]

    def timer(m: runtime.EdgeModel):
        def run() -> dict[str, float]:
            start = time.perf_counter()
            for ids, mask, types in encoded:
                m.run_ids(ids, mask, speed, token_type_ids=types)
            return {"b1": 1e3 * (time.perf_counter() - start) / max(len(encoded), 1)}
        return run

    for m in models.values():
        m.run_ids(*encoded[0][:2], speed, token_type_ids=encoded[0][2])  # warm up
    choice = fastest({e: timer(m) for e, m in models.items()}, rounds=rounds)
    return {e: round(t["b1"], 4) for e, t in choice.ms.items()}


def thread_policy(model: runtime.EdgeModel, texts: list[str], speed: float, engine: str | None,
                  batch: int = 32, rounds: int = 2) -> dict | None:
    """How to use this machine's cores, measured per batch size at `speed`: batch 1 on onnxruntime's default
    intra-op threads or on one thread; batch `batch` whole on every core or split across cores (one part
    per core, one thread each). None on one core (nothing to choose)."""
    cores = os.cpu_count() or 1
    if cores < 2 or not texts:
        return None
    default = model.variant(threads=0, engine=engine)  # 0: onnxruntime's default threads
    one = default.variant(threads=1)
    singles = [default.encode([t]) for t in texts]
    batches = [default.encode(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    rows = sum(len(ids) for ids, _, _ in batches)

    def batch_1(m: runtime.EdgeModel):
        def run() -> dict[str, float]:
            times = []
            for ids, mask, types in singles:
                began = time.perf_counter()
                m.run_ids(ids, mask, speed, token_type_ids=types)
                times.append(time.perf_counter() - began)
            return {"b1": 1e3 * float(np.median(times))}
        return run

    def batched(run_batch):
        def run() -> dict[str, float]:
            began = time.perf_counter()
            for ids, mask, types in batches:
                run_batch(ids, mask, speed, token_type_ids=types)
            return {"all": 1e3 * (time.perf_counter() - began)}
        return run

    for m in (default, one):
        m.run_ids(*singles[0][:2], speed, token_type_ids=singles[0][2])  # warm up
    small = fastest({"default": batch_1(default), "one": batch_1(one)}, rounds=rounds)
    large = fastest({"whole": batched(default.run_ids), "split": batched(default.run_split)}, rounds=rounds)
    return {"cores": cores, "speed": speed,
            "batch_1": {"ms": {k: round(v["b1"], 4) for k, v in small.ms.items()}, "chosen": small.chosen},
            f"batch_{batch}": {"texts_per_s": {k: round(rows / (v["all"] / 1e3), 1) for k, v in large.ms.items()},
                               "chosen": large.chosen}}


def calibrate(bundle: str | os.PathLike, data: str | os.PathLike, max_drop: float | None = None,
              latency_ms: float | None = None, latency_texts: int = 100, grid: list[float] | None = None,
              write: bool = True, columns: dict[str, str] | None = None, log=None,
              confidence: float | None = None, tolerance: float | None = None) -> CalibrationResult:
    """Measure, choose the default speed by `max_drop` (points of the problem type's main metric below full
    depth: accuracy, micro-F1, Pearson x 100) or `latency_ms` (mean per text at batch 1), and write it into
    the manifest. With `confidence`, `max_drop` is instead the share of rows, in %, whose answer may get worse
    (regression: move by more than `tolerance`, default a tenth of the targets' s.d.), and the speed is chosen
    with that probability of keeping the promise on new rows (edgekd.guarantee)."""
    if (max_drop is None) == (latency_ms is None):
        raise EdgeKDError("give exactly one of --max-drop POINTS or --latency-ms MS")
    if max_drop is not None and max_drop < 0:
        raise EdgeKDError("--max-drop must be >= 0 (accuracy points)")
    if latency_ms is not None and latency_ms <= 0:
        raise EdgeKDError("--latency-ms must be positive")
    if confidence is not None and (max_drop is None or not 0 < confidence < 1 or not 0 < max_drop < 100):
        raise EdgeKDError("--confidence (in (0, 1), e.g. 0.95) goes with --max-drop, then the share of rows in % "
                          "(in (0, 100)) whose answer may get worse")
    model = runtime.load(bundle, warmup=True)
    if not model.manifest.staged:
        raise BundleError(f"{bundle} holds only the compiled graph (a slim bundle: {model.manifest.target}); "
                          "calibration times the layer graphs: calibrate the full bundle it was packed from, then "
                          "pack it again")
    if model.full:
        raise EdgeKDError(f"{bundle} holds one graph without exits; there is no speed to calibrate")
    dataset = read_bundle_data(model, data, **(columns or {}))  # its shape checked against the bundle
    exit_rule, metric = model.rule, main_metric(model.problem)
    exit_logits, gold, tokens = trace_file(model, dataset)
    rows = len(dataset.texts)
    sample = list(range(min(latency_texts, rows)))
    front, per_layer = layer_times(model, [dataset.texts[i] for i in sample])
    cumulative = np.cumsum(per_layer)
    points = []
    for speed in grid or GRID:
        p, layers = point(exit_logits, gold, speed, exit_rule, model.thresholds, tokens)
        p.latency_ms = 1e3 * (front + float(np.mean(cumulative[layers[sample] - 1])))
        points.append(p)
    full = point(exit_logits, gold, 0.0, exit_rule, model.thresholds, tokens)[0].score(metric)
    said = []
    if near_chance(model.problem, full, gold):
        said.append(f"the bundle scores {100 * full:.2f} ({metric}) at full depth on {Path(data).name}, about what "
                    "guessing gets: every speed costs it nothing, so the one chosen says nothing; check the data "
                    "(its labels, its columns) and the run")
    promise = None
    if confidence is not None:
        tol = tolerance if tolerance is not None else 0.1 * (model.manifest.target_scale or 1.0)
        promise = certify(exit_logits, gold if model.problem == "single-label" else None, exit_rule,
                          grid or GRID, max_drop / 100, confidence, model.thresholds, tol, tokens)
        chosen = next(p for p in points if p.speed == promise.speed)  # speed 0, the grid's first, when none passed
        rule = f"guarantee: at most {max_drop:g}% of rows made worse, with probability {confidence:g}"
        if promise.note:
            said.append(promise.note)
    elif max_drop is not None:
        ok = [p for p in points if 100 * (full - p.score(metric)) <= max_drop + 1e-9]
        chosen = max(ok, key=lambda p: p.speed)
        rule = f"max_drop={max_drop:g} points"
    else:
        ok = [p for p in points if p.latency_ms <= latency_ms]
        if not ok:
            fastest = min(points, key=lambda p: p.latency_ms)
            raise EdgeKDError(f"no speed meets {latency_ms:g} ms here; the fastest is speed {fastest.speed:g} at "
                              f"{fastest.latency_ms:.3f} ms per text")
        chosen = max(ok, key=lambda p: (p.score(metric), -p.speed))
        rule = f"latency_ms={latency_ms:g}"
    engines = engine_latency(model, [dataset.texts[i] for i in sample], chosen.speed)
    engine = min(engines, key=engines.get) if engines else None
    threads = thread_policy(model, [dataset.texts[i] for i in sample], chosen.speed, engine)
    if write:
        manifest = model.manifest
        manifest.default_speed = chosen.speed
        manifest.calibration = Calibration(data=f"{Path(data).name} ({rows} rows)", machine=machine_description(),
                                           points=points, rule=rule, engine_latency_ms=engines, engine=engine,
                                           threads=threads, metric=metric,
                                           guarantee=promise.to_dict() if promise else None)
        write_manifest(bundle, manifest)
        if manifest.card:  # the model card shows the calibration table: written again, hashed again
            write_card(bundle, manifest)
    result = CalibrationResult(points, chosen.speed, rule, full, metric, said)
    for line in said:
        (log or (lambda text: None))(f"warning: {line}")
    return result
