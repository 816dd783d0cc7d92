"""int8 storage, fp32 compute: a graph's matrix weights kept as int8 and dequantized inside the graph.

Each fp32 weight matrix that a MatMul, Gemm or fused Attention reads, and each embedding table a Gather reads
(the main graph's initializers, wherever the reading node sits), is stored as int8 with one scale per output
column (per row for a table; symmetric), and a Cast and a Mul in the main graph give the fp32 matrix back under
its old name. onnxruntime folds those at load (their inputs are constants), so the session computes in fp32 as
before while the file is about a quarter of the bytes: a candidate for the web bundle, where WASM's int8 kernels
gain far less over fp32 than native ones do (edgekd.web_choice).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# op type -> (which input is the weight, which of its axes holds the output channels)
WEIGHT_INPUTS = {"MatMul": (1, 1), "Attention": (1, 1), "Gather": (0, 0)}  # Gather: an embedding table, by row


def _readers(graph, out: dict[str, list[tuple[str, int, dict]]]) -> None:
    """Every node, in `graph` and its subgraphs, that reads a name: name -> [(op, input index, attributes)]."""
    import onnx

    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute
                 if a.type not in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)}
        for i, name in enumerate(node.input):
            out.setdefault(name, []).append((node.op_type, i, attrs))
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _readers(a.g, out)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    _readers(g, out)


def _channel_axis(op: str, index: int, attrs: dict) -> int | None:
    if op == "Gemm" and index == 1:
        return 0 if attrs.get("transB", 0) else 1
    wanted = WEIGHT_INPUTS.get(op)
    return wanted[1] if wanted and wanted[0] == index else None


def _int8_by_channel(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """A matrix as symmetric int8 with one fp32 scale per index of `axis` (0: per row, 1: per column), and the
    scales shaped to broadcast against it (a zero row or column gets scale 1)."""
    scale = np.abs(w).max(axis=1 - axis) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    shaped = scale[None, :] if axis == 1 else scale[:, None]
    return np.clip(np.round(w / shaped), -127, 127).astype(np.int8), shaped


def int8_weights(src: str | os.PathLike, dst: str | os.PathLike, min_size: int = 1024) -> dict:
    """Write `src` to `dst` with its weight matrices (at least `min_size` values) stored int8 and dequantized in
    the graph; returns {"weights": how many, "bytes_before", "bytes_after"}."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    readers: dict[str, list] = {}
    _readers(graph, readers)
    kept, nodes, count = [], [], 0
    for init in graph.initializer:
        uses = readers.get(init.name, [])
        axes = {_channel_axis(op, i, attrs) for op, i, attrs in uses}
        if init.data_type != onnx.TensorProto.FLOAT or len(init.dims) != 2 or not uses or None in axes \
                or len(axes) != 1 or int(np.prod(init.dims)) < min_size:
            kept.append(init)
            continue
        q, shaped = _int8_by_channel(numpy_helper.to_array(init), axes.pop())
        base = init.name
        kept += [numpy_helper.from_array(q, base + "_int8"), numpy_helper.from_array(shaped, base + "_scale")]
        # Cast and Mul, not DequantizeLinear: onnxruntime's constant folding leaves DequantizeLinear alone (for
        # its quantized-kernel fusions) unless a session asks otherwise, and folds these by default
        nodes += [helper.make_node("Cast", [base + "_int8"], [base + "_float"], name=base + "_cast",
                                   to=onnx.TensorProto.FLOAT),
                  helper.make_node("Mul", [base + "_float", base + "_scale"], [base], name=base + "_scale_up")]
        count += 1
    del graph.initializer[:]
    graph.initializer.extend(kept)
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old)
    onnx.save(model, str(dst))
    return {"weights": count, "bytes_before": Path(src).stat().st_size, "bytes_after": Path(dst).stat().st_size}


def int8_tables(src: str | os.PathLike, dst: str | os.PathLike, min_size: int = 1024) -> int:
    """Write `src` to `dst` with each embedding table (an fp32 matrix of at least `min_size` values that only
    Gathers read, by row) stored int8 with one scale per row, dequantized after the lookup: Gather(int8 table),
    Cast, Mul by Gather(row scales). The file and the session hold a quarter of the table's bytes (onnxruntime
    cannot fold this Mul: its input is the looked-up rows), and a row's error is set by its own largest value,
    not the table's; returns how many tables."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    readers: dict[str, list] = {}
    _readers(graph, readers)
    main = {}  # name -> how many of the main graph's nodes read it (a table read in a subgraph stays as it is)
    for node in graph.node:
        for name in node.input:
            main[name] = main.get(name, 0) + 1
    tables = {}
    for init in graph.initializer:
        uses = readers.get(init.name, [])
        lookups = all(op == "Gather" and i == 0 and attrs.get("axis", 0) == 0 for op, i, attrs in uses)
        if init.data_type == onnx.TensorProto.FLOAT and len(init.dims) == 2 and uses and lookups \
                and main.get(init.name) == len(uses) and int(np.prod(init.dims)) >= min_size:
            tables[init.name] = init
    kept = [init for init in graph.initializer if init.name not in tables]
    for name, init in tables.items():
        q, scale = _int8_by_channel(numpy_helper.to_array(init), 0)
        kept += [numpy_helper.from_array(q, name + "_int8"), numpy_helper.from_array(scale, name + "_row_scale")]
    nodes = []
    for node in graph.node:
        if node.op_type != "Gather" or node.input[0] not in tables:
            nodes.append(node)
            continue
        table, ids, out = node.input[0], node.input[1], node.output[0]
        nodes += [helper.make_node("Gather", [table + "_int8", ids], [out + "_int8"], name=node.name, axis=0),
                  helper.make_node("Cast", [out + "_int8"], [out + "_rows"], name=node.name + "_cast",
                                   to=onnx.TensorProto.FLOAT),
                  helper.make_node("Gather", [table + "_row_scale", ids], [out + "_scale"],
                                   name=node.name + "_scale", axis=0),
                  helper.make_node("Mul", [out + "_rows", out + "_scale"], [out], name=node.name + "_scale_up")]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(dst))
    return len(tables)
