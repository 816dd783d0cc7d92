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
from runtime.exits import rule_mask
from runtime.manifest import part_inputs
from runtime.model import EdgeModel


def layer_times(model: EdgeModel, texts: list[str], repeats: int = 3) -> tuple[float, np.ndarray]:
    """Mean seconds per text at batch 1 of (tokenize + embed, each layer with its exit test (L,)),
    best of `repeats` per text, walking the parts as the early-exit run does."""
    if model.full:
        raise BundleError(f"{model.path} holds one graph without exits; it has no parts to time")
    front, layers = [], []
    engine = model.staged_engine
    for text in texts:
        best = (float("inf"), [])
        for _ in range(repeats):
            start = time.perf_counter()
            batch = model.batch(*model.encode([text]))
            tokens = rule_mask(batch.ids, batch.mask, engine.special_ids) if model.rule.per_token else None
            chain = engine.chain(batch, host=True)
            t_front = time.perf_counter() - start
            per = []
            start = time.perf_counter()
            for _, logits in engine.walk(chain):
                model.rule.uncertainty(logits, mask=tokens)
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
    speed = model.manifest.default_speed if speed is None else speed
    names = part_inputs("compiled", model.manifest.text_pair)  # a pair bundle's graph takes token_type_ids too
    session.run(None, model.batch(*model.encode(model.items(texts))).feeds(names, speed))
    os.replace(session.end_profiling(), target)
    per_op: dict[str, float] = collections.defaultdict(float)
    for op, ms in kernel_events(json.loads(target.read_text())):
        per_op[op] += ms
    return dict(per_op)


def kernel_events(events: list[dict]):
    """(operator type, milliseconds) of each kernel an onnxruntime profile ran. An If's (or Loop's) own time
    holds its branch's nodes, which the profile also lists one by one: it is not counted twice."""
    for e in events:
        op = e.get("args", {}).get("op_name", "?")
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and op not in ("If", "Loop"):
            yield op, e.get("dur", 0) / 1e3


def machine_description() -> str:
    """A short description of this machine for calibration tables."""
    return f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} cores"


# operator types by what they do, for the kernel profile (anything else is "other")
KERNEL_GROUPS = {
    "matrix products": {"MatMul", "FusedMatMul", "Gemm", "FusedGemm", "MatMulInteger", "MatMulIntegerToFloat",
                        "QLinearMatMul", "DynamicQuantizeMatMul", "QGemm", "MatMulNBits"},
    "attention": {"Attention", "MultiHeadAttention", "QAttention", "Softmax", "LogSoftmax"},
    "normalisation": {"LayerNormalization", "SkipLayerNormalization", "EmbedLayerNormalization",
                      "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization"},
    "activation": {"Gelu", "BiasGelu", "FastGelu", "QuickGelu", "Erf", "Tanh", "Relu", "Sigmoid"},
    "shape bookkeeping": {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Reshape", "Slice", "Transpose",
                          "Expand", "ConstantOfShape", "Constant", "Cast", "Range", "Size", "Identity", "Flatten"},
    "exit rule and compaction": {"ReduceMax", "ReduceSum", "ReduceMean", "Exp", "Log", "Less", "Greater", "Not",
                                 "And", "Or", "Where", "NonZero", "Compress", "ScatterND", "GatherND",
                                 "GatherElements", "Clip", "ArgMax", "Equal", "Abs", "Max", "Min"},
    "quantize / dequantize": {"DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear"},
}


def kernel_group(op: str) -> str:
    return next((group for group, ops in KERNEL_GROUPS.items() if op in ops), "other")


def kernel_profile(model: EdgeModel, texts: list, speed: float = 0.0) -> dict:
    """The compiled graph run at batch 1 on each of `texts` at `speed`, one thread, default session options,
    under onnxruntime's profiler: kernels executed per text (mean; an If counts as its branch's kernels, not
    itself), milliseconds per text by group of operators (they add up to `ms_per_text`), and per layer."""
    import tempfile

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(Path(model.path) / model.manifest.graph.file), options,
                                       providers=["CPUExecutionProvider"])
        items = model.items(texts)
        names = part_inputs("compiled", model.manifest.text_pair)
        for item in items:
            session.run(None, model.batch(*model.encode([item])).feeds(names, speed))
        events = json.loads(Path(session.end_profiling()).read_text())
    kernels, ms = 0, collections.defaultdict(float)
    for op, took in kernel_events(events):
        kernels += 1
        ms[kernel_group(op)] += took / len(items)
    per_text = kernels / len(items)
    return {"texts": len(items), "speed": speed, "kernels_per_text": round(per_text, 2),
            "kernels_per_layer": round(per_text / model.num_layers, 2),
            "ms_by_group": {k: round(v, 4) for k, v in sorted(ms.items(), key=lambda kv: -kv[1])},
            "ms_per_text": round(sum(ms.values()), 4)}
