"""Where a bundle's time goes: per-part timing at batch 1 (calibration, the bench) and
onnxruntime's per-operator profile of the compiled graph, and the machine the numbers came from."""

from __future__ import annotations

import collections
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from runtime.errors import BundleError
from runtime.manifest import GRAPH_INPUTS
from runtime.model import EdgeModel


def layer_times(model: EdgeModel, texts: list[str], repeats: int = 3) -> tuple[float, np.ndarray]:
    """Mean seconds per text at batch 1 of (tokenize + embed, each layer with its exit test (L,)),
    best of `repeats` per text, walking the parts as the early-exit run does."""
    if model.full:
        raise BundleError(f"{model.path} holds one graph without exits; it has no parts to time")
    front, layers = [], []
    for text in texts:
        best = (float("inf"), [])
        for _ in range(repeats):
            start = time.perf_counter()
            engine = model.staged_engine
            chain = engine.chain(model.batch(*model.encode([text])), host=True)
            t_front = time.perf_counter() - start
            per = []
            start = time.perf_counter()
            for _, logits in engine.walk(chain):
                model.rule.uncertainty(logits)
                per.append(time.perf_counter() - start)
                start = time.perf_counter()
            if t_front + sum(per) < best[0] + sum(best[1]):
                best = (t_front, per)
        front.append(best[0])
        layers.append(best[1])
    return float(np.mean(front)), np.mean(np.array(layers), axis=0)


def profile_graph(model: EdgeModel, texts: list[str], target: Path, speed: float | None = None) -> dict[str, float]:
    """onnxruntime's profile of one batch of `texts` through the compiled graph at `speed` (default: the
    bundle's): the raw Chrome-trace JSON written to `target`, and milliseconds per operator type."""
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(target.with_suffix(""))
    session = ort.InferenceSession(str(Path(model.path) / model.manifest.graph.file), options,
                                   providers=["CPUExecutionProvider"])
    ids, mask = model.encoder(texts)
    speed = model.manifest.default_speed if speed is None else speed
    session.run(None, dict(zip(GRAPH_INPUTS, (ids, mask, np.array(speed, np.float32)))))
    os.replace(session.end_profiling(), target)
    per_op: dict[str, float] = collections.defaultdict(float)
    for e in json.loads(target.read_text()):
        op = e.get("args", {}).get("op_name", "?")
        # an If's time holds its branch's nodes, which the profile also lists one by one: not counted twice
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and op not in ("If", "Loop"):
            per_op[op] += e.get("dur", 0) / 1e3
    return dict(per_op)


def machine_description() -> str:
    """A short description of this machine for calibration tables."""
    return f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} cores"
