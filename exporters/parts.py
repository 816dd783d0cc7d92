"""Part modules and their ONNX export.

An export is a mapping `{file name: PartSpec}`; each spec is exported to its
own graph with dynamic batch and sequence axes. The part wrappers below give
each graph the signature the runtime expects (see runtime/manifest.py).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from runtime.exits import TOKENS
from runtime.manifest import EMBED_FILE, FULL_FILE, PAIR_INPUT, PART_INPUTS, PART_OUTPUTS, layer_file, part_inputs

DEFAULT_OPSET = 17


class EmbedPart(nn.Module):
    """input_ids (B,T) [, token_type_ids (B,T) for pairs] -> hidden (B,T,H); the vocabulary remap (if any) is
    inside."""

    def __init__(self, embeddings: nn.Module):
        super().__init__()
        self.embeddings = embeddings

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        if token_type_ids is None:
            return self.embeddings(input_ids)
        return self.embeddings(input_ids, token_type_ids)


class LayerPart(nn.Module):
    """hidden (B,T,H), mask (B,T), rows (R,) -> hidden_out (R,T,H), logits (R,C) ((R,T,C): token tags).

    `rows` gathers the surviving rows first, so hidden states can stay on the
    device between parts while the batch shrinks.
    """

    def __init__(self, layer: nn.Module, head: nn.Module):
        super().__init__()
        self.layer = layer
        self.head = head

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor):
        hidden = hidden.index_select(0, rows)
        mask = mask.index_select(0, rows)
        hidden, _ = self.layer(hidden, mask)
        return hidden, self.head(hidden, mask)


class FullPart(nn.Module):
    """input_ids, mask (B,T) -> logits (B,C): a whole classifier as one graph."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        out = self.model(input_ids, mask) if token_type_ids is None else \
            self.model(input_ids, mask, token_type_ids=token_type_ids)
        if hasattr(out, "exit_logits"):
            return out.exit_logits[-1]
        return out.logits if hasattr(out, "logits") else out


@dataclass
class PartSpec:
    name: str
    kind: str  # embed | layer | full
    module: nn.Module
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)


_BT = {0: "batch", 1: "sequence"}


def student_part_specs(model: nn.Module, text_pair: bool = False) -> dict[str, PartSpec]:
    """The staged export of an early-exit student: embed.onnx + layer_NN.onnx.

    The contract (duck-typed, so exporters never import the training side):
    `model.embeddings(input_ids[, token_type_ids]) -> hidden`, `model.layers[i](hidden, mask) ->
    (hidden, _)` and `model.heads[i](hidden, mask) -> logits`. With `text_pair` the embed graph takes the
    pair's segment ids too.
    """
    embed_inputs, (hidden,) = list(part_inputs("embed", text_pair)), PART_OUTPUTS["embed"]
    specs = {EMBED_FILE: PartSpec("embed", "embed", EmbedPart(model.embeddings), embed_inputs, [hidden],
                                  {**{name: _BT for name in embed_inputs}, hidden: _BT})}
    (h_in, mask, rows), (h_out, logits) = PART_INPUTS["layer"], PART_OUTPUTS["layer"]
    per_token = getattr(getattr(model, "config", None), "problem", "") == TOKENS  # (R, T, C) tag logits
    logit_axes = {0: "rows", 1: "sequence"} if per_token else {0: "rows"}
    for index, (layer, head) in enumerate(zip(model.layers, model.heads), start=1):
        specs[layer_file(index)] = PartSpec(
            f"layer_{index}", "layer", LayerPart(layer, head), [h_in, mask, rows], [h_out, logits],
            {h_in: _BT, mask: _BT, rows: {0: "rows"}, h_out: {0: "rows", 1: "sequence"}, logits: logit_axes},
        )
    return specs


def full_part_spec(model: nn.Module, name: str = "full", text_pair: bool = False) -> dict[str, PartSpec]:
    """A classifier (student or teacher) as one graph: input_ids, mask [, token_type_ids] -> logits."""
    inputs, (logits,) = list(part_inputs("full", text_pair)), PART_OUTPUTS["full"]
    return {FULL_FILE: PartSpec(name, "full", FullPart(model), inputs, [logits],
                                {**{n: _BT for n in inputs}, logits: {0: "batch"}})}


