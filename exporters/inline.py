"""Copying part graphs into one: the compiler's (exporters/compile.py) graph plumbing.

`Builder` collects one (sub)graph's nodes and weights with names unique across the model; `inline` copies a part
graph into a builder with its inputs and outputs bound (a layer graph's own gathers of its `rows` input taken out,
its mask nodes left out where their values are given, its weights written once for every copy); `MaskPart` finds
a layer graph's nodes that read only its mask, so the compiler computes them where the mask changes.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import GraphProto, TensorProto, helper, numpy_helper

from runtime.manifest import PART_INPUTS


class Builder:
    """Nodes and initializers of one (sub)graph, with names unique across the model."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.value_info: list[onnx.ValueInfoProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, outputs: int = 1,
           **attrs) -> str | list[str]:
        names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=self.name(op_type), **attrs))
        return names[0] if outputs == 1 else names

    def const(self, value, dtype, hint: str = "c") -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def graph(self, name: str, outputs: list[onnx.ValueInfoProto]) -> GraphProto:
        return helper.make_graph(self.nodes, name, [], outputs, self.initializers, value_info=self.value_info)


def bypass_rows(graph: GraphProto, inputs: dict[str, str]) -> tuple[dict[str, str], set[int]]:
    """A layer graph's gathers of its `rows` input (axis 0 of hidden and mask) taken out: each gather's output
    bound to what it gathers from. Returns those bindings and the indices of the nodes to leave out; refuses a
    graph that uses `rows` otherwise."""
    rows = PART_INPUTS["layer"][2]
    bound, skip = {}, set()
    for i, node in enumerate(graph.node):
        if rows not in node.input:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if node.op_type != "Gather" or list(node.input).index(rows) != 1 or axis != 0 or node.input[0] not in inputs:
            raise ValueError(f"layer graph {graph.name!r} uses its rows input in a {node.op_type} node; the "
                             "compiler can only take out row gathers of its inputs")
        bound[node.output[0]] = inputs[node.input[0]]
        skip.add(i)
    return bound, skip


class MaskPart:
    """The nodes of a layer graph that read only its mask (and constants): the attention's mask processing and
    the exit head's pooling weights. They give the same values in every layer that gets the same mask, so the
    compiler computes them where the mask changes (the main graph, the compaction branch) and hands the values
    on where it does not."""

    def __init__(self, graph: GraphProto):
        hidden, mask, _ = PART_INPUTS["layer"]
        aliases, gathers = bypass_rows(graph, {hidden: hidden, mask: mask})
        static = {i.name for i in graph.initializer}
        constants = {o for n in graph.node if n.op_type == "Constant" and not n.input for o in n.output}
        derived = {mask} | {k for k, v in aliases.items() if v == mask}
        self.aliases = {k: mask for k, v in aliases.items() if v == mask}
        self.nodes: list[int] = []
        for i, node in enumerate(graph.node):
            ins = [x for x in node.input if x]
            if i in gathers or not ins or not any(x in derived for x in ins):
                continue
            if all(x in derived or x in static or x in constants for x in ins):
                self.nodes.append(i)
                derived.update(node.output)
        mine = set(self.nodes)
        made = {o for i in self.nodes for o in graph.node[i].output}
        read_elsewhere = {x for i, n in enumerate(graph.node) if i not in mine and i not in gathers for x in n.input}
        read_elsewhere |= {o.name for o in graph.output}
        self.exported = [o for i in self.nodes for o in graph.node[i].output if o in read_elsewhere and o in made]
        # the constants the mask nodes read, copied with them
        self.constant_nodes = [i for i, n in enumerate(graph.node) if n.op_type == "Constant" and not n.input
                               and any(n.output[0] in graph.node[j].input for j in self.nodes)]
        self.signature = self._signature(graph)
        self.types = self._types(graph)

    def _signature(self, graph: GraphProto) -> bytes:
        """What the mask nodes compute, names aside: ops, attributes, the values of what they read."""
        import hashlib

        values = {i.name: i.SerializeToString() for i in graph.initializer}
        for i in self.constant_nodes:
            values[graph.node[i].output[0]] = graph.node[i].attribute[0].SerializeToString()
        local: dict[str, str] = {PART_INPUTS["layer"][1]: "mask", **{k: "mask" for k in self.aliases}}
        digest = hashlib.sha256()
        for j, i in enumerate(self.nodes):
            node = graph.node[i]
            digest.update(f"{node.op_type}|{node.domain}|".encode())
            for a in sorted(node.attribute, key=lambda a: a.name):
                digest.update(a.SerializeToString())
            for x in node.input:
                digest.update(local.get(x, "").encode() or hashlib.sha256(values.get(x, b"?")).digest())
            for m, o in enumerate(node.output):
                local[o] = f"n{j}o{m}"
        digest.update("|".join(local[o] for o in self.exported).encode())
        return digest.digest()

    def _types(self, graph: GraphProto) -> list[int]:
        """The element type of each exported value (ONNX shape inference over the mask nodes alone: standard
        operators, whatever the rest of the layer is built from)."""
        b = Builder("")
        names = self.copy(b, graph, "", PART_INPUTS["layer"][1])
        alone = helper.make_graph(b.nodes, "mask_part", [helper.make_tensor_value_info(
            PART_INPUTS["layer"][1], TensorProto.INT64, ["batch", "sequence"])],
            [helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None) for n in names], b.initializers)
        inferred = onnx.shape_inference.infer_shapes(helper.make_model(alone), strict_mode=False).graph
        types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.value_info, *inferred.output]}
        missing = [o for o in self.exported if not types.get(o)]
        if missing:
            raise ValueError(f"cannot type the mask values {missing} of layer graph {graph.name!r}")
        return [types[o] for o in self.exported]

    def copy(self, b: Builder, graph: GraphProto, prefix: str, mask: str) -> list[str]:
        """The mask nodes copied into `b`, reading `mask`; returns the names of the exported values there."""
        rename = {PART_INPUTS["layer"][1]: mask, **{k: mask for k in self.aliases}}
        wanted = {x for i in self.nodes for x in graph.node[i].input}
        for init in graph.initializer:
            if init.name in wanted:
                copy = TensorProto()
                copy.CopyFrom(init)
                copy.name = prefix + init.name
                b.initializers.append(copy)
        for i in sorted(self.constant_nodes + self.nodes):
            node = graph.node[i]
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.ClearField("input")
            copy.ClearField("output")
            copy.input.extend("" if x == "" else rename.get(x, prefix + x) for x in node.input)
            copy.output.extend(prefix + o for o in node.output)
            copy.name = prefix + (node.name or node.op_type)
            b.nodes.append(copy)
        return [prefix + o for o in self.exported]


