"""onnxruntime's fused operators written back as standard ONNX operators (issue 40: "where a target cannot
run a fused op, pack rebuilds the form it can run from the layer graphs the full bundle keeps").

`export --optimize auto` keeps a layer graph fused (`com.microsoft` `Attention`, `SkipLayerNormalization`,
`BiasGelu`, ...) where that form is faster here, and the full bundle stores only the kept form. A runtime
without onnxruntime's contrib kernels (a reduced or `--disable_contrib_ops` build of ONNX Runtime, or another
engine) needs `ai.onnx` operators only: `defuse` rewrites each fused node as the standard subgraph it stands
for, in place and in order, so `pack --portable` can compile `model.onnx` again from the rewritten layers.
What the rewrite does not know (past state, causal or 3-D masks, unequal Q/K/V sizes, a fused node's
statistics outputs) is refused by name rather than guessed.
"""

from __future__ import annotations

import copy
import math
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtime.errors import EdgeKDError as ExportError
from runtime.manifest import GRAPH_FILE, Manifest

CONTRIB = "com.microsoft"
MIN_OPSET = 17  # LayerNormalization


class _Writer:
    """New nodes and constants for one fused node, under a prefix no other name in the graph has."""

    def __init__(self, graph: onnx.GraphProto, prefix: str):
        self.graph, self.prefix, self.nodes, self.count = graph, prefix, [], 0

    def name(self, what: str) -> str:
        self.count += 1
        return f"{self.prefix}/{what}_{self.count}"

    def const(self, value, dtype=np.float32) -> str:
        name = self.name("const")
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        output = output or self.name(op_type)
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=self.name(op_type + "_node"), **attrs))
        return output


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _inputs(node: onnx.NodeProto, count: int) -> list[str]:
    return [node.input[i] if i < len(node.input) else "" for i in range(count)]


def _gelu(w: _Writer, x: str, output: str) -> None:
    """0.5 x (1 + erf(x / sqrt 2)): the exact GELU that BiasGelu and Gelu compute."""
    erf = w.op("Erf", [w.op("Mul", [x, w.const(1 / math.sqrt(2))])])
    w.op("Mul", [w.op("Mul", [x, w.op("Add", [erf, w.const(1.0)])]), w.const(0.5)], output)


def _bias_gelu(w: _Writer, node: onnx.NodeProto, _ranks: dict) -> None:
    x, bias = _inputs(node, 2)
    _gelu(w, w.op("Add", [x, bias]) if bias else x, node.output[0])


def _fast_gelu(w: _Writer, node: onnx.NodeProto, _ranks: dict) -> None:
    """0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), after the optional bias."""
    x, bias = _inputs(node, 2)
    x = w.op("Add", [x, bias]) if bias else x
    inner = w.op("Add", [x, w.op("Mul", [w.op("Mul", [x, w.op("Mul", [x, x])]), w.const(0.044715)])])
    tanh = w.op("Tanh", [w.op("Mul", [inner, w.const(math.sqrt(2 / math.pi))])])
    w.op("Mul", [w.op("Mul", [x, w.op("Add", [tanh, w.const(1.0)])]), w.const(0.5)], node.output[0])


def _skip_layer_norm(w: _Writer, node: onnx.NodeProto, _ranks: dict) -> None:
    """LayerNormalization(input + skip (+ bias)); the sum is also the fourth output where one is asked for."""
    x, skip, gamma, beta, bias = _inputs(node, 5)
    outputs = list(node.output) + [""] * (4 - len(node.output))
    if outputs[1] or outputs[2]:
        raise ExportError(f"{node.name or node.op_type}: SkipLayerNormalization's mean / inv_std_var outputs "
                          "have no standard form here")
    total = w.op("Add", [x, skip])
    total = w.op("Add", [total, bias], outputs[3] or None) if bias else total
    if outputs[3] and not bias:
        total = w.op("Identity", [total], outputs[3])
    eps = _attrs(node).get("epsilon", 1e-12)
    w.op("LayerNormalization", [total, gamma] + ([beta] if beta else []), outputs[0], axis=-1, epsilon=eps)


