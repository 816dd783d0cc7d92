"""The teacher: a Hugging Face encoder classifier read through its family's adaptor.

The distillation code never touches model classes: `TeacherAdaptor` turns a
forward pass into `TeacherOutput(logits, last_qkv)`, and `edgekd.distill.families` says
where each family keeps its embeddings, layers and last-layer q, k, v.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgekd.distill.families import LAYER_COPYING, TeacherError, family_of
from runtime.exits import TOKENS


@dataclass
class TeacherOutput:
    logits: torch.Tensor  # (B,C)
    last_qkv: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None  # last layer q, k, v (B,T,H)
    hidden: torch.Tensor | None = None  # last layer output (B,T,H), when asked for
    hidden_states: tuple[torch.Tensor, ...] | None = None  # embeddings + every layer's output, when asked for


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")  # what a hub id looks like: name or owner/name


def teacher_config(source: str, offline: bool):
    from transformers import AutoConfig

    source = str(source)
    path = Path(source).expanduser()
    if not path.exists():
        if not HUB_ID.fullmatch(source):  # not `name` or `owner/name`: a folder that is not there
            raise TeacherError(f"the teacher folder {source} does not exist; give a local Hugging Face folder "
                               "(config.json and the weights)")
        if offline:
            raise TeacherError(f"{source!r} is not a local folder; to download it from the hub pass --online, or "
                               "give a local Hugging Face folder")
    elif path.is_dir() and not (path / "config.json").is_file():
        raise TeacherError(f"the teacher folder {source} has no config.json: is it a Hugging Face model folder?")
    try:
        return AutoConfig.from_pretrained(source, local_files_only=offline)
    except OSError as exc:
        where = "folder" if path.exists() else "hub id"
        raise TeacherError(f"cannot read a Hugging Face config from {source!r} ({where}): "
                           f"{str(exc).splitlines()[0]}") from exc



@contextmanager
def _loading(what: str):
    """Quiet transformers' loading chatter ("some weights were newly initialised" is expected for a fresh
    head) and turn its loading errors into one TeacherError line naming `what`."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise TeacherError(f"cannot load {what}: {str(exc).splitlines()[0]}") from None
    finally:
        hf_logging.set_verbosity(verbosity)


def load_encoder(source: str | os.PathLike, offline: bool = True) -> nn.Module:
    """Any checkpoint of a supported family as a bare encoder (for --student-init: layers only)."""
    from transformers import AutoModel

    with _loading(str(source)):
        return AutoModel.from_pretrained(str(source), use_safetensors=True, local_files_only=offline,
                                         trust_remote_code=False).eval()


def head_names(source: str | os.PathLike, offline: bool = True) -> list[str] | None:
    """The class names of the checkpoint's classification head, in output order; None when it has no
    head or only transformers' placeholders (LABEL_0 ... LABEL_{n-1}, what a config without id2label gets)."""
    config = teacher_config(str(source), offline)
    if not any(a.endswith(("ForSequenceClassification", HEAD_CLASSES[TOKENS])) for a in config.architectures or []):
        return None
    names = [str(config.id2label[i]) for i in sorted(config.id2label)] if config.id2label else []
    if not names or names == [f"LABEL_{i}" for i in range(len(names))]:
        return None
    return names


def check_teacher(source: str | os.PathLike, offline: bool, init: str) -> None:
    """Refuse, before anything is written, a teacher folder edgekd cannot use, naming why and what to do."""
    config = teacher_config(str(source), offline)
    problems = []
    if getattr(config, "auto_map", None):
        problems.append("its config.json asks for remote code (auto_map); edgekd never runs code from a model "
                        "folder: use a checkpoint of a built-in transformers family")
    family = None
    try:
        family = family_of(config)
    except TeacherError as exc:
        problems.append(str(exc))
    folder = Path(source)
    if folder.is_dir():
        weights = sorted(p.name for p in folder.glob("*.safetensors"))
        index = (folder / "model.safetensors.index.json").is_file()
        if weights and "model.safetensors" not in weights and not index:
            problems.append(f"its weights must be model.safetensors (or sharded with model.safetensors.index.json); "
                            f"found only {', '.join(weights)}: is a file from another model in the folder?")
    if family is not None and init == "teacher":
        problems += init_problems(family, config)
    if problems:
        raise TeacherError(f"teacher {source}: " + "; ".join(problems))


def init_problems(family, config) -> list[str]:
    """Why --init teacher cannot copy this teacher's layers (empty when it can)."""
    if not family.copies_layers:
        return [f"--init teacher copies teacher layers, but {family.why_not}; use --init random (the default for "
                f"{config.model_type}) or --student-init PATH with a BERT-family checkpoint"]
    if family.activation(config) is None:
        act = getattr(config, "hidden_act", getattr(config, "activation", "?"))
        return [f"--init teacher: the student has no {act!r} activation (gelu, gelu_new, relu); use --init random"]
    return []


