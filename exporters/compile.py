"""Compile a bundle's layer graphs into one ONNX graph with early exit inside.

    input_ids (B,T) int64, attention_mask (B,T) int64, speed () float32 [, token_type_ids (B,T) int64 where
    the embed graph takes them: text pairs] -> logits (B,C) float32, exit_layer (B,) int64, uncertainty (B,) float32

The embed graph and layer 1 run in the main graph. After layer k the exit head's uncertainty (the problem
type's rule, runtime/exits.py: normalized entropy; the largest binary entropy of a multi-label head, each logit
less logit(t_j) for the rule at thresholds; for regression the gap to the previous head over the target scale,
the largest of the last `patience` gaps; for token classification the largest entropy over the tokens that are
neither padding nor special, whose mask is carried with the rows) is compared with `speed`. A token graph
returns logits (B,T,C), 0 on padding, and keeps every position when it compacts (the answers are per token).

Two paths (issue 40: a layer should cost its own kernels and the rule's, not bookkeeping):
- while no row has left (every row at batch 1 until it leaves; every row at speed 0), layer k+1 runs in the
  `else` branch of an `If` on "the smallest uncertainty is below speed", on the same tensors: nothing is
  gathered, handed on or scattered back, and the nodes that read only the mask (the attention's mask index, the
  head's pooling weights) ran once, on the input mask; at the last layer the answers are the outputs as they are;
- where some row leaves, the `then` branch sets the leaving rows aside (their original row, logits,
  uncertainty and layer), gathers the survivors with the padding trimmed to the longest of them, and goes on
  with them layer by layer (`part`), compacting again only where some row leaves (else the batch is handed on by
  Identity) and stopping where none stays; where the chain stops one ScatterND per output writes every row's
  result back into input order (unless the last part holds every row: then they are in order already).
Each layer's nodes are therefore in the graph once per path (the layers after k once for each k where rows can
first leave: L(L+1)/2 copies in all), and its weights once, in the main graph, read by every copy (onnxruntime
1.32 runs outer-scope weights as fast as a branch's own: measured). The layer graph's own gather of its `rows`
input is taken out when it is inlined (the compaction gathers instead), and the rule's Clip of the uncertainty
to [0, 1] runs once, on the outputs (a comparison with a speed in [0, 1] cannot change by it: the entropies are
>= 0 as computed).

A pure function from graphs to a graph (`compile_early_exit`), so any ONNX Runtime binding runs batched early
exit with nothing but a tokenizer.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import GraphProto, ModelProto, TensorProto, helper, numpy_helper

from exporters.inline import Builder, MaskPart, inline, token_mask
from runtime.exits import SINGLE_LABEL, TOKENS, ExitRule, threshold_logits
from runtime.manifest import GRAPH_INPUTS, GRAPH_OUTPUTS, PAIR_INPUT, PART_INPUTS, PART_OUTPUTS, part_inputs

DEBUG_OUTPUT = "layer_rows"  # optional output: rows that entered each layer, (L,) int64


class _Compiler:
    def __init__(self, embed: ModelProto | None, layers: list[ModelProto], num_labels: int, debug: bool,
                 rule: ExitRule = SINGLE_LABEL, special_ids: list[int] | None = None):
        self.embed = embed
        self.layers = layers
        self.num_labels = num_labels
        self.debug = debug
        self.rule = rule
        self.num_layers = max(len(layers), 1)
        self.masks = [MaskPart(layer.graph) for layer in layers]
        self.written: set[str] = set()  # the layer weights put in the main graph so far
        self.main = Builder("")
        m = self.main
        # Shared constants, visible from every branch (outer scope).
        self.axis0 = m.const([0], np.int64, "axis0")
        self.axis1 = m.const([1], np.int64, "axis1")
        self.axis_last = m.const([-1], np.int64, "axis_last")
        self.zero_i = m.const([0], np.int64, "zero_i")
        # the constants of the problem type's rule only (a single-label graph stays as it was)
        self.tokens = rule.per_token  # token classification: (R, T, C) heads, the rule's token mask carried
        self.special_ids = special_ids
        if rule.problem in ("single-label", TOKENS):
            self.neg_inv_log_c = m.const(-1.0 / math.log(max(num_labels, 2)), np.float32, "neg_inv_log_c")
        if rule.problem != "single-label":
            self.k1 = m.const([1], np.int64, "k1")
        if rule.problem == "multi-label":
            self.inv_log_2 = m.const(1.0 / math.log(2.0), np.float32, "inv_log_2")
            self.shift = None if rule.thresholds is None else \
                m.const(threshold_logits(rule.thresholds, num_labels), np.float32, "shift")  # the rule at thresholds
        if rule.problem == "regression":
            self.inv_scale = m.const(1.0 / rule.scale, np.float32, "inv_scale")
        if rule.problem != "regression":  # the lower bound of the entropies' Clip (and a token's special count)
            self.f0 = m.const(0.0, np.float32, "f0")
        self.f1 = m.const(1.0, np.float32, "f1")
        self.i0 = m.const(0, np.int64, "i0")
        self.i1 = m.const(1, np.int64, "i1")

    # ---------------------------------------------------------------- pieces
    def uncertainty(self, b: Builder, logits: str, previous: str | None, recent: tuple[str, ...] = ()
                    ) -> tuple[str, str | None]:
        """The exit rule's u (R,) of one head's outputs (R,C), and regression's gap of this head (None for the
        other types). `previous`: the head before's outputs on the same rows (None at the first layer);
        `recent`: the gaps of the patience - 1 heads before (regression)."""
        if self.tokens:  # `previous` holds the rows' token mask (float, (R, T)): the largest entropy over it
            return self.max_last(b, b.op("Mul", [self.entropy(b, logits), previous], "u_tokens")), None
        if self.rule.problem == "multi-label":
            centred = logits if self.shift is None else b.op("Sub", [logits, self.shift], "centred")
            return self.binary_entropy(b, centred), None
        if self.rule.problem == "regression":
            if previous is None:  # no head before the first: full uncertainty
                gap = b.op("Expand", [self.f1, b.op("Shape", [logits], start=0, end=1)], "u_first")
            else:
                step = self.max_last(b, b.op("Abs", [b.op("Sub", [logits, previous], "step")], "gap"))
                gap = b.op("Min", [b.op("Mul", [step, self.inv_scale], "u_raw"), self.f1], "u")
            return (b.op("Max", [gap, *recent], "u_patience") if recent else gap), gap
        return self.entropy(b, logits), None

    def max_last(self, b: Builder, x: str) -> str:
        """Max over the last axis, (R,C) -> (R,): TopK, whose form is the same in every opset from 11."""
        top = b.op("TopK", [x, self.k1], "top", outputs=2, axis=-1)[0]
        return b.op("Squeeze", [top, self.axis_last], "max")

    def binary_entropy(self, b: Builder, logits: str) -> str:
        """max_j H(sigmoid(z_j)) / log 2 with H = softplus(-|z|) + |z| sigmoid(-|z|) (exact, finite)."""
        z = b.op("Abs", [logits], "abs_z")
        neg = b.op("Neg", [z], "neg_z")
        h = b.op("Add", [b.op("Softplus", [neg], "sp"), b.op("Mul", [z, b.op("Sigmoid", [neg], "sig")], "zs")], "h")
        return b.op("Mul", [self.max_last(b, h), self.inv_log_2], "u_raw")  # >= 0; clipped on output

    def entropy(self, b: Builder, logits: str) -> str:
        log_p = b.op("LogSoftmax", [logits], "log_p", axis=-1)
        p = b.op("Exp", [log_p], "p")
        plogp = b.op("Mul", [p, log_p], "plogp")
        total = b.op("ReduceSum", [plogp, self.axis_last], "sum_plogp", keepdims=0)
        # >= 0 as computed (log_p <= 0 and p >= 0 term by term), so a comparison with a speed in [0, 1] needs no
        # clip; the outputs are clipped (clip)
        return b.op("Mul", [total, self.neg_inv_log_c], "u_raw")

    def clip(self, b: Builder, u: str) -> str:
        """The uncertainty as the rule states it, in [0, 1] (regression's gaps are capped where computed)."""
        return u if self.rule.problem == "regression" else b.op("Clip", [u, self.f0, self.f1], "u")

    def finish(self, b: Builder, left: list[tuple[str, str, str, str | int]],
               counts: list[str]) -> list[onnx.ValueInfoProto]:
        """Write every row's result into input order; `left` holds (rows, logits, u, layer) per part, the layer
        a tensor of one per row or the layer's number (every row of the part)."""
        def layers_of(b: Builder, rows: str, layer: str | int) -> str:
            return layer if isinstance(layer, str) else \
                b.op("Expand", [b.const(layer, np.int64, "layer"), b.op("Shape", [rows])], "layers")

        # the last part holds every row (none left before it, so none was compacted: its rows are in input order):
        # its outputs are the answers as they are; else every part's rows are scattered back into input order
        whole = b.op("Equal", [b.op("Size", [left[-1][0]], "last_rows"), self.batch], "whole")
        w = Builder(b.prefix + "whole/")
        as_is = [w.op("Identity", [left[-1][1]], "logits"), layers_of(w, left[-1][0], left[-1][3]),
                 self.clip(w, left[-1][2])]
        if isinstance(left[-1][3], str):
            as_is[1] = w.op("Identity", [as_is[1]], "layers")
        if as_is[2] == left[-1][2]:  # regression: no clip (a branch cannot return an outer value)
            as_is[2] = w.op("Identity", [as_is[2]], "u")
        s = Builder(b.prefix + "scatter/")
        parts = [(r, lg, u, layers_of(s, r, layer)) for r, lg, u, layer in left]
        rows, logits, unc, layers = (x[0] if len(parts) == 1 else s.op("Concat", list(x), f"all_{what}", axis=0)
                                     for what, x in zip(("rows", "logits", "u", "layers"), zip(*parts)))
        index = s.op("Unsqueeze", [rows, self.axis_last], "index")
        zero = numpy_helper.from_array
        bc = s.op("Concat", [self.batch_1d, *self.logits_tail], "bc_shape", axis=0)
        scattered = [
            s.op("ScatterND", [s.op("ConstantOfShape", [bc], "zero_logits", value=zero(np.zeros(1, np.float32))),
                               index, logits], "out_logits"),
            s.op("ScatterND", [s.op("ConstantOfShape", [self.batch_1d], "zero_layer",
                                    value=zero(np.zeros(1, np.int64))), index, layers], "out_layer"),
            s.op("ScatterND", [s.op("ConstantOfShape", [self.batch_1d], "zero_u",
                                    value=zero(np.zeros(1, np.float32))), index, self.clip(s, unc)], "out_u")]
        types = [TensorProto.FLOAT, TensorProto.INT64, TensorProto.FLOAT]
        names = b.op("If", [whole], "answers", outputs=3,
                     then_branch=helper.make_graph(w.nodes, "in_order", [], [
                         helper.make_tensor_value_info(n, t, None) for n, t in zip(as_is, types)], w.initializers),
                     else_branch=helper.make_graph(s.nodes, "scattered", [], [
                         helper.make_tensor_value_info(n, t, None) for n, t in zip(scattered, types)],
                         s.initializers))
        if self.debug:
            names.append(self.debug_counts(b, counts))
        return self.outputs(names)

    def outputs(self, names: list[str]) -> list[onnx.ValueInfoProto]:
        types = [TensorProto.FLOAT, TensorProto.INT64, TensorProto.FLOAT, TensorProto.INT64]
        return [helper.make_tensor_value_info(n, t, None) for n, t in zip(names, types)]

    # ----------------------------------------------------------------- parts
    def layer(self, b: Builder, k: int, tag: str, hidden: str, mask: str, masked: list[str],
              previous: str | None, recent: tuple[str, ...]) -> tuple[str, str, str, tuple[str, ...]]:
        """Layer k's nodes in `b` (its weights in the main graph, shared by every copy), on (hidden, mask) with
        its mask nodes' values `masked`; returns its hidden states, its head's outputs, the rule's uncertainty
        (unclipped) and the gaps the rule keeps (regression)."""
        hidden_out, logits = b.name("hidden"), b.name("logits")
        inline(b, self.layers[k - 1].graph, f"{tag}l{k}/", dict(zip(PART_INPUTS["layer"][:2], (hidden, mask))),
                dict(zip(PART_OUTPUTS["layer"], (hidden_out, logits))), without_rows=True,
                given=(self.masks[k - 1], masked), weights=(self.main, f"w{k}/", self.written))
        u, gap = self.uncertainty(b, logits, previous, recent)
        window = self.rule.patience - 1
        return hidden_out, logits, u, ((*recent, gap)[-window:] if window else ())

    def compaction(self, t: Builder, k: int, hidden_out: str, mask: str, alive: str, logits: str, u: str,
                   carried: list[str]) -> tuple[list[str], str, list[str]]:
        """In `t`: the rows whose u is below speed set aside, the others gathered with the padding trimmed to the
        longest of them. Returns (the survivors' hidden, mask, rows, carried values and layer k + 1's mask
        values), whether any stays, and the part that left (rows, logits, u, layers)."""
        leave = t.op("Less", [u, self.speed], "leave")
        keep = t.op("Squeeze", [t.op("NonZero", [t.op("Not", [leave], "stay")]), self.axis0], "keep")
        gone_rows = t.op("Compress", [alive, leave], "gone_rows", axis=0)
        gone = [gone_rows, t.op("Compress", [logits, leave], "gone_logits", axis=0),
                t.op("Compress", [u, leave], "gone_u", axis=0),
                t.op("Expand", [t.const(k, np.int64, "layer"), t.op("Shape", [gone_rows])], "gone_layers")]
        any_stay = t.op("Greater", [t.op("Size", [keep]), self.i0], "any_stay")
        kept_mask = t.op("Gather", [mask, keep], "kept_mask", axis=0)
        kept_hidden = t.op("Gather", [hidden_out, keep], "kept_hidden", axis=0)
        if not self.tokens:  # the padding trimmed to the longest survivor (token answers keep every position)
            width = t.op("ReduceMax", [t.op("ReduceSum", [kept_mask, self.axis1], keepdims=0)], "width", keepdims=1)
            kept_hidden = t.op("Slice", [kept_hidden, self.zero_i, width, self.axis1], "trim_hidden")
            kept_mask = t.op("Slice", [kept_mask, self.zero_i, width, self.axis1], "trim_mask")
        kept = [kept_hidden, kept_mask, t.op("Gather", [alive, keep], "alive", axis=0),
                *[t.op("Gather", [c, keep], "kept", axis=0) for c in carried]]
        kept += self.masks[k].copy(t, self.layers[k].graph, f"{t.prefix}m{k + 1}/", kept[1])  # on the new mask
        return kept, any_stay, gone

    def carried(self, logits: str, recent: tuple[str, ...], previous: str | None = None) -> list[str]:
        """What the rule remembers of the heads so far (regression: the last head's outputs, the last gaps; token
        classification: the rows' token mask, which it holds in `previous`)."""
        first = [logits] if self.rule.needs_previous else [previous] if self.tokens else []
        return first + list(recent)

    def uncarried(self, values: list[str]) -> tuple[str | None, tuple[str, ...]]:
        """`carried`'s values back as (the last head's outputs, or the token mask, or None; the last gaps)."""
        first = 1 if self.rule.needs_previous or self.tokens else 0
        return (values[0] if first else None), tuple(values[first:])

    def fast(self, b: Builder, k: int, hidden: str, masked: list[str], previous: str | None = None,
             recent: tuple[str, ...] = ()) -> list[onnx.ValueInfoProto]:
        """Layer k while no row has left: every input row, in input order, on the input mask; nothing is
        gathered or handed on (the values of the layers before are read from where they were made). Where some
        row leaves, its branch compacts the batch and goes on by `part`; else the next layer runs as this one."""
        mask = GRAPH_INPUTS[1]
        hidden_out, logits, u, recent = self.layer(b, k, "f", hidden, mask, masked, previous, recent)
        counts = [self.batch_1d] * k if self.debug else []
        if k == self.num_layers:  # every row here, in input order: the answers as they are
            return self.as_is(b, logits, u, k, counts, b is self.main)
        any_leave = b.op("Less", [b.op("ReduceMin", [u], "u_min", keepdims=0), self.speed], "any_leave")
        carried = self.carried(logits, recent, previous)
        # then: every row leaves (a batch-1 row that leaves does): the answers as they are; else compact, and go
        # on with the survivors by `part`
        t = Builder(f"f{k}l/")
        all_leave = t.op("Less", [t.op("ReduceMax", [u], "u_max", keepdims=0), self.speed], "all_leave")
        a = Builder(f"f{k}a/")
        everyone = self.as_is(a, logits, u, k, counts, True)
        c = Builder(f"f{k}c/")
        alive = c.op("Range", [self.i0, self.batch, self.i1], "alive")
        kept, _, gone = self.compaction(c, k, hidden_out, mask, alive, logits, u, carried)
        # (some row stays here: not every row left)
        survivors = self.part(c, k + 1, f"s{k}", kept[0], kept[1], kept[2], kept[3 + len(carried):], [tuple(gone)],
                              counts, *self.uncarried(kept[3:3 + len(carried)]))
        outs = t.op("If", [all_leave], "result", outputs=len(everyone),
                    then_branch=a.graph(f"all_leave_at_{k}", everyone),
                    else_branch=c.graph(f"some_leave_at_{k}", survivors))
        # else: no row leaves: the next layer on the same rows
        e = Builder(f"f{k + 1}/")
        nxt, now = self.masks[k], self.masks[k - 1]
        next_masked = masked if nxt.signature == now.signature else nxt.copy(e, self.layers[k].graph,
                                                                             f"f{k + 1}m/", mask)
        else_outputs = self.fast(e, k + 1, hidden_out, next_masked, logits if self.rule.needs_previous else
                                 previous, recent)
        result = b.op("If", [any_leave], "result", outputs=len(else_outputs),
                      then_branch=t.graph(f"leave_at_{k}", self.outputs(outs)),
                      else_branch=e.graph(f"none_leave_at_{k}", else_outputs))
        return self.outputs(result)

    def as_is(self, b: Builder, logits: str, u: str, k: int, counts: list[str], branch: bool
              ) -> list[onnx.ValueInfoProto]:
        """Every input row leaves at layer k, in input order: the answers are this head's outputs as they are
        (`branch`: `b` must make each output itself, an Identity where a value comes from outside it)."""
        names = [b.op("Identity", [logits], "logits") if branch else logits,
                 b.op("Expand", [b.const(k, np.int64, "layer"), self.batch_1d], "layers"), self.clip(b, u)]
        if names[2] == u and branch:
            names[2] = b.op("Identity", [u], "u")
        return self.outputs(names + ([self.debug_counts(b, counts)] if self.debug else []))

    def debug_counts(self, b: Builder, counts: list[str]) -> str:
        pad = self.num_layers - len(counts)
        parts = counts + ([b.const([0] * pad, np.int64, "no_rows")] if pad else [])
        return b.op("Concat", parts, DEBUG_OUTPUT, axis=0)

    def part(self, b: Builder, k: int, tag: str, hidden: str, mask: str, alive: str, masked: list[str],
             left: list[tuple[str, str, str, str]], counts: list[str], previous: str | None = None,
             recent: tuple[str, ...] = ()) -> list[onnx.ValueInfoProto]:
        """Layer k once rows have left (the batch compacted): on the rows of (hidden, mask), which `alive` maps
        to input rows; `previous` and `recent` hold the last head's outputs and the last patience - 1 gaps of the
        same rows (regression's rule); `masked` the values of layer k's mask nodes on this mask (MaskPart).
        Compaction runs again only where some row leaves; else the batch is handed on (Identity). Returns b's
        outputs."""
        hidden_out, logits, u, recent = self.layer(b, k, tag, hidden, mask, masked, previous, recent)
        counts = counts + ([b.op("Shape", [alive], "rows_in")] if self.debug else [])
        if k == self.num_layers:
            return self.finish(b, left + [(alive, logits, u, k)], counts)
        any_leave = b.op("Less", [b.op("ReduceMin", [u], "u_min", keepdims=0), self.speed], "any_leave")
        carried = self.carried(logits, recent, previous)

        t = Builder(f"{tag}k{k}c/")
        kept, any_stay, gone = self.compaction(t, k, hidden_out, mask, alive, logits, u, carried)
        then_out = kept + [any_stay] + gone
        # else: no row leaves: the batch goes on as it is (Identity: a branch cannot return an outer value), and
        # so do the mask values where layer k + 1 computes them as this layer did
        nxt, now = self.masks[k], self.masks[k - 1]
        e = Builder(f"{tag}k{k}n/")
        else_out = [e.op("Identity", [x], "same") for x in [hidden_out, mask, alive, *carried]] + \
            ([e.op("Identity", [x], "same_mask") for x in masked] if nxt.signature == now.signature else
             nxt.copy(e, self.layers[k].graph, f"{e.prefix}m{k + 1}/", mask)) + \
            [e.const(True, np.bool_, "all_stay"), e.const(np.zeros(0, np.int64), np.int64, "none_rows"),
             (e.op("ConstantOfShape", [e.op("Concat", [self.zero_i, *self.logits_tail], "none_shape", axis=0)],
                   "none_logits", value=numpy_helper.from_array(np.zeros(1, np.float32))) if self.tokens else
              e.const(np.zeros((0, self.num_labels), np.float32), np.float32, "none_logits")),
             e.const(np.zeros(0, np.float32), np.float32, "none_u"),
             e.const(np.zeros(0, np.int64), np.int64, "none_layers")]
        types = [TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT64] + [TensorProto.FLOAT] * len(carried) + \
            nxt.types + [TensorProto.BOOL, TensorProto.INT64, TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.INT64]
        step = b.op("If", [any_leave], "step", outputs=len(then_out),
                    then_branch=helper.make_graph(t.nodes, f"{tag}leave_at_{k}", [], [
                        helper.make_tensor_value_info(n, ty, None) for n, ty in zip(then_out, types)],
                        t.initializers),
                    else_branch=helper.make_graph(e.nodes, f"{tag}none_leave_at_{k}", [], [
                        helper.make_tensor_value_info(n, ty, None) for n, ty in zip(else_out, types)],
                        e.initializers))
        next_hidden, next_mask, next_alive = step[:3]
        kept_carried = step[3:3 + len(carried)]
        next_masked = step[3 + len(carried):3 + len(carried) + len(nxt.exported)]
        stay = step[3 + len(carried) + len(nxt.exported)]
        left = left + [tuple(step[4 + len(carried) + len(nxt.exported):])]

        # then: the next layer on the rows that stay; else: every row has left
        n = Builder(f"{tag}k{k}t/")
        then_outputs = self.part(n, k + 1, tag, next_hidden, next_mask, next_alive, next_masked, left, counts,
                                 *self.uncarried(kept_carried))
        f = Builder(f"{tag}k{k}e/")
        else_graph = f.graph(f"{tag}all_left_at_{k}", self.finish(f, left, counts))
        outs = b.op("If", [stay], "result", outputs=len(then_outputs),
                    then_branch=n.graph(f"{tag}after_layer_{k}", then_outputs), else_branch=else_graph)
        return self.outputs(outs)

    def build(self) -> ModelProto:
        m = self.main
        ids, mask, speed = GRAPH_INPUTS
        self.speed = speed
        hidden = m.name("hidden")
        pair = PAIR_INPUT in {i.name for i in self.embed.graph.input}  # a bundle made from text pairs
        embed_inputs = part_inputs("embed", pair)
        inline(m, self.embed.graph, "embed/", dict(zip(embed_inputs, embed_inputs)),
                dict(zip(PART_OUTPUTS["embed"], (hidden,))))
        shape = m.op("Shape", [ids], "ids_shape")
        batch = m.op("Gather", [shape, self.i0], "batch", axis=0)
        self.batch = batch
        self.batch_1d = m.op("Shape", [ids], "batch_1d", start=0, end=1)
        self.labels_1d = m.const([self.num_labels], np.int64, "num_labels")
        self.logits_tail = [self.labels_1d]  # a row's answer shape: (C,), or per token (T, C)
        tokens = None
        if self.tokens:
            self.logits_tail = [m.op("Shape", [ids], "seq_1d", start=1, end=2), self.labels_1d]
            tokens = token_mask(m, ids, mask, self.special_ids)
        masked = self.masks[0].copy(m, self.layers[0].graph, "m1/", mask)  # on the input mask, once
        outputs = self.fast(m, 1, hidden, masked, tokens)
        final = list(GRAPH_OUTPUTS) + ([DEBUG_OUTPUT] if self.debug else [])
        if self.tokens:  # padding's tags are 0, as the staged runtime leaves them
            padding = m.op("Unsqueeze", [m.op("Cast", [mask], "mask_f", to=TensorProto.FLOAT), self.axis_last])
            m.op("Mul", [outputs[0].name, padding], "masked_logits")
            m.nodes[-1].output[0], final[0] = GRAPH_OUTPUTS[0], outputs[0].name  # the Mul makes the output
        # Name the model's outputs: the node that makes each gets the output's name (no Identity to run)
        renamed = dict(zip([o.name for o in outputs], final))
        for node in m.nodes:
            node.output[:] = [renamed.get(o, o) for o in node.output]
        graph = helper.make_graph(
            m.nodes, "edgekd_early_exit",
            [helper.make_tensor_value_info(ids, TensorProto.INT64, ["batch", "sequence"]),
             helper.make_tensor_value_info(mask, TensorProto.INT64, ["batch", "sequence"]),
             helper.make_tensor_value_info(speed, TensorProto.FLOAT, [])]
            + ([helper.make_tensor_value_info(PAIR_INPUT, TensorProto.INT64, ["batch", "sequence"])] if pair else []),
            [helper.make_tensor_value_info(GRAPH_OUTPUTS[0], TensorProto.FLOAT,
                                           ["batch"] + (["sequence"] if self.tokens else []) + [self.num_labels]),
             helper.make_tensor_value_info(GRAPH_OUTPUTS[1], TensorProto.INT64, ["batch"]),
             helper.make_tensor_value_info(GRAPH_OUTPUTS[2], TensorProto.FLOAT, ["batch"])]
            + ([helper.make_tensor_value_info(DEBUG_OUTPUT, TensorProto.INT64, [self.num_layers])]
               if self.debug else []),
            m.initializers, value_info=m.value_info,
        )
        return _model(graph, [self.embed] + self.layers)


def _model(graph: GraphProto, sources: list[ModelProto]) -> ModelProto:
    """A model around `graph` with the union of the sources' opsets (highest version per domain)."""
    opsets: dict[str, int] = {}
    for source in sources:
        for entry in source.opset_import:
            opsets[entry.domain] = max(opsets.get(entry.domain, 0), entry.version)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
                              producer_name="edgekd")
    model.ir_version = max(s.ir_version for s in sources)
    return model