def _attention(w: _Writer, node: onnx.NodeProto, ranks: dict) -> None:
    """Multi-head self-attention from one packed QKV projection, as com.microsoft.Attention computes it: a 1-D
    mask_index holds each row's length (keys past it are masked), a 2-D one is the 0/1 key mask."""
    attrs = _attrs(node)
    x, weight, bias, mask, *rest = _inputs(node, 6)
    sizes = attrs.get("qkv_hidden_sizes")
    unknown = [k for k in ("unidirectional", "do_rotary", "past_present_share_buffer") if attrs.get(k)]
    if any(rest) or len(node.output) > 1 and node.output[1] or unknown or sizes and len(set(sizes)) != 1:
        raise ExportError(f"{node.name or 'Attention'}: past state, causal masking, rotary embeddings or unequal "
                          "Q/K/V sizes have no standard form here")
    heads = int(attrs["num_heads"])
    hidden = int(_initializer(w.graph, weight).shape[1]) // 3
    head = hidden // heads
    qkv = w.op("MatMul", [x, weight])
    qkv = w.op("Add", [qkv, bias]) if bias else qkv
    split = w.const([hidden] * 3, np.int64)
    q, k, v = (w.name(s) for s in "qkv")
    w.nodes.append(helper.make_node("Split", [qkv, split], [q, k, v], name=w.name("Split_node"), axis=-1))
    shape = w.const([0, 0, heads, head], np.int64)
    q = w.op("Transpose", [w.op("Reshape", [q, shape])], perm=[0, 2, 1, 3])
    k = w.op("Transpose", [w.op("Reshape", [k, shape])], perm=[0, 2, 3, 1])
    v = w.op("Transpose", [w.op("Reshape", [v, shape])], perm=[0, 2, 1, 3])
    scores = w.op("Mul", [w.op("MatMul", [q, k]), w.const(attrs.get("scale", 1 / math.sqrt(head)))])
    if mask:
        scores = w.op("Add", [scores, _additive_mask(w, x, mask, ranks.get(mask), attrs)])
    context = w.op("MatMul", [w.op("Softmax", [scores], axis=-1), v])
    w.op("Reshape", [w.op("Transpose", [context], perm=[0, 2, 1, 3]), w.const([0, 0, hidden], np.int64)],
         node.output[0])


def _additive_mask(w: _Writer, x: str, mask: str, rank: int | None, attrs: dict) -> str:
    """(batch, 1, 1, keys): 0 where a key is kept, mask_filter_value where it is masked."""
    if rank == 1:  # lengths: keys at positions >= the row's length are masked
        length = w.op("Squeeze", [w.op("Shape", [x], start=1, end=2), w.const([0], np.int64)])
        positions = w.op("Range", [w.const(0, np.int64), length, w.const(1, np.int64)])
        ends = w.op("Unsqueeze", [w.op("Cast", [mask], to=TensorProto.INT64), w.const([1], np.int64)])
        keep = w.op("Less", [positions, ends])
    elif rank == 2:
        keep = w.op("Cast", [mask], to=TensorProto.BOOL)
    else:
        raise ExportError(f"Attention's mask_index {mask!r} has rank {rank}: only a 1-D (lengths) or 2-D (0/1) "
                          "mask has a standard form here")
    filler = w.op("Where", [keep, w.const(0.0), w.const(attrs.get("mask_filter_value", -10000.0))])
    return w.op("Unsqueeze", [filler, w.const([1, 2], np.int64)])


def _initializer(graph: onnx.GraphProto, name: str) -> np.ndarray:
    for tensor in graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    raise ExportError(f"Attention's weight {name!r} is not an initializer: its size cannot be read")


REWRITES = {"BiasGelu": _bias_gelu, "Gelu": lambda w, n, r: _gelu(w, n.input[0], n.output[0]),
            "FastGelu": _fast_gelu, "SkipLayerNormalization": _skip_layer_norm, "Attention": _attention}


def defuse(model: onnx.ModelProto) -> int:
    """Rewrite `model`'s fused com.microsoft nodes (top-level graph) as standard operators, in place; returns
    how many were rewritten. Raises ExportError naming any fused operator it has no rewrite for."""
    graph = model.graph
    fused = [n for n in graph.node if n.domain == CONTRIB]
    if not fused:
        return 0
    unknown = sorted({n.op_type for n in fused} - set(REWRITES))
    if unknown:
        raise ExportError(f"no standard form for onnxruntime's fused {', '.join(unknown)}")
    opset = next((o for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset.version < MIN_OPSET:
        raise ExportError(f"defusing needs opset >= {MIN_OPSET} (LayerNormalization); the graph has "
                          f"{opset.version if opset else 'none'}")
    ranks = _ranks(model)
    nodes = []
    for index, node in enumerate(graph.node):
        if node.domain != CONTRIB:
            nodes.append(node)
            continue
        writer = _Writer(graph, f"defused{index}")
        REWRITES[node.op_type](writer, node, ranks)
        nodes.extend(writer.nodes)
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [o for o in model.opset_import if o.domain != CONTRIB]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    return len(fused)


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    """The rank of every value whose shape onnx's inference finds (the fused nodes' masks come from standard
    operators, so theirs are found)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name: len(v.type.tensor_type.shape.dim) for v in values
            if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape")}


def rebuild_portable(bundle: Path, manifest: Manifest, work: Path, atol: float = 1e-4) -> Path:
    """`model.onnx` of standard operators only, compiled again (and checked against the staged graphs, as export
    checks it) from `bundle`'s layer graphs with every fused one defused, in `work`; returns its path."""
    from exporters.bundle import add_compiled_graph

    manifest = copy.deepcopy(manifest)
    manifest.parts = manifest.staged
    for part in manifest.parts:
        model = onnx.load(str(bundle / part.file))
        defuse(model)
        onnx.save(model, str(work / part.file))
        part.form = "portable"
    shutil.copyfile(bundle / manifest.tokenizer, work / manifest.tokenizer)
    add_compiled_graph(work, manifest, atol)
    return work / GRAPH_FILE