def resolve_init(init: str, model_type: str) -> str:
    """`auto` -> teacher where the family's layers can be copied, else random."""
    if init != "auto":
        return init
    return "teacher" if model_type in LAYER_COPYING else "random"


def check_tokenizer(encoder, source: str | os.PathLike, offline: bool, texts: list[str], log=print,
                    sample: int = 5000, max_unknown: float = 0.05) -> float:
    """The tokenizer must fit the teacher: no id beyond its embedding rows (refused), and few unknown
    tokens on the training texts (a warning above `max_unknown`). Returns the unknown share."""
    import warnings

    rows = teacher_config(str(source), offline).vocab_size
    if encoder.vocab_size > rows:
        raise TeacherError(f"the tokenizer has {encoder.vocab_size} tokens but the teacher's embedding only {rows} "
                           f"rows: tokenizer.json is not this teacher's (wrong folder?)")
    unk = next((encoder.tokenizer.token_to_id(t) for t in ("[UNK]", "<unk>", "<UNK>")
                if encoder.tokenizer.token_to_id(t) is not None), None)
    if unk is None or not texts:
        return 0.0
    ids = encoder.token_ids(texts[:sample])  # pairs too: both texts are tokenized
    total = sum(len(row) for row in ids)
    share = sum(row.count(unk) for row in ids) / max(total, 1)
    if share > max_unknown:
        warnings.warn(f"{100 * share:.1f}% of the training tokens are unknown to the teacher's tokenizer; is it "
                      "the right tokenizer for this teacher and this language?", stacklevel=2)
    return share


def head_order(names: list[str], labels: list[str]) -> list[int] | None:
    """For a head predicting `names`, the head output to use for each of `labels` (None when identical);
    TeacherError when the names cannot be matched one to one (case and spacing ignored)."""
    key = [n.strip().lower() for n in names]
    want = [n.strip().lower() for n in labels]
    if key == want:
        return None
    if sorted(key) != sorted(want) or len(set(key)) != len(key):
        raise TeacherError(f"the teacher's classifier predicts {names}, but the data's labels are {labels}; they "
                           "cannot be matched by name. Give --label-names in the head's terms, or retrain the head "
                           "(config teacher_stage.force = true)")
    return [key.index(w) for w in want]


def output_layer(head: nn.Module) -> nn.Linear:
    """The last linear layer of a classification head (BERT's `classifier`, RoBERTa's `classifier.out_proj`,
    an exit head's `classifier`): the one whose rows are the outputs."""
    return [m for m in head.modules() if isinstance(m, nn.Linear)][-1]


def reorder_head(model: nn.Module, order: list[int]) -> None:
    """Permute the classification head's outputs so that output k predicts label k."""
    last = output_layer(model.classifier) if hasattr(model, "classifier") else None
    if last is None or last.out_features != len(order):
        raise TeacherError(f"cannot find the classification head of {type(model).__name__} to reorder its outputs")
    index = torch.tensor(order)
    with torch.no_grad():
        last.weight.copy_(last.weight[index])
        if last.bias is not None:
            last.bias.copy_(last.bias[index])


def teacher_problem(source: str | os.PathLike, offline: bool = True) -> tuple[str | None, str]:
    """(problem type, why) from the checkpoint's config: its `problem_type` when set, regression for a task head
    with one output and no type (as transformers reads it), else (None, "")."""
    from runtime.exits import HF_PROBLEM_TYPES

    config = teacher_config(str(source), offline)
    ours = {hf: name for name, hf in HF_PROBLEM_TYPES.items()}
    if getattr(config, "problem_type", None) in ours:
        return ours[config.problem_type], f"the teacher's config.problem_type is {config.problem_type}"
    archs = config.architectures or []
    if any(a.endswith(HEAD_CLASSES[TOKENS]) for a in archs):
        return TOKENS, f"the teacher is a token classifier ({archs[0]})"
    if any(a.endswith("ForSequenceClassification") for a in archs) and config.num_labels == 1:
        return "regression", "the teacher's task head has one output and no problem_type (transformers: regression)"
    return None, ""


# the transformers class suffix of a task head: sequence classifiers, and token classifiers for token tags
HEAD_CLASSES = {TOKENS: "ForTokenClassification"}


def head_class(problem: str) -> str:
    return HEAD_CLASSES.get(problem, "ForSequenceClassification")


