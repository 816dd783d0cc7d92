"""The early-exit student: a BERT-style encoder with an exit head after every layer.

Read top to bottom: config, embeddings, one layer, exit heads, the model. The
last exit head is the trunk classifier. Shapes: B batch, T tokens, H hidden,
C classes, N attention heads, D = H / N.

Everything the exporters need is a plain module with tensor inputs:
`embeddings(input_ids)`, `layers[i](hidden, mask)` and `heads[i](hidden, mask)`,
so each stage exports on its own (exporters never import this file).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from runtime.exits import PROBLEMS, TOKENS
from runtime.files import atomic_write_text
from runtime.records import from_json, to_json

HEAD_TYPES = ("mean", "cls", "attention")
CONFIG_FILE = "student.json"
WEIGHTS_FILE = "model.safetensors"
ACTIVATIONS = {"gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "relu": F.relu}
MASK_NEG = -10000.0  # additive attention bias for padding; finite so fp16 stays finite


@dataclass
class StudentConfig:
    vocab_size: int = 30522  # rows of the embedding table (kept size when compressed)
    hidden_size: int = 256  # H
    num_layers: int = 4  # L; one exit head per layer
    num_heads: int = 4  # N; H must divide by N
    ffn_size: int = 1024  # inner size of the feed-forward block
    num_labels: int = 2  # C: classes (single-label), labels (multi-label), 1 (regression), tags (token-classification)
    problem: str = "single-label"  # one of runtime.exits.PROBLEMS (runtime/exits.py: the exit rule of each)
    max_position: int = 512  # longest sequence the position table holds
    type_vocab_size: int = 2  # BERT segment embeddings (0 for single texts; a pair's token_type_ids)
    head_type: str = "mean"  # exit head: mean | cls | attention (FastBERT)
    head_hidden: int = 0  # width of the head's dense layer; 0 = hidden_size
    head_attention_size: int = 64  # inner width of the 'attention' head
    dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    original_vocab_size: int = 0  # >0: input ids are remapped from this vocabulary (GLMD)
    embedding_size: int = 0  # E < H: factorised embeddings projected to H (ELECTRA / ALBERT); 0 = H
    activation: str = "gelu"  # feed-forward activation: gelu | gelu_tanh (gelu_new) | relu

    def validate(self) -> list[str]:
        problems = []
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "ffn_size", "max_position"):
            if getattr(self, name) < 1:
                problems.append(f"student.{name} must be positive, got {getattr(self, name)}")
        if self.problem not in PROBLEMS:
            problems.append(f"student.problem {self.problem!r} is not one of {', '.join(PROBLEMS)}")
        least = 2 if self.problem in ("single-label", TOKENS) else 1
        if self.num_labels < least:
            problems.append(f"student.num_labels must be at least {least} for {self.problem}, got {self.num_labels}")
        if self.num_heads > 0 and self.hidden_size % self.num_heads:
            problems.append(f"student.hidden_size {self.hidden_size} must divide by num_heads {self.num_heads}")
        if self.head_type not in HEAD_TYPES:
            problems.append(f"student.head_type {self.head_type!r} is not one of {', '.join(HEAD_TYPES)}")
        if self.activation not in ACTIVATIONS:
            problems.append(f"student.activation {self.activation!r} is not one of {', '.join(ACTIVATIONS)}")
        if self.embedding_size < 0:
            problems.append(f"student.embedding_size must be >= 0 (0 = hidden size), got {self.embedding_size}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"student.dropout must lie in [0, 1), got {self.dropout}")
        return problems

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(to_json(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> StudentConfig:
        """Read a saved config; unknown keys and wrong types are refused, naming the key (runtime.records)."""
        return from_json(cls, json.loads(Path(path).read_text(encoding="utf-8")), f"student config {path}")


def extended_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B,T) 1/0 -> additive bias (B,1,1,T): 0 for tokens, MASK_NEG for padding."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * MASK_NEG


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,T,H), (B,T) -> (B,H): mean over real tokens only."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B,T,1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class VocabRemap(nn.Module):
    """Original token id -> row of a compressed embedding table (GLMD); exported as one Gather.

    Without compression (original_size 0) it passes ids through."""

    def __init__(self, original_size: int):
        super().__init__()
        if original_size:
            self.register_buffer("remap", torch.arange(original_size), persistent=True)
        else:
            self.remap = None

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return input_ids if self.remap is None else self.remap[input_ids]


class StudentEmbeddings(VocabRemap):
    """input ids (B,T) -> hidden (B,T,H): word + position + segment (0, or a pair's token_type_ids),
    LayerNorm (at width E, then projected to H when the embeddings are factorised)."""

    def __init__(self, cfg: StudentConfig):
        super().__init__(cfg.original_vocab_size)
        width = cfg.embedding_size or cfg.hidden_size
        self.word = nn.Embedding(cfg.vocab_size, width, padding_idx=None)
        self.position = nn.Embedding(cfg.max_position, width)
        self.segment = nn.Embedding(cfg.type_vocab_size, width)
        self.norm = nn.LayerNorm(width, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.project = nn.Linear(width, cfg.hidden_size) if width != cfg.hidden_size else None

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B,T) [, token_type_ids (B,T): a pair's segments; segment 0 throughout when None]."""
        input_ids = super().forward(input_ids)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
        segment = self.segment.weight[0] if token_type_ids is None else self.segment(token_type_ids)
        hidden = self.dropout(self.norm(self.word(input_ids) + self.position(positions)[None] + segment))
        return hidden if self.project is None else self.project(hidden)

    def word_vectors(self) -> torch.Tensor:
        """The word table in hidden space (V,H): through the projection when factorised."""
        return self.word.weight if self.project is None else self.project(self.word.weight)


class SelfAttention(nn.Module):
    def __init__(self, width: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = width // num_heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.output = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor):
        """hidden (B,T,H), bias (B,1,1,T) -> out (B,T,H), (q, k, v) each (B,T,H)."""
        batch, length, _ = hidden.shape
        q, k, v = self.query(hidden), self.key(hidden), self.value(hidden)

        def split(x):  # (B,T,H) -> (B,N,T,D)
            return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

        scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(self.head_dim) + bias  # (B,N,T,T)
        context = self.dropout(scores.softmax(-1)) @ split(v)  # (B,N,T,D)
        context = context.transpose(1, 2).reshape(batch, length, -1)  # (B,T,H)
        return self.output(context), (q, k, v)


class StudentLayer(nn.Module):
    """One post-LN transformer layer, as in BERT."""

    def __init__(self, cfg: StudentConfig):
        super().__init__()
        self.attention = SelfAttention(cfg.hidden_size, cfg.num_heads, cfg.dropout)
        self.attention_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(cfg.hidden_size, cfg.ffn_size)
        self.ffn_out = nn.Linear(cfg.ffn_size, cfg.hidden_size)
        self.ffn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.activation = ACTIVATIONS[cfg.activation]

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor):
        """hidden (B,T,H), mask (B,T) 1/0 -> hidden (B,T,H), (q, k, v)."""
        attended, qkv = self.attention(hidden, extended_mask(mask, hidden.dtype))
        hidden = self.attention_norm(hidden + self.dropout(attended))
        inner = self.activation(self.ffn_in(hidden))
        hidden = self.ffn_norm(hidden + self.dropout(self.ffn_out(inner)))
        return hidden, qkv


class ExitHead(nn.Module):
    """hidden (B,T,H), mask (B,T) -> logits (B,C).

    mean: masked mean over tokens -> dense -> tanh -> linear (default; lower
          layers' [CLS] carries little of the class, the mean carries more).
    cls:  the same on the [CLS] vector.
    attention: FastBERT's head: project to a small width, one self-attention
          over the tokens, then the [CLS] row -> dense -> tanh -> linear.
    """

    def __init__(self, cfg: StudentConfig):
        super().__init__()
        self.kind = cfg.head_type
        width = cfg.head_hidden or cfg.hidden_size
        source = cfg.hidden_size
        if self.kind == "attention":
            source = cfg.head_attention_size
            self.project = nn.Linear(cfg.hidden_size, source)
            self.attend = SelfAttention(source, 2 if source % 2 == 0 else 1, cfg.dropout)
        self.dense = nn.Linear(source, width)
        self.classifier = nn.Linear(width, cfg.num_labels)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "mean":
            pooled = masked_mean(hidden, mask)
        elif self.kind == "cls":
            pooled = hidden[:, 0]
        else:
            small = self.project(hidden)  # (B,T,S)
            attended, _ = self.attend(small, extended_mask(mask, small.dtype))
            pooled = attended[:, 0]
        return self.classifier(self.dropout(torch.tanh(self.dense(pooled))))


class TokenHead(nn.Module):
    """hidden (B,T,H), mask (B,T) -> logits (B,T,C): every token's tags (token classification), dense -> tanh
    -> linear on each token's vector (the mask is taken for the exit heads' common signature: a padded token's
    tags are computed and never read)."""

    def __init__(self, cfg: StudentConfig):
        super().__init__()
        width = cfg.head_hidden or cfg.hidden_size
        self.dense = nn.Linear(cfg.hidden_size, width)
        self.classifier = nn.Linear(width, cfg.num_labels)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(torch.tanh(self.dense(hidden))))


