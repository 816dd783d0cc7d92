"""What every teacher family adaptor answers, and the defaults most BERT-shaped families share.

A family adaptor knows where a checkpoint keeps its embeddings, its layers and its
last layer's queries, keys and values. Everything else in edgekd reads the teacher
through these answers, never through model attribute names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from runtime.errors import EdgeKDError

# student name of each layer part -> the role a family maps onto it (see Family.layer_parts)
LAYER_PARTS = ("query", "key", "value", "output", "attention_norm", "ffn_in", "ffn_out", "ffn_norm")
# Hugging Face hidden_act -> the student's activation
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}


class TeacherError(EdgeKDError):
    """The teacher checkpoint cannot be used."""


@dataclass
class Embeddings:
    """A teacher's input embeddings in the student's terms (E = embedding width, H = hidden)."""

    word: torch.Tensor  # (V,E)
    position: torch.Tensor | None  # (P,E): row i is what token position i gets (any offset applied)
    segment: torch.Tensor | None  # (S,E) the segment table (token types); None when the family has none
    norm_weight: torch.Tensor  # (E,)
    norm_bias: torch.Tensor  # (E,)
    project: nn.Linear | None = None  # E -> H when the embeddings are factorised (ELECTRA, ALBERT)


class QKVCapture:
    """Forward hooks on one layer's q, k, v projections; `get()` -> (q, k, v), each (B,T,H)."""

    def __init__(self, modules: tuple[nn.Module, nn.Module, nn.Module], first: bool = False):
        self.captured: dict[int, torch.Tensor] = {}
        self.first = first  # keep a forward's first call (the projections are reused on other inputs after it)
        for index, module in enumerate(modules):
            module.register_forward_hook(self._hook(index))

    def _hook(self, index: int):
        def hook(_module, _inputs, output):
            if not (self.first and index in self.captured):
                self.captured[index] = output  # shared layers (ALBERT) overwrite: the last call wins

        return hook

    def clear(self) -> None:
        self.captured.clear()

    def get(self):
        return tuple(self.captured[i] for i in range(3)) if len(self.captured) == 3 else None


class Family:
    """A BERT-shaped family: post-LN layers with separate q/k/v, absolute positions from 0."""

    names: tuple[str, ...] = ()  # config.model_type values this adaptor reads
    copies_layers = True  # --init teacher can copy its layers into the BERT-shaped student
    why_not = ""  # when not: one line saying why (shown in the refusal)

    # ---------------------------------------------------------------- config
    def num_layers(self, config) -> int:
        return config.num_hidden_layers

    def ffn_size(self, config) -> int:
        return config.intermediate_size

    def layer_norm_eps(self, config) -> float:
        return config.layer_norm_eps

    def activation(self, config) -> str | None:
        """The student's name for the teacher's FFN activation; None when the student has none like it."""
        return ACTIVATIONS.get(str(getattr(config, "hidden_act", "gelu")))

    def position_offset(self, config) -> int:
        return 0

    def max_positions(self, config) -> int:
        return config.max_position_embeddings - self.position_offset(config)

    # ---------------------------------------------------------------- modules
    def layers(self, model: nn.Module) -> list[nn.Module]:
        return list(model.base_model.encoder.layer)

    def qkv_modules(self, layer: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module]:
        attention = layer.attention.self
        return attention.query, attention.key, attention.value

    def capture(self, model: nn.Module, layer: int = -1) -> QKVCapture:
        """Hooks on the q, k, v projections of `layer` (an index into the encoder's layers; -1 the last)."""
        return QKVCapture(self.qkv_modules(self.layers(model)[layer]))

    def layer_parts(self, layer: nn.Module) -> dict[str, nn.Module]:
        """Each of LAYER_PARTS -> the teacher's Linear / LayerNorm playing that part."""
        a = layer.attention
        return {"query": a.self.query, "key": a.self.key, "value": a.self.value, "output": a.output.dense,
                "attention_norm": a.output.LayerNorm, "ffn_in": layer.intermediate.dense,
                "ffn_out": layer.output.dense, "ffn_norm": layer.output.LayerNorm}

    def embeddings(self, model: nn.Module) -> Embeddings:
        e = model.base_model.embeddings
        offset = self.position_offset(model.config)
        return Embeddings(e.word_embeddings.weight, e.position_embeddings.weight[offset:],
                          e.token_type_embeddings.weight, e.LayerNorm.weight, e.LayerNorm.bias,
                          self.projection(model))

    def projection(self, model: nn.Module) -> nn.Linear | None:
        return None

    def word_embeddings(self, model: nn.Module) -> torch.Tensor:
        """The input embedding table (V,E)."""
        return model.base_model.embeddings.word_embeddings.weight

    def word_vectors(self, model: nn.Module) -> torch.Tensor:
        """The input embeddings in hidden space (V,H), through the projection of factorised embeddings."""
        project = self.projection(model)
        table = self.word_embeddings(model)
        return table if project is None else project(table)