def inline(b: Builder, graph: GraphProto, prefix: str, inputs: dict[str, str], outputs: dict[str, str],
            without_rows: bool = False, given: tuple[MaskPart, list[str]] | None = None,
            weights: tuple[Builder, str, set[str]] | None = None) -> None:
    """Copy `graph`'s nodes and weights into `b`, its inputs and outputs bound to the given names (a layer graph
    `without_rows`: its gathers of the rows input taken out, the rows being those it is given; `given`: its mask
    nodes left out, their values the names given; `weights`: (builder, prefix, names written): the weights go
    to that builder once, under that prefix, and every copy of the nodes reads them from there)."""
    rename = dict(inputs)
    bound, skip = bypass_rows(graph, inputs) if without_rows else ({}, set())
    rename.update(bound)
    if given is not None:
        part, names = given
        skip |= set(part.nodes)
        rename.update(zip(part.exported, names))
        read = {x for i, n in enumerate(graph.node) if i not in skip for x in n.input}
        skip |= {i for i, n in enumerate(graph.node) if n.op_type == "Constant" and not n.input
                 and not set(n.output) & read}  # the constants only the mask nodes read
    read = {x for i, n in enumerate(graph.node) if i not in skip for x in n.input} | {o.name for o in graph.output}
    for out in graph.output:
        rename[out.name] = outputs[out.name]
    for out in graph.output:
        if out.name in inputs or any(init.name == out.name for init in graph.initializer):
            raise ValueError(f"part output {out.name!r} is not computed by a node; cannot inline")
    missing = {i.name for i in graph.input} - set(inputs) - ({PART_INPUTS["layer"][2]} if without_rows else set())
    initializer_names = {init.name for init in graph.initializer}
    if missing - initializer_names:
        raise ValueError(f"part graph {graph.name!r} has unbound inputs {sorted(missing - initializer_names)}")

    shared = {init.name: weights[1] + init.name for init in graph.initializer} if weights else {}

    def new(name: str) -> str:
        return "" if name == "" else rename.get(name, shared.get(name, prefix + name))

    for init in graph.initializer:
        if init.name not in read:  # read by left-out nodes only
            continue
        if weights and new(init.name) in weights[2]:  # written by an earlier copy
            continue
        copy = TensorProto()
        copy.CopyFrom(init)
        copy.name = new(init.name)
        (weights[0] if weights else b).initializers.append(copy)
        if weights:
            weights[2].add(copy.name)
    for i, node in enumerate(graph.node):
        if i in skip:
            continue
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ValueError(f"part graph {graph.name!r} has a control-flow node ({node.op_type}); cannot inline")
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.ClearField("input")
        copy.ClearField("output")
        copy.input.extend(new(n) for n in node.input)
        copy.output.extend(new(n) for n in node.output)
        copy.name = prefix + (node.name or node.op_type)
        b.nodes.append(copy)
    for info in graph.value_info:
        copy = onnx.ValueInfoProto()
        copy.CopyFrom(info)
        copy.name = new(info.name)
        b.value_info.append(copy)


def token_mask(m: Builder, ids: str, mask: str, special_ids: list[int] | None) -> str:
    """The token rule's mask as floats (B, T) (runtime.exits.rule_mask): 1 on real tokens that are not the
    tokenizer's special ones."""
    last = m.const([-1], np.int64, "tokens_axis")
    specials = m.const(np.asarray(special_ids or [-1], np.int64), np.int64, "special_ids")
    hits = m.op("Equal", [m.op("Unsqueeze", [ids, last], "ids_3d"), specials], "is_special_at")
    count = m.op("ReduceSum", [m.op("Cast", [hits], "hits_f", to=TensorProto.FLOAT), last], "specials_at", keepdims=0)
    special = m.op("Greater", [count, m.const(0.0, np.float32, "no_special")], "special")
    real = m.op("And", [m.op("Cast", [mask], "real", to=TensorProto.BOOL), m.op("Not", [special], "word")])
    return m.op("Cast", [real], "rule_tokens", to=TensorProto.FLOAT)