def has_task_head(source: str | os.PathLike, num_labels: int, offline: bool = True,
                  problem: str = "single-label") -> bool:
    """True when the checkpoint already is a classifier of the problem's kind (sequence, or token for token
    classification) with `num_labels` outputs."""
    config = teacher_config(str(source), offline)
    archs = config.architectures or []
    return any(a.endswith(head_class(problem)) for a in archs) and config.num_labels == num_labels


def load_teacher(source: str | os.PathLike, num_labels: int, offline: bool = True,
                 labels: list[str] | None = None, problem: str = "single-label") -> nn.Module:
    """A BERT-family sequence classifier (a token classifier for token classification) from a local folder (or
    hub id when online).

    Safetensors weights only; no remote code. A checkpoint without a task head
    gets a freshly initialised classifier (the `teacher` stage trains it).
    """
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    from runtime.exits import HF_PROBLEM_TYPES

    source = str(source)
    check_teacher(source, offline, init="random")
    folder = Path(source)
    if folder.is_dir() and not any(folder.glob("*.safetensors")):
        raise TeacherError(f"{folder} has no .safetensors weights; edgekd loads no pickled checkpoints. Convert "
                           "it with `model.save_pretrained(dir, safe_serialization=True)`")
    with _loading(f"the teacher from {source}"):
        kind = AutoModelForTokenClassification if problem == TOKENS else AutoModelForSequenceClassification
        typed = {} if problem == TOKENS else {"problem_type": HF_PROBLEM_TYPES[problem]}
        model = kind.from_pretrained(source, num_labels=num_labels, use_safetensors=True, local_files_only=offline,
                                     trust_remote_code=False, ignore_mismatched_sizes=True, **typed)
    names = head_names(source, offline)
    if labels is not None:
        if names is not None and len(names) == num_labels:
            order = head_order(names, labels)
            if order is not None:
                reorder_head(model, order)
        # the saved teacher names its outputs in our order, so a reload maps them one to one
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {name: i for i, name in enumerate(labels)}
    return model


def teacher_tokenizer_json(source: str | os.PathLike, target: str | os.PathLike, offline: bool = True) -> Path:
    """Write the teacher's fast tokenizer as a single tokenizer.json at `target`."""
    source_path = Path(source) / "tokenizer.json"
    target = Path(target)
    if source_path.is_file():
        target.write_bytes(source_path.read_bytes())
        return target
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=offline, use_fast=True)
    except (OSError, ValueError) as exc:
        raise TeacherError(f"cannot load a fast tokenizer from {source}: {exc}") from exc
    tokenizer.backend_tokenizer.save(str(target))
    return target


class TeacherAdaptor(nn.Module):
    """Runs the teacher and returns logits plus the last layer's q, k, v (captured by its family's hooks)."""

    def __init__(self, model: nn.Module, relation_layer: int = -1):
        super().__init__()
        self.model = model
        self.family = family_of(model.config)
        self.relation_layer = relation_layer  # whose q, k, v `last_qkv` holds (an index; -1 the last layer)
        self._capture = self.family.capture(model, relation_layer)

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def num_heads(self) -> int:
        return self.model.config.num_attention_heads

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                hidden: bool = False) -> TeacherOutput:
        self._capture.clear()
        out = self.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=hidden,
                         **segment_kwargs(self.model, token_type_ids))
        return TeacherOutput(out.logits, self._capture.get(), out.hidden_states[-1] if hidden else None,
                             out.hidden_states if hidden else None)

    @property
    def word_embeddings(self) -> torch.Tensor:
        """The input embedding table (V,E)."""
        return self.family.word_embeddings(self.model)

    @property
    def word_vectors(self) -> torch.Tensor:
        """The input embeddings in hidden space (V,H) (projected when the family factorises them)."""
        with torch.no_grad():
            return self.family.word_vectors(self.model)


HEAD_MODULES = ("classifier", "pre_classifier", "score")  # the task head of transformers' sequence classifiers


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The task head's parameters (newly initialised when the teacher is fine-tuned from an encoder)."""
    return [p for name, p in model.named_parameters() if name.split(".")[0] in HEAD_MODULES]


def segment_kwargs(model: nn.Module, token_type_ids: torch.Tensor | None) -> dict:
    """`token_type_ids` for a transformers model whose family has segment embeddings (BERT, RoBERTa, ELECTRA,
    ALBERT): a text pair's segments. Families without them (DistilBERT, ModernBERT, DeBERTa-v3) take none and
    tell the two texts apart by the separators, as their own fine-tuning does."""
    if token_type_ids is None or not has_segments(model):
        return {}
    return {"token_type_ids": token_type_ids}


def has_segments(model: nn.Module) -> bool:
    """The model's family has segment (token type) embeddings."""
    return bool(getattr(model.config, "type_vocab_size", 0))
