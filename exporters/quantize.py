"""Graph passes from file to file: int8 (CPU) and fp16 (GPU) with onnxruntime's own tools.

Each pass reads one ONNX file and writes another; the bundle writer applies
them part by part after the fp32 graphs have passed their torch checks.

int8 comes in several forms (INT8_METHODS): dynamic (activations quantized at run time, per tensor or
per output channel of the weights) and static QDQ (activation scales fixed from calibration texts run
through the fp32 parts). Which is fastest, and which keeps the answers, depends on the device and the
student, so `choose_int8` with method "auto" builds each, measures its label agreement with the fp32
parts and its speed on this machine, and keeps the fastest that agrees on >= 99% of the texts.
The embed graph's only int8 parts are its tables (Gather), int8 by row the same way for every method.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx

from runtime.files import atomic_write

PRECISIONS = ("fp32", "int8", "fp16")
# "dynamic-fp32-heads": dynamic int8 trunk, the exit head (nodes under /head/) left in fp32, for heads whose
# decisions sit near a threshold (multi-label sets, many classes) where int8 logits flip them
HEADS_FP32 = "dynamic-fp32-heads"
INT8_METHODS = ("dynamic", "dynamic-per-channel", "static", "static-per-channel", HEADS_FP32)
HEAD_SCOPE = "/head/"  # the exit head's node names in a layer graph (torch.onnx export scopes)
# the layer graph fused by onnxruntime's transformer optimizer first (Attention, SkipLayerNormalization, BiasGelu),
# then dynamic int8 over every op it quantizes (Attention -> QAttention, MatMul -> MatMulInteger): the Optimum way
FUSED = "fused-dynamic"
INT8_CHOICES = ("auto", *INT8_METHODS, FUSED)
MIN_AGREEMENT = 0.99  # auto keeps only methods whose labels agree with fp32 on at least this share of texts
CALIBRATION_TEXTS = 256  # texts whose activations set the static scales


@contextlib.contextmanager
def _quiet_quantizer():
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        yield
    finally:
        logging.getLogger().setLevel(quiet)


class _Feeds:
    """onnxruntime's CalibrationDataReader protocol over a list of feed dicts."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # pragma: no cover - only some calibraters ask
        pass


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike, method: str = "dynamic",
                  feeds: list[dict[str, np.ndarray]] | None = None, num_heads: int = 0, hidden: int = 0) -> Path:
    """int8 weights for MatMul/Gemm and the embedding tables (Gather: int8 rows with a scale each, dequantized
    after the lookup; 4x smaller). `method`: dynamic (activations quantized at run time) or static (QDQ, activation
    scales from `feeds`, the graph's inputs on calibration texts), each per tensor or "-per-channel"; HEADS_FP32:
    dynamic with the exit head's nodes kept fp32; FUSED:
    the layer graph fused first (`num_heads`, `hidden`), then dynamic over every op onnxruntime quantizes."""
    from exporters.weights import int8_tables
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quant_pre_process,
                                          quantize_dynamic, quantize_static)

    if method not in (*INT8_METHODS, FUSED):
        raise ValueError(f"unknown int8 method {method!r}; use one of {', '.join(INT8_CHOICES)}")
    dst = Path(dst)
    per_channel = method.endswith("per-channel")
    exclude: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, _quiet_quantizer():
        prepared = Path(tmp) / "prepared.onnx"
        if method == FUSED:
            from exporters.optimize import fuse

            fuse(Path(src), prepared, num_heads, hidden)
            quantize_dynamic(str(prepared), str(dst), weight_type=QuantType.QInt8,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
            return dst
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        int8_tables(prepared, prepared)  # tables int8 by row (onnxruntime quantizes a Gather's table per tensor)
        if method == HEADS_FP32:
            # quantize_dynamic turns a Gemm into MatMul + Add before it reads nodes_to_exclude: name both
            exclude = [f"{n.name}{tail}" for n in onnx.load(str(prepared)).graph.node
                       if n.name.startswith(HEAD_SCOPE) for tail in ("", "_MatMul")]
            if not exclude:
                raise ValueError(f"int8 method {method!r}: {src} has no exit head nodes (named {HEAD_SCOPE}...)")
        if method.startswith("static"):
            if not feeds:
                raise ValueError(f"int8 method {method!r} needs calibration inputs (give --data)")
            quantize_static(str(prepared), str(dst), _Feeds(feeds), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=["MatMul", "Gemm"], per_channel=per_channel,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        else:
            # DefaultTensorType: a fused graph's com.microsoft nodes (Attention, SkipLayerNormalization) leave ONNX
            # shape inference without the types of their outputs; those are fp32
            quantize_dynamic(str(prepared), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel,
                             op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=exclude,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return dst


def _chain(paths: list[Path], encoder, texts: list[str], batch: int = 32, keep_inputs: bool = False):
    """Run embed + layer graphs over `texts`: each layer's outputs (L, N, C), with `keep_inputs` each layer
    graph's feeds (for static calibration), and for per-token outputs (L, N, T, C) the tokens the exit rule
    reads (N, T) (else None)."""
    import onnxruntime as ort

    from runtime.exits import rule_mask
    from runtime.manifest import PAIR_INPUT, PART_INPUTS, PART_OUTPUTS, part_inputs

    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in paths]
    pair = PAIR_INPUT in {i.name for i in sessions[0].get_inputs()}  # a bundle made from text pairs
    (hidden_name, mask_name, rows_name) = PART_INPUTS["layer"]
    inputs: list[list[dict]] = [[] for _ in sessions[1:]]
    labels: list[list[np.ndarray]] = [[] for _ in sessions[1:]]
    read: list[np.ndarray] = []  # per batch, the tokens the exit rule reads (per-token outputs are compared there)
    for start in range(0, len(texts), batch):
        ids, mask, types = encoder.pairs(texts[start:start + batch])
        read.append(rule_mask(ids, mask, encoder.special_ids)[..., None])
        hidden = sessions[0].run(None, dict(zip(part_inputs("embed", pair), (ids, types))))[0]
        rows = np.arange(len(ids), dtype=np.int64)
        for k, session in enumerate(sessions[1:]):
            feed = {hidden_name: hidden, mask_name: mask, rows_name: rows}
            if keep_inputs:
                inputs[k].append(feed)
            hidden, logits = session.run(list(PART_OUTPUTS["layer"]), feed)
            labels[k].append(logits)
    outputs = np.stack([_rows_of(x) for x in labels])
    return outputs, inputs, _rows_of(read)[..., 0] if outputs.ndim == 4 else None


def _rows_of(batches: list[np.ndarray]) -> np.ndarray:
    """One head's outputs of every batch as one array: per-token outputs (B, T, C), each batch as wide as its
    longest text, are padded with zeros to the widest (the same in every chain over the same texts)."""
    from runtime.tokenize import pad_to_widest

    return np.concatenate(pad_to_widest(batches) if batches[0].ndim == 3 else batches)


def choose_int8(folder: Path, manifest, method: str = "dynamic", texts: list[str] | None = None,
                max_texts: int = 2000, repeats: int = 60, log=print, num_heads: int = 0) -> dict:
    """Rewrite the bundle's layer graphs in `folder` to int8 by `method` (INT8_CHOICES) and return the record
    for manifest.quantization. For a transformer student each candidate's layer graphs are built, chained
    over `texts` beside the fp32 graphs (labels of every exit compared) and timed at batch 1 and 32 here;
    "auto" keeps the fastest with >= MIN_AGREEMENT agreement at every exit (or the best-agreeing one), the
    fused form among them where the student's `num_heads` is given."""
    from exporters.measure import TIMING_SHAPES, cpu_session, layer_feeds, median_ms
    from runtime.choose import fastest
    from runtime.tokenize import TextEncoder

    if method not in INT8_CHOICES:
        raise ValueError(f"unknown int8 method {method!r}; use one of {', '.join(INT8_CHOICES)}")
    files = [s.file for s in manifest.parts]
    record: dict = {"method": method}
    if manifest.student != "transformer" or not texts:
        if method.startswith("static"):
            raise ValueError(f"int8 method {method!r} needs calibration texts (--data) and a transformer student")
        chosen = "dynamic" if method == "auto" else method
        for name in files:
            _replace(folder / name, lambda src, dst: quantize_int8(src, dst, chosen))
        why = "asked for" if method != "auto" else \
            ("no --data to calibrate and compare on: dynamic" if texts is None or not texts else "one-graph student")
        return {**record, "chosen": chosen, "why": why}
    texts = texts[:max_texts]
    encoder = TextEncoder.from_file(folder / manifest.tokenizer, manifest.max_length)
    embed, *layers = files
    calibration = texts[:: max(1, len(texts) // CALIBRATION_TEXTS)][:CALIBRATION_TEXTS]
    candidates = list(INT8_METHODS) + ([FUSED] if num_heads else []) if method == "auto" else [method]
    if FUSED in candidates and not num_heads:
        raise ValueError(f"int8 method {FUSED!r} needs the student's number of attention heads")
    hidden = manifest.hidden_size
    shapes = {f"{b}x{t}": layer_feeds(b, t, hidden, seed=b) for b, t in TIMING_SHAPES}
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp_name:
        tmp = Path(tmp_name)
        plain = [folder / f for f in files]
        reference, _, read = _chain(plain, encoder, texts)
        feeds = None
        if any(m.startswith("static") for m in candidates):
            _, feeds, _ = _chain(plain, encoder, calibration, keep_inputs=True)
        quantize_int8(folder / embed, tmp / embed, "dynamic")
        results: dict[str, dict] = {}
        for candidate in candidates:
            (tmp / candidate).mkdir()
            for k, name in enumerate(layers):
                quantize_int8(folder / name, tmp / candidate / name, candidate,
                              feeds[k] if feeds and candidate.startswith("static") else None, num_heads, hidden)
            got, _, _ = _chain([tmp / embed] + [tmp / candidate / f for f in layers], encoder, texts)
            same = manifest.rule().agree(got, reference, mask=read)  # (L, N): the same class / set / value / tags
            results[candidate] = {"agreement": [round(float(a), 5) for a in same.mean(axis=1)]}
        sessions = {c: [cpu_session(tmp / c / f) for f in layers] for c in candidates}
        timers = {c: (lambda c=c: {shape: sum(median_ms(s, feed, repeats) for s in sessions[c])
                                   for shape, feed in shapes.items()}) for c in candidates}
        choice = fastest(timers, {c: min(r["agreement"]) for c, r in results.items()}, MIN_AGREEMENT,
                         baseline="dynamic" if "dynamic" in candidates else None)
        sessions.clear()
        for candidate, r in results.items():
            r["ms"] = {shape: round(v, 4) for shape, v in choice.ms[candidate].items()}
            log(f"int8 {candidate}: agreement with fp32 per exit {', '.join(f'{a:.4f}' for a in r['agreement'])}; "
                + ", ".join(f"batch {s} {v:.3f} ms" for s, v in r["ms"].items()))
        chosen = choice.chosen
        if choice.eligible:
            why = "asked for" if method != "auto" else (
                f"fastest here of those agreeing with fp32 on >= {MIN_AGREEMENT:.0%} of {len(texts)} texts at every "
                f"exit ({choice.relative[chosen]:.2f}x dynamic's time)")
        else:
            why = (f"no method agrees with fp32 on >= {MIN_AGREEMENT:.0%} at every exit; the best-agreeing "
                   f"({min(results[chosen]['agreement']):.4f})")
        os.replace(tmp / embed, folder / embed)
        for name in layers:
            os.replace(tmp / chosen / name, folder / name)
    log(f"int8: {chosen} ({why})")
    return {**record, "chosen": chosen, "why": why, "texts": len(texts), "calibration_texts":
            len(calibration) if any(m.startswith("static") for m in candidates) else 0, "candidates": results}


def _replace(path: Path, make) -> None:
    atomic_write(path, lambda tmp: make(path, tmp))


def convert_fp16(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """fp16 weights and compute, fp32 inputs and outputs (for the CUDA provider)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return Path(dst)


PASSES = {"int8": quantize_int8, "fp16": convert_fp16}


def precision_rewrite(precision: str):
    """A bundle writer's `rewrite(folder, manifest)` that rewrites every part graph to `precision`."""
    def rewrite(folder: Path, manifest):
        apply_precision(folder, [s.file for s in manifest.parts], precision)
        manifest.precision = precision
        return manifest

    return rewrite


def apply_precision(folder: Path, files: list[str], precision: str) -> None:
    """Rewrite each file in `folder` to `precision` in place."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return
    for name in files:
        _replace(folder / name, PASSES[precision])
