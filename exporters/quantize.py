"""Graph passes from file to file: int8 (CPU) and fp16 (GPU) with onnxruntime's own tools.

Each pass reads one ONNX file and writes another; the bundle writer applies
them stage by stage after the fp32 graphs have passed their torch checks.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import onnx

PRECISIONS = ("fp32", "int8", "fp16")


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Dynamic int8 quantization of MatMul/Gemm weights (activations quantized at run time) and of
    the embedding table (Gather: int8 rows, dequantized after the lookup; 4x smaller)."""
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    dst = Path(dst)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)
        try:
            quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
            quantize_dynamic(str(prepared), str(dst), weight_type=QuantType.QInt8, per_channel=False,
                             op_types_to_quantize=["MatMul", "Gemm", "Gather"])
        finally:
            logging.getLogger().setLevel(quiet)
    return dst


def convert_fp16(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """fp16 weights and compute, fp32 inputs and outputs (for the CUDA provider)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return Path(dst)


PASSES = {"int8": quantize_int8, "fp16": convert_fp16}


def precision_postprocess(precision: str):
    """A bundle writer's `postprocess(folder, manifest)` that rewrites every stage graph to `precision`."""
    def postprocess(folder: Path, manifest):
        apply_precision(folder, [s.file for s in manifest.stages], precision)
        manifest.precision = precision
        return manifest

    return postprocess


def apply_precision(folder: Path, files: list[str], precision: str) -> None:
    """Rewrite each file in `folder` to `precision` in place."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return
    for name in files:
        path = folder / name
        tmp = folder / f".{name}.{precision}"
        PASSES[precision](path, tmp)
        os.replace(tmp, path)
