"""Students without transformers, for the smallest devices: BiLSTM (Tang et al. 2019) and TextCNN.

Both read token ids and a mask and return one set of logits (no exits); they
export as one `full` graph that the same runtime runs. Shapes: B batch, T
tokens, E embedding width, C classes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from edgekd.distill.model import CONFIG_FILE, WEIGHTS_FILE, EarlyExitStudent, StudentOutput, VocabRemap
from runtime.files import atomic_write_text
from runtime.records import from_json, to_json

KINDS = ("bilstm", "textcnn")


@dataclass
class SmallStudentConfig:
    kind: str = "bilstm"  # bilstm | textcnn
    vocab_size: int = 30522  # rows of the embedding table (kept size when compressed)
    embed_size: int = 300  # E
    hidden_size: int = 300  # LSTM units per direction / dense width before the classifier
    kernel_sizes: list[int] = field(default_factory=lambda: [3, 4, 5])  # TextCNN filter widths
    filters: int = 100  # TextCNN filters per width
    num_labels: int = 2
    problem: str = "single-label"  # single-label | multi-label | regression
    dropout: float = 0.1
    pad_token_id: int = 0
    original_vocab_size: int = 0  # >0: input ids are remapped from this vocabulary (GLMD)
    num_layers: int = 1  # one stage, for the manifest

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(to_json(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SmallStudentConfig:
        """Read a saved config; unknown keys and wrong types are refused, naming the key (runtime.records)."""
        return from_json(cls, json.loads(Path(path).read_text(encoding="utf-8")), f"student config {path}")


class TokenEmbedding(VocabRemap):
    """input ids (B,T) -> (B,T,E), with the optional GLMD remap inside."""

    def __init__(self, cfg: SmallStudentConfig):
        super().__init__(cfg.original_vocab_size)
        self.word = nn.Embedding(cfg.vocab_size, cfg.embed_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.word(super().forward(input_ids))


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,T,D), (B,T) -> (B,D): max over real tokens only."""
    return x.masked_fill(mask.unsqueeze(-1) == 0, -1e4).max(1).values


def reverse_within_length(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Reverse each row's real tokens in place, padding stays at the end: (B,T,D) -> (B,T,D)."""
    length = mask.sum(1, keepdim=True)  # (B,1)
    positions = torch.arange(x.shape[1], device=x.device)[None]  # (1,T)
    index = torch.where(positions < length, length - 1 - positions, positions)  # (B,T)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class SmallStudent(nn.Module):
    """Common surface: `.config`, `.embeddings`, forward(ids, mask) -> StudentOutput with one logit set."""

    config: SmallStudentConfig

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.save(folder / CONFIG_FILE)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(folder / WEIGHTS_FILE))

    def backbone_parameters(self):
        return list(self.parameters())


class BiLSTMStudent(SmallStudent):
    """Embedding -> one bidirectional LSTM layer -> masked max pooling -> dense -> ReLU -> linear.

    The backward direction runs a forward LSTM over each row reversed within
    its own length, so padding never reaches a real token (and the ONNX graph
    needs no sequence lengths).
    """

    def __init__(self, cfg: SmallStudentConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = TokenEmbedding(cfg)
        self.forward_lstm = nn.LSTM(cfg.embed_size, cfg.hidden_size, batch_first=True)
        self.backward_lstm = nn.LSTM(cfg.embed_size, cfg.hidden_size, batch_first=True)
        self.dense = nn.Linear(2 * cfg.hidden_size, cfg.hidden_size)
        self.classifier = nn.Linear(cfg.hidden_size, cfg.num_labels)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor, exits: bool = True) -> StudentOutput:
        x = self.dropout(self.embeddings(input_ids))  # (B,T,E)
        ahead, _ = self.forward_lstm(x)  # (B,T,U)
        back, _ = self.backward_lstm(reverse_within_length(x, mask))
        back = reverse_within_length(back, mask)  # realign to token order
        pooled = masked_max(torch.cat([ahead, back], -1), mask)  # (B,2U)
        logits = self.classifier(self.dropout(torch.relu(self.dense(pooled))))
        return StudentOutput([logits], ahead, None)


class TextCNNStudent(SmallStudent):
    """Embedding -> 1-D convolutions of several widths -> ReLU -> masked max over time -> linear."""

    def __init__(self, cfg: SmallStudentConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = TokenEmbedding(cfg)
        self.convs = nn.ModuleList(nn.Conv1d(cfg.embed_size, cfg.filters, k, padding=k - 1) for k in cfg.kernel_sizes)
        self.classifier = nn.Linear(cfg.filters * len(cfg.kernel_sizes), cfg.num_labels)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor, exits: bool = True) -> StudentOutput:
        x = self.embeddings(input_ids)  # (B,T,E)
        x = x.masked_fill(mask.unsqueeze(-1) == 0, 0.0).transpose(1, 2)  # (B,E,T), pads zeroed
        length = x.shape[2]
        pooled = []
        for conv in self.convs:
            # padding k-1 on both sides; output position t covers tokens t-k+1..t. Keep the first T
            # outputs (windows ending on a token), and mask windows that end on padding.
            y = torch.relu(conv(x))[:, :, :length].transpose(1, 2)  # (B,T,F)
            pooled.append(masked_max(y, mask))
        logits = self.classifier(self.dropout(torch.cat(pooled, -1)))
        return StudentOutput([logits], x, None)


def build_small_student(cfg: SmallStudentConfig) -> SmallStudent:
    if cfg.kind not in KINDS:
        raise ValueError(f"unknown student kind {cfg.kind!r}; use one of {', '.join(KINDS)} or transformer")
    return BiLSTMStudent(cfg) if cfg.kind == "bilstm" else TextCNNStudent(cfg)


def project_teacher_embeddings(teacher_embedding: torch.Tensor, size: int) -> torch.Tensor:
    """The teacher's input embeddings projected to `size` dims by PCA (V,H) -> (V,size)."""
    emb = teacher_embedding.detach().float()
    centred = emb - emb.mean(0, keepdim=True)
    _, _, v = torch.pca_lowrank(centred, q=min(size, emb.shape[1]), center=False)
    projected = centred @ v[:, :size]
    if projected.shape[1] < size:  # teacher narrower than asked: pad with small noise
        projected = torch.cat([projected, 0.02 * torch.randn(len(emb), size - projected.shape[1])], 1)
    return projected * (0.02 / projected.std())


def load_student(folder: str | Path, map_location: str = "cpu"):
    """Any student a run folder holds: the early-exit transformer or a BiLSTM / TextCNN."""
    from safetensors.torch import load_file

    folder = Path(folder)
    data = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    if data.get("kind") in KINDS:
        model = build_small_student(SmallStudentConfig.load(folder / CONFIG_FILE))
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE), device=map_location))
        return model.eval()
    return EarlyExitStudent.load(folder, map_location)
