"""Side-by-side benchmarks: every system on the same texts, in one run.

Each system is timed in blocks over the same texts, in two rounds with the
order reversed, so slow drifts of a shared machine hit all systems alike and
one runtime's idle threads do not tax the next; ratios are computed inside the
run. Systems are callables `texts -> (labels, layers_used)`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

LARGE_BATCH = 256  # the offline / bulk-scoring batch (bench --large-batch)
Predict = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]


@dataclass
class System:
    name: str
    predict: Predict
    kind: str  # teacher-torch | teacher-onnx | student-onnx | student-torch-exit | edgekd
    speed: float | None = None
    size_bytes: int | None = None
    batched: bool = True  # False: runs texts one by one (peers' batch-1 exit)
    recipe: dict | None = None  # how to rebuild it in a fresh process (edgekd.rss: peak RSS)


@dataclass
class Row:
    name: str
    kind: str
    speed: float | None
    accuracy: float
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


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def time_batch1(systems: list[System], texts: list[str], warmup: int = 10, rounds: int = 2) -> dict[str, list[float]]:
    """Per-text latency (seconds) of every system at batch 1.

    Each system runs all texts as one block (as it would in its own process),
    so one runtime's idle spinning threads do not tax the next; the blocks run
    in `rounds` rounds, the order reversed each round, and the round with the
    lower median counts for each system."""
    best: dict[str, list[float]] = {}
    for round_index in range(rounds):
        order = systems if round_index % 2 == 0 else systems[::-1]
        for s in order:
            for text in texts[:warmup]:
                s.predict([text])
            times = []
            for text in texts:
                start = time.perf_counter()
                s.predict([text])
                times.append(time.perf_counter() - start)
            if s.name not in best or statistics.median(times) < statistics.median(best[s.name]):
                best[s.name] = times
    return best


def time_throughput(systems: list[System], texts: list[str], batch_size: int = 32,
                    rounds: int = 2) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Texts per second at `batch_size` (best of `rounds`, systems alternating per
    round) and every batch's latency in seconds."""
    best: dict[str, float] = {}
    batches: dict[str, list[float]] = {}
    for _ in range(rounds):
        for s in systems:
            if not s.batched:
                continue
            began = time.perf_counter()
            for i in range(0, len(texts), batch_size):
                start = time.perf_counter()
                s.predict(texts[i : i + batch_size])
                batches.setdefault(s.name, []).append(time.perf_counter() - start)
            rate = len(texts) / (time.perf_counter() - began)
            best[s.name] = max(best.get(s.name, 0.0), rate)
    return best, batches


def layer_gflops(hidden: int, ffn: int, tokens: float) -> float:
    """Multiply-adds x2 of one transformer layer on `tokens` tokens (projections, FFN, attention)."""
    return (2 * tokens * (4 * hidden * hidden + 2 * hidden * ffn) + 4 * tokens * tokens * hidden) / 1e9


def evaluate(systems: list[System], texts: list[str], labels: np.ndarray, label_names: list[str],
             latency_texts: int = 200, batch_size: int = 32, gflops: Callable[[System, float], float] | None = None,
             log: Callable[[str], None] = print, large_batch: bool = False) -> list[Row]:
    """Accuracy and layers on all texts; latency on the first `latency_texts`; throughput on all (also at
    batch LARGE_BATCH with `large_batch`)."""
    index = {name: i for i, name in enumerate(label_names)}
    quality = {}
    for s in systems:
        log(f"accuracy: {s.name}")
        step = batch_size if s.batched else 1
        preds, layers = [], []
        for i in range(0, len(texts), step):
            p, l = s.predict(texts[i : i + step])
            preds += list(p)
            layers += list(l)
        pred_idx = np.array([index[p] for p in preds])
        quality[s.name] = (float((pred_idx == labels).mean()), float(np.mean(layers)))
    sample = texts[:latency_texts]
    log(f"batch-1 latency on {len(sample)} texts, {len(systems)} systems in blocks, two rounds")
    lat = time_batch1(systems, sample)
    log(f"throughput at batch {batch_size} on {len(texts)} texts")
    thr, batch_times = time_throughput(systems, texts, batch_size)
    large: dict[str, float] = {}
    if large_batch:
        log(f"throughput at batch {LARGE_BATCH} on {len(texts)} texts")
        large, _ = time_throughput(systems, texts, LARGE_BATCH)
    rows = []
    for s in systems:
        acc, layers = quality[s.name]
        rows.append(Row(
            name=s.name, kind=s.kind, speed=s.speed, accuracy=acc, average_layers=layers,
            gflops_per_text=None if gflops is None else gflops(s, layers),
            p50_ms_b1=1e3 * statistics.median(lat[s.name]), p95_ms_b1=1e3 * percentile(lat[s.name], 95),
            throughput_b32=thr.get(s.name),
            p50_ms_b32=1e3 * statistics.median(batch_times[s.name]) if s.name in batch_times else None,
            p95_ms_b32=1e3 * percentile(batch_times[s.name], 95) if s.name in batch_times else None,
            size_mb=None if s.size_bytes is None else s.size_bytes / 1e6, throughput_b256=large.get(s.name),
        ))
    return rows


def add_ratios(rows: list[Row], baselines: dict[str, str]) -> None:
    """rows[i].ratios['speedup_vs_<key>'] = baseline p50 / row p50 (batch 1), and throughput ratios."""
    by_name = {r.name: r for r in rows}
    for key, name in baselines.items():
        base = by_name.get(name)
        if base is None:
            continue
        for r in rows:
            r.ratios[f"b1_speedup_vs_{key}"] = base.p50_ms_b1 / r.p50_ms_b1
            if r.throughput_b32 and base.throughput_b32:
                r.ratios[f"b32_throughput_vs_{key}"] = r.throughput_b32 / base.throughput_b32


def markdown(rows: list[Row], title: str, ratio_keys: list[str]) -> str:
    head = ["system", "speed", "accuracy %", "avg layers", "GFLOPs/text", "p50 ms (b1)", "p95 ms (b1)",
            "p50 ms (b32)", "p95 ms (b32)", "texts/s (b32)", "size MB"]
    extra = [(label, key, spec) for label, key, spec in (("texts/s (b256)", "throughput_b256", ".0f"),
                                                          ("peak RSS MB", "peak_rss_mb", ".0f"))
             if any(getattr(r, key) is not None for r in rows)]
    head += [label for label, _, _ in extra] + ratio_keys
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    for r in rows:
        cells = [r.name, fmt(r.speed, "g"), f"{100 * r.accuracy:.2f}", f"{r.average_layers:.2f}",
                 fmt(r.gflops_per_text, ".3f"), f"{r.p50_ms_b1:.3f}", f"{r.p95_ms_b1:.3f}",
                 fmt(r.p50_ms_b32, ".2f"), fmt(r.p95_ms_b32, ".2f"), fmt(r.throughput_b32, ".0f"),
                 fmt(r.size_mb, ".1f")]
        cells += [fmt(getattr(r, key), spec) for _, key, spec in extra]
        cells += [fmt(r.ratios.get(k), ".2f") for k in ratio_keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def machine() -> dict[str, str]:
    import onnxruntime as ort

    return {"machine": platform.machine(), "processor": platform.processor(), "cores": str(os.cpu_count()),
            "python": platform.python_version(), "onnxruntime": ort.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def write_results(out: Path, stem: str, payload: dict, table: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(table, encoding="utf-8")
    return json_path, md_path


def rows_json(rows: list[Row]) -> list[dict]:
    return [asdict(r) for r in rows]