def example_inputs(spec: PartSpec, hidden_size: int, vocab_size: int, batch: int = 2, length: int = 8):
    """Tracing inputs for a part (batch 2, length 8; axes are declared dynamic)."""
    ids = torch.randint(0, max(vocab_size, 1), (batch, length))
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[-1, length // 2 :] = 0
    if spec.kind == "embed":
        return (ids, pair_types(mask)) if PAIR_INPUT in spec.input_names else (ids,)
    if spec.kind == "layer":
        return (torch.randn(batch, length, hidden_size), mask, torch.arange(batch))
    return (ids, mask, pair_types(mask)) if PAIR_INPUT in spec.input_names else (ids, mask)


def pair_types(mask: torch.Tensor) -> torch.Tensor:
    """Segment ids for test inputs: the second half of each row's tokens is segment 1."""
    lengths = mask.sum(1, keepdim=True)
    positions = torch.arange(mask.shape[1])[None, :]
    return ((positions >= (lengths + 1) // 2) & (mask > 0)).long()


def constant_reshapes(path: Path) -> int:
    """Rewrite, in place, each Reshape whose target shape torch's exporter builds at run time from another
    tensor's leading dims (Shape -> Gather k -> Unsqueeze, at position k of a Concat with constants: the
    attention's head split and merge, `view(batch, length, heads, dim)`) into a constant shape that copies those
    dims (ONNX's 0 in a Reshape shape keeps the input's dim there), and drop the shape chains left unused.
    Valid where the data's leading dims are the ones the chain read, as in the student's attention; the export's
    checks against torch at several batch and sequence sizes (exporters/validate.py) hold the rewritten graph to
    that. Returns how many Reshapes were rewritten (issue 40: ~12 fewer kernels per layer of a portable graph)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    made = {o: n for n in graph.node for o in n.output}
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consts.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})

    def copied_dim(name: str, position: int) -> bool:
        """Whether `name` is Unsqueeze(Gather(Shape(x), position))."""
        u = made.get(name)
        g = made.get(u.input[0]) if u is not None and u.op_type == "Unsqueeze" else None
        if g is None or g.op_type != "Gather" or made.get(g.input[0]) is None or made[g.input[0]].op_type != "Shape":
            return False
        index = consts.get(g.input[1])
        return index is not None and index.size == 1 and int(index.reshape(-1)[0]) == position

    done = 0
    for node in graph.node:
        concat = made.get(node.input[1]) if node.op_type == "Reshape" else None
        if concat is None or concat.op_type != "Concat":
            continue
        shape = []
        for position, part in enumerate(concat.input):
            if part in consts and consts[part].size == 1:
                value = int(consts[part].reshape(-1)[0])
                if value == 0:  # a literal 0 would now mean "copy"
                    break
                shape.append(value)
            elif copied_dim(part, position):
                shape.append(0)
            else:
                break
        else:
            name = node.input[1] + "_constant"
            graph.initializer.append(numpy_helper.from_array(np.array(shape, np.int64), name))
            node.input[1] = name
            done += 1
    if done:
        while True:  # drop nodes whose outputs nothing reads any more
            read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
            dead = [n for n in graph.node if not set(n.output) & read]
            if not dead:
                break
            for n in dead:
                graph.node.remove(n)
        onnx.save(model, str(path))
    return done


def export_specs(specs: dict[str, PartSpec], folder: Path, inputs: dict[str, tuple],
                 opset: int = DEFAULT_OPSET) -> None:
    """Export each spec to `folder/<file>` (a layer's head split with constant shapes: constant_reshapes); the
    modules are put in eval mode."""
    for file, spec in specs.items():
        spec.module.eval()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript tracer warnings about Python control flow
            torch.onnx.export(
                spec.module, inputs[file], str(folder / file), dynamo=False, opset_version=opset,
                input_names=spec.input_names, output_names=spec.output_names, dynamic_axes=spec.dynamic_axes,
                do_constant_folding=True,
            )
        if spec.kind == "layer":
            constant_reshapes(folder / file)