def _check_rule(num_labels: int, rule: ExitRule) -> None:
    if rule.problem == "single-label" and num_labels < 2:
        raise ValueError(f"a single-label exit rule needs at least 2 labels, got {num_labels}")
    if num_labels < 1:
        raise ValueError("a graph needs at least one output")


def compile_early_exit(embed: ModelProto, layers: list[ModelProto], num_labels: int, *,
                       debug: bool = False, rule: ExitRule = SINGLE_LABEL,
                       special_ids: list[int] | None = None) -> ModelProto:
    """One graph running `embed` then `layers` with the exit rule (`rule`: the problem type's) between them.

    `embed`: input_ids -> hidden; each layer: hidden, mask, rows -> hidden_out,
    logits (the part contract in runtime/manifest.py). `debug` adds the output
    `layer_rows` (L,): how many rows entered each layer.
    """
    if not layers:
        raise ValueError("compile_early_exit needs at least one layer graph")
    _check_rule(num_labels, rule)
    if rule.per_token and special_ids is None:
        raise ValueError("a token-classification graph needs the tokenizer's special ids (the rule skips them)")
    return _Compiler(embed, layers, num_labels, debug, rule, special_ids).build()


def compile_single(full: ModelProto, num_labels: int, rule: ExitRule = SINGLE_LABEL) -> ModelProto:
    """The same contract for a classifier without exits (BiLSTM, TextCNN: input_ids, mask -> logits):
    `speed` is accepted and ignored, `exit_layer` is 1 for every row, `uncertainty` the rule's u of its one
    head (1 for regression: there is no second head to agree with)."""
    _check_rule(num_labels, rule)
    c = _Compiler(None, [], num_labels, False, rule)
    m = c.main
    ids, mask, speed = GRAPH_INPUTS
    logits = m.name("logits")
    inline(m, full.graph, "model/", dict(zip(PART_INPUTS["full"], (ids, mask))),
            dict(zip(PART_OUTPUTS["full"], (logits,))))
    m.op("Identity", [logits], GRAPH_OUTPUTS[0])
    m.nodes[-1].output[0] = GRAPH_OUTPUTS[0]
    u = c.clip(m, c.uncertainty(m, logits, None)[0])
    m.op("Identity", [u], GRAPH_OUTPUTS[2])
    m.nodes[-1].output[0] = GRAPH_OUTPUTS[2]
    batch = m.op("Shape", [ids], "ids_shape", start=0, end=1)
    m.op("Expand", [m.const(1, np.int64, "one"), batch], GRAPH_OUTPUTS[1])
    m.nodes[-1].output[0] = GRAPH_OUTPUTS[1]
    used = {name for node in m.nodes for name in node.input}
    m.initializers = [init for init in m.initializers if init.name in used]  # only the rule's constants
    graph = helper.make_graph(
        m.nodes, "edgekd_single",
        [helper.make_tensor_value_info(ids, TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info(mask, TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info(speed, TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info(GRAPH_OUTPUTS[0], TensorProto.FLOAT, ["batch", num_labels]),
         helper.make_tensor_value_info(GRAPH_OUTPUTS[1], TensorProto.INT64, ["batch"]),
         helper.make_tensor_value_info(GRAPH_OUTPUTS[2], TensorProto.FLOAT, ["batch"])],
        m.initializers, value_info=m.value_info,
    )
    return _model(graph, [full])