@dataclass
class StudentOutput:
    exit_logits: list[torch.Tensor]  # L tensors (B,C) ((B,T,C) for token classification); the last is the trunk
    hidden: torch.Tensor  # last layer (B,T,H)
    last_qkv: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # last layer q, k, v (B,T,H)
    hidden_states: list[torch.Tensor] | None = None  # every layer's output (B,T,H), when asked for

    @property
    def logits(self) -> torch.Tensor:
        return self.exit_logits[-1]


class EarlyExitStudent(nn.Module):
    def __init__(self, cfg: StudentConfig):
        super().__init__()
        problems = cfg.validate()
        if problems:
            raise ValueError("invalid student config:\n  - " + "\n  - ".join(problems))
        self.config = cfg
        self.embeddings = StudentEmbeddings(cfg)
        self.layers = nn.ModuleList(StudentLayer(cfg) for _ in range(cfg.num_layers))
        head = TokenHead if cfg.problem == TOKENS else ExitHead
        self.heads = nn.ModuleList(head(cfg) for _ in range(cfg.num_layers))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor, exits: bool = True,
                token_type_ids: torch.Tensor | None = None, all_hidden: bool = False) -> StudentOutput:
        """input_ids, mask (B,T) [, token_type_ids (B,T) of a pair] -> every exit's logits (only the trunk's if
        exits=False); with all_hidden, every layer's output too (hidden-state distillation)."""
        hidden = self.embeddings(input_ids, token_type_ids)
        exit_logits, states = [], []
        qkv = None
        for index, (layer, head) in enumerate(zip(self.layers, self.heads)):
            hidden, qkv = layer(hidden, mask)
            states.append(hidden)
            if exits or index == len(self.layers) - 1:
                exit_logits.append(head(hidden, mask))
        return StudentOutput(exit_logits, hidden, qkv, states if all_hidden else None)

    def backbone_parameters(self):
        """Embeddings and layers (not the exit heads)."""
        return [p for name, p in self.named_parameters() if not name.startswith("heads.")]

    # ---------------------------------------------------------------- saving
    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.save(folder / CONFIG_FILE)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE))

    @classmethod
    def load(cls, folder: str | Path, map_location: str = "cpu") -> EarlyExitStudent:
        from safetensors.torch import load_file

        folder = Path(folder)
        model = cls(StudentConfig.load(folder / CONFIG_FILE))
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE), device=map_location))
        return model.eval()
