"""Typed distillation config: dataclasses with to/from JSON, validated once.

`validate()` raises one ConfigError listing every problem. Presets are named
partial configs (dicts) merged under the user's file and flags.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekd.presets import PRESETS
from runtime.errors import EdgeKDError
from runtime.exits import PROBLEMS, REPORT_SPEEDS
from runtime.files import atomic_write_text
from runtime.records import decode

# The stages of `edgekd distill` in run order: the one place it is written (edgekd.distill.stages.REGISTRY follows it,
# validation reads it without importing torch).
STAGES = ("teacher", "refine", "attention", "baseline", "finetune", "branches")
# The stages that carry the early-exit student forward, in run order: each starts from the last one's student,
# and the run publishes the latest that finished.
STUDENT_STAGES = tuple(s for s in STAGES if s in ("attention", "finetune", "branches"))
DEFAULT_STAGES = ["teacher", "attention", "finetune", "branches"]
SMALL_STUDENT_STAGES = ["teacher", "finetune"]  # BiLSTM / TextCNN: no attention to distil, no exits to train
CONFIG_FILE = "config.json"


def flag(help: str, name: str = "", parse: str = "", cli_type: type | None = None, invert: bool = False) -> dict:
    """Field metadata that makes a config field a flag of `edgekd distill` (edgekd.cli.distill builds its options
    from these): `name` the flag's spelling without dashes (default: the field's name with dashes), `parse`
    how its text becomes the value ("list": comma-separated; "label_names": edgekd.data.label_names_option),
    `cli_type` the flag's type where the field's default does not say it, `invert` a bool flag that sets the
    field to its negation (--online sets offline false)."""
    return {"flag": {"help": help, "name": name, "parse": parse, "type": cli_type, "invert": invert}}


class ConfigError(EdgeKDError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid config:\n  - " + "\n  - ".join(problems))


@dataclass
class DataConfig:
    train: str = field(default="", metadata=flag("Labelled training file (TSV, CSV or JSONL)."))
    dev: str = field(default="", metadata=flag("Labelled dev file; accuracy is reported after each stage."))
    unlabeled: str = field(default="", metadata=flag(
        "Unlabelled text (.txt, one per line, or a labelled file's text) for the attention and branches stages; "
        "default: the train texts."))
    text_column: str = field(default="", metadata=flag(
        "Text column of the data files (default: sentence, text, content, review, ...)."))
    # a text pair's second column (sentence2, question2, hypothesis, text_pair, passage are found without it)
    text_pair_column: str = field(default="", metadata=flag(
        "Second text column: the data are text pairs (paraphrase, entailment, duplicate questions, reranking). "
        "Found without the flag when the files have sentence1/sentence2, question1/question2, "
        "premise/hypothesis, text/text_pair or query/passage."))
    label_column: str = field(default="", metadata=flag(
        "Label column of the data files (default: label, labels, class, ...)."))
    accept_labels: bool = field(default=False, metadata=flag(
        "Train labels that look like typos (one seen once beside labels seen many times, one equal to another up "
        "to case, a non-number among numbers) as classes of their own, instead of refusing the file."))
    label_names: list[str] = field(default_factory=list, metadata=flag(
        "Names for the data's labels in their sorted order: comma-separated (negative,positive for SST-2's 0,1) "
        "or @FILE with one name a line (@../shared/data/goemotions/labels.txt); predictions then print names.",
        parse="label_names", cli_type=str))
    # single-label | multi-label | regression | token-classification; "" = the teacher's config.problem_type, else
    # found from the files and labels
    problem: str = field(default="", metadata=flag(
        "single-label (one class per text, softmax) | multi-label (any number of labels, sigmoids) | regression "
        "(a number) | token-classification (a tag per word, e.g. named entities). Default: the teacher's "
        "config.problem_type (or its token-classifier head), else found from the data: a CoNLL file (a word and "
        "its tag a line, a blank line between sentences) or JSONL with tokens and ner_tags -> token-classification; "
        "a cell listing several labels such as 8,20 -> multi-label; numbers not all whole -> regression."))
    # regression: train in units of the training targets' s.d. (every MSE divided by s^2) with new heads starting
    # at the targets' mean; the bundle answers in the data's units either way. None = on for regression (STS-B:
    # student 84.75 Pearson on dev against 82.54 in data units); the run's config.json records what was used
    standardize: bool | None = field(default=None, metadata=flag(
        "Regression: train in units of the training targets' standard deviation (every MSE / s^2), new heads "
        "starting at their mean (the default for regression: STS-B's student 84.75 Pearson against 82.54); the "
        "bundle answers in the data's units either way.", cli_type=bool))
    max_train: int = 0  # student stages use the first N train rows (0 = all); rows are shuffled per epoch anyway
    max_unlabeled: int = 0  # use the first N unlabelled rows (0 = all)
    max_length: int = field(default=64, metadata=flag("Tokens per text."))  # [CLS] and [SEP] included
    label_noise: float = 0.0  # experiments: flip this share of the training labels at random (dev stays clean)
    # transfer set N x the labelled rows (masking, embedding-neighbour swaps, n-gram spans), labelled by the
    # teacher, for the attention and finetune stages; -1 = auto (on below AUGMENT_BELOW labelled rows); 0 = off
    augment: int = field(default=-1, metadata=flag(
        "Transfer set N x the labelled rows (masked words, embedding-neighbour swaps, n-gram spans; labelled by "
        "the teacher) for the attention and finetune stages. Default: on below 20k labelled rows (factor "
        "printed); 0 turns it off."))


@dataclass
class StudentShape:
    kind: str = field(default="transformer", metadata=flag(  # bilstm / textcnn: one stage, no exits
        "Student kind: transformer (early exit) | bilstm | textcnn.", name="student"))
    layers: int = field(default=4, metadata=flag("Student layers (one exit head each)."))
    hidden: int = field(default=256, metadata=flag(
        "Student width (quick preset: 384, the reference teacher's; no preset: 256)."))
    heads: int = field(default=8, metadata=flag(
        "Student attention heads (head size = width / heads; init from the teacher needs the teacher's head size; "
        "quick: 12, no preset: 8)."))
    ffn: int = field(default=1024, metadata=flag("Student feed-forward size (quick: 1536, no preset: 1024)."))
    head_type: str = field(default="mean", metadata=flag("Exit head: mean | cls | attention."))
    # auto: teacher where the family's layers fit a BERT-shaped student (bert, roberta, xlm-roberta, camembert,
    # electra, distilbert, albert), random for deberta-v2 / modernbert | teacher (layers + width selection;
    # bilstm/textcnn: PCA of its embeddings) | random
    init: str = field(default="auto", metadata=flag(
        "Student init: auto (teacher where the family's layers can be copied, else random) | teacher (layer + "
        "width selection) | random."))
    init_from: str = field(default="", metadata=flag(
        "Start the student from this BERT-family checkpoint's layers instead of the teacher's (e.g. for a "
        "DeBERTa or ModernBERT teacher).", name="student-init"))
    embed: int = 300  # bilstm / textcnn embedding width (hidden = LSTM units per direction)
    dropout: float = 0.1
    vocab_keep: float = field(default=0.0, metadata=flag(  # 0 = off
        "GLMD vocabulary compression: keep this fraction of the tokens (0 < f <= 1)."))
    vocab_size: int = field(default=0, metadata=flag(  # 0 = off; at most one of the two
        "GLMD vocabulary compression: keep this many tokens (instead of --vocab-keep)."))
    vocab_metric: str = "dot"  # nearest kept token by dot product | cosine
    # where a new student's heads start: default (the output bias as the layer initialises it, near 0; regression:
    # the training targets' mean) | prior (multi-label: each label's bias at the log-odds of its share of the
    # training rows, so no head starts near p 0.5 for a label seen on 1% of the texts; otherwise as default).
    # Opt-in (benchmarks/multi_label.json): measured only with finetune.head_lr 10 on GoEmotions, and a new
    # default would refuse to resume runs made before it
    head_bias: str = "default"


@dataclass
class Optim:
    lr: float = 1e-4
    epochs: float = 1.0
    max_steps: int = 0  # overrides epochs when > 0
    min_steps: int = 0  # data-size schedule: at least this many steps however few the rows (not with max_steps)
    eval_every: int = 0  # > 0: score on dev every N steps and at the end, keep the best (0 = keep the last)
    # stop on the data: with eval_every, stop once `patience` evaluations in a row gained less than min_delta
    # over the best dev score (0 = off), but not before `epochs` (at least min_steps) are done; the schedule then
    # runs up to max_epochs (the cap; 0 = `epochs`)
    patience: int = 0
    min_delta: float = 0.001
    max_epochs: float = 0.0
    # when patience stops the stage: go back to the best checkpoint and let the learning rate fall linearly to 0
    # over one patience window (patience x eval_every steps), scored as before; the cooled-down model is kept
    # only when dev gains (a stage stopped by patience has its learning rate still high; the cap's has not)
    anneal: bool = True
    # learning rate of the newly initialised parameters (the classifier head) as a multiple of `lr`
    head_lr: float = 1.0
    batch_size: int = 32
    grad_accum: int = 1  # micro-batches per optimizer step
    warmup: float = 0.06  # fraction of steps
    weight_decay: float = 0.01
    checkpoint_every: int = 200  # steps between resumable checkpoints


@dataclass
class TeacherOptions(Optim):
    lr: float = 5e-5
    max_train: int = 0  # the teacher trains on the first N train rows (0 = all of the file)
    force: bool = False  # fine-tune even when the checkpoint already has a task head
    # which checkpoint the stage keeps: score (the best dev metric) | loss (the lowest dev loss of the task's own
    # kind: a better-calibrated teacher, which may distil better: issue 41's lever)
    keep: str = "score"


@dataclass
class AttentionOptions(Optim):
    lr: float = 2e-4
    alpha: float = 1.0  # weight of attention-distribution KL
    beta: float = 1.0  # weight of value-relation KL
    relation_heads: int = 0  # 0 = largest common divisor of both widths <= max head count
    # which relations the student's last layer learns: attention-value (MiniLM: softmax(QK^T) and softmax(VV^T))
    # | qkv (MiniLMv2: softmax(QQ^T), softmax(KK^T), softmax(VV^T))
    relations: str = "attention-value"
    # the teacher layer the relations come from: 0 = its last, k > 0 its k-th (1-based), k < 0 counted from the
    # end (MiniLMv2 takes an upper-middle layer of large teachers)
    teacher_layer: int = 0
    # TinyBERT's hidden-state matching beside the relations: the weight of the MSE between each student layer's
    # output, projected to the teacher's width by a learned linear map (dropped from the exported student), and
    # the output of the teacher layer it maps to (uniform: 6 -> 4 takes teacher layers 1, 3, 4, 6); 0 = off
    hidden_weight: float = 0.0
    objective: str = field(default="relations", metadata=flag(
        "Attention stage: relations (attention + value KL) | word (GLMD word prediction) | both."))
    word_weight: float = 1.0  # weight of the word-prediction KL when combined
    word_temperature: float = 15.0
    word_mask: float = 0.15  # share of input tokens replaced by [MASK] for the word objective


@dataclass
class FinetuneOptions(Optim):
    lr: float = 1e-4
    # the rate instead of `lr` for a transformer student whose layers start as a trained model's (student.init
    # teacher, or --student-init): a fine-tuning rate, not a from-scratch one (issue 41's study; 0 = lr)
    copied_lr: float = 0.0
    epochs: float = 2.0
    kd: str = field(default="soft", metadata=flag(  # soft: Hinton, T^2-scaled KL; mse: Tang
        "Task distillation: soft (temperature KL) | mse (logits)."))
    temperature: float = 2.0
    kd_weight: float = 0.7  # lambda: (1-lambda)*CE + lambda*KD


@dataclass
class BranchesOptions(Optim):
    lr: float = 5e-4


@dataclass
class RefineOptions(Optim):
    lr: float = 5e-5
    threshold: float = 0.9  # teacher A keeps rows whose score >= threshold
    score: str = "gold_prob"  # gold_prob | margin | ratio (p(gold) / max p)
    teacher_b: str = ""  # teacher B checkpoint (HF folder); default: the --teacher source, another seed
    b_data: str = "failing"  # teacher B trains on the failing rows (as specified) | kept (A's trusted rows)


@dataclass
class DistillConfig:
    teacher: str = field(default="", metadata=flag(
        "Teacher: a local Hugging Face folder (BERT family), or a hub id with --online."))
    out: str = field(default="", metadata=flag("Run folder. Re-running with the same folder resumes."))
    seed: int = field(default=42, metadata=flag("Random seed."))
    device: str = field(default="auto", metadata=flag("auto | cpu | cuda."))
    offline: bool = field(default=True, metadata=flag(  # never reach a hub (local folders only)
        "Allow hub downloads for --teacher.", name="online", invert=True))
    keep_checkpoints: bool = field(default=False, metadata=flag(
        "Keep each finished stage's resume checkpoint (with optimizer state: several times the model's size); "
        "by default only what later stages and export read is kept."))
    stages: list[str] = field(default_factory=lambda: list(DEFAULT_STAGES), metadata=flag(
        "Comma-separated stages, run in this order: " + ",".join(STAGES) + ".", parse="list", cli_type=str))
    data: DataConfig = field(default_factory=DataConfig)
    student: StudentShape = field(default_factory=StudentShape)
    teacher_stage: TeacherOptions = field(default_factory=TeacherOptions)
    attention: AttentionOptions = field(default_factory=AttentionOptions)
    finetune: FinetuneOptions = field(default_factory=FinetuneOptions)
    branches: BranchesOptions = field(default_factory=BranchesOptions)
    refine: RefineOptions = field(default_factory=RefineOptions)
    eval_speeds: list[float] = field(default_factory=lambda: list(REPORT_SPEEDS))

    # ------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistillConfig:
        problems: list[str] = []
        obj = decode(cls, data, "", problems)  # types from the dataclasses; unknown keys refused
        if problems:
            raise ConfigError(problems)
        return obj

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> DistillConfig:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError([f"cannot read config {path}: {exc}"]) from exc
        return cls.from_dict(data)

    # ------------------------------------------------------------- validation
    def validate(self) -> DistillConfig:
        p: list[str] = []
        if not self.teacher:
            p.append("teacher is required (--teacher DIR)")
        if not self.out:
            p.append("out is required (--out RUN_DIR)")
        if not self.data.train:
            p.append("data.train is required (--train FILE)")
        if not self.data.dev:
            p.append("data.dev is required (--dev FILE)")
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            p.append(f"unknown stages {unknown}; known: {', '.join(STAGES)}")
        if not self.stages:
            p.append("stages is empty")
        if self.device not in ("auto", "cpu", "cuda"):
            p.append(f"device {self.device!r} is not auto, cpu or cuda")
        s = self.student
        if s.kind not in ("transformer", "bilstm", "textcnn"):
            p.append(f"student.kind {s.kind!r} is not transformer, bilstm or textcnn")
        elif s.kind != "transformer":
            bad = [st for st in self.stages if st in ("attention", "branches")]
            if bad:
                p.append(f"stages {bad} need the transformer student (a {s.kind} has no attention and no exits); "
                         "use --stages teacher,baseline,finetune")
        if s.head_type not in ("mean", "cls", "attention"):
            p.append(f"student.head_type {s.head_type!r} is not mean, cls or attention")
        if s.head_bias not in ("default", "prior"):
            p.append(f"student.head_bias {s.head_bias!r} is not default or prior")
        if s.init not in ("auto", "teacher", "random"):
            p.append(f"student.init {s.init!r} is not auto, teacher or random")
        if s.init_from and s.kind != "transformer":
            p.append(f"student.init_from (--student-init) copies transformer layers; a {s.kind} student has none")
        for name in ("layers", "hidden", "heads", "ffn"):
            if getattr(s, name) < 1:
                p.append(f"student.{name} must be positive")
        if not 0 <= s.vocab_keep <= 1:
            p.append(f"student.vocab_keep is a fraction in [0, 1] (0 = off), got {s.vocab_keep:g}; "
                     "for a count of tokens use student.vocab_size (--vocab-size)")
        if s.vocab_size < 0:
            p.append("student.vocab_size must be >= 0 (0 = off)")
        if s.vocab_keep and s.vocab_size:
            p.append("give one of student.vocab_keep (--vocab-keep FRACTION) and student.vocab_size "
                     "(--vocab-size COUNT), not both")
        if s.vocab_metric not in ("dot", "cosine"):
            p.append(f"student.vocab_metric {s.vocab_metric!r} is not dot or cosine")
        if s.kind == "transformer" and s.heads > 0 and s.hidden % s.heads:  # heads: a transformer's only
            p.append(f"student.hidden {s.hidden} must divide by student.heads {s.heads}")
        if self.finetune.copied_lr < 0:
            p.append(f"finetune.copied_lr must be >= 0 (0 = finetune.lr), got {self.finetune.copied_lr}")
        if self.data.augment < -1:
            p.append(f"data.augment is a factor >= 0 (0 = off) or -1 (auto), got {self.data.augment}")
        if not 2 <= self.data.max_length <= 512:
            p.append(f"data.max_length must lie in [2, 512], got {self.data.max_length}")
        for name in _ALL_OPTIM:
            o: Optim = getattr(self, name)
            if o.lr <= 0:
                p.append(f"{name}.lr must be positive")
            if o.batch_size < 1 or o.grad_accum < 1 or o.batch_size % o.grad_accum:
                p.append(f"{name}.batch_size ({o.batch_size}) must be a positive multiple of grad_accum "
                         f"({o.grad_accum})")
            if o.epochs <= 0 and o.max_steps <= 0:
                p.append(f"{name}: epochs or max_steps must be positive")
            if o.min_steps < 0 or o.eval_every < 0:
                p.append(f"{name}: min_steps and eval_every must be >= 0")
            if o.patience < 0 or o.min_delta < 0 or o.max_epochs < 0 or o.head_lr <= 0:
                p.append(f"{name}: patience, min_delta and max_epochs must be >= 0 and head_lr positive")
            if o.patience and not o.eval_every:
                p.append(f"{name}: patience needs eval_every (evaluations to count)")
        if not 0 < self.refine.threshold <= 1 and self.refine.score == "gold_prob":
            p.append("refine.threshold must lie in (0, 1] for score gold_prob")
        if self.refine.score not in ("gold_prob", "margin", "ratio"):
            p.append(f"refine.score {self.refine.score!r} is not gold_prob, margin or ratio")
        if self.refine.b_data not in ("failing", "kept"):
            p.append(f"refine.b_data {self.refine.b_data!r} is not failing or kept")
        if not 0 <= self.data.label_noise < 1:
            p.append("data.label_noise must lie in [0, 1)")
        if self.data.problem not in ("", *PROBLEMS):
            p.append(f"data.problem {self.data.problem!r} is not single-label, multi-label or regression (or empty: "
                     "found from the teacher and the labels)")
        if self.data.problem in ("multi-label", "regression") and "refine" in self.stages:
            p.append(f"the refine stage filters rows by the teacher's probability of one gold class; a "
                     f"{self.data.problem} task has none: leave refine out of --stages")
        if self.attention.hidden_weight < 0:
            p.append("attention.hidden_weight must be >= 0 (0 = off)")
        if self.teacher_stage.keep not in ("score", "loss"):
            p.append(f"teacher_stage.keep {self.teacher_stage.keep!r} is not score or loss")
        if self.attention.relations not in ("attention-value", "qkv"):
            p.append(f"attention.relations {self.attention.relations!r} is not attention-value or qkv")
        if self.attention.objective not in ("relations", "word", "both"):
            p.append(f"attention.objective {self.attention.objective!r} is not relations, word or both")
        if self.finetune.kd not in ("soft", "mse"):
            p.append(f"finetune.kd {self.finetune.kd!r} is not soft or mse")
        if not 0 <= self.finetune.kd_weight <= 1:
            p.append("finetune.kd_weight must lie in [0, 1]")
        if self.finetune.temperature <= 0:
            p.append("finetune.temperature must be positive")
        if any(not 0 <= v <= 1 for v in self.eval_speeds):
            p.append("eval_speeds must lie in [0, 1]")
        if p:
            raise ConfigError(p)
        return self


def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


TRANSFORMER_SHAPE = ("layers", "hidden", "heads", "ffn")  # the student fields only a transformer student reads
_ALL_OPTIM = ("teacher_stage", "refine", "attention", "finetune", "branches")
# the section dataclass of each nested field of DistillConfig (its annotations are strings here)
_SECTIONS = {"data": DataConfig, "student": StudentShape, "teacher_stage": TeacherOptions,
             "attention": AttentionOptions, "finetune": FinetuneOptions, "branches": BranchesOptions,
             "refine": RefineOptions}

def resolve_config(file: str | None = None, preset: str | None = None, overrides: dict | None = None) -> DistillConfig:
    """preset < config file < flags; validated once."""
    merged: dict[str, Any] = {}
    if preset:
        if preset not in PRESETS:
            raise ConfigError([f"unknown preset {preset!r}; known: {', '.join(PRESETS)}"])
        merged = deep_merge(merged, PRESETS[preset])
    given: dict[str, Any] = {}  # what the file and the flags say (the preset aside)
    if file:
        try:
            data = json.loads(Path(file).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError([f"cannot read config {file}: {exc}"]) from exc
        given = deep_merge(given, data)
    if overrides:
        given = deep_merge(given, overrides)
    merged = deep_merge(merged, given)
    if merged.get("student", {}).get("kind", "transformer") != "transformer":
        if "stages" not in merged:
            merged["stages"] = list(SMALL_STUDENT_STAGES)  # the default list, chosen for the student type
        for key in TRANSFORMER_SHAPE:  # a preset's transformer shape is not a BiLSTM's or TextCNN's
            if key in PRESETS.get(preset or "", {}).get("student", {}) and key not in given.get("student", {}):
                merged["student"].pop(key, None)
    return DistillConfig.from_dict(merged).validate()


def optim_overrides(epochs: float | None, max_steps: int | None, batch_size: int | None) -> dict[str, Any]:
    """Flags that apply to every training stage."""
    one = {k: v for k, v in (("epochs", epochs), ("max_steps", max_steps), ("batch_size", batch_size)) if v is not None}
    if epochs is not None or max_steps is not None:
        one["min_steps"] = 0  # an explicit schedule wins over the data-size one and over patience
        one["patience"] = 0
        one["max_epochs"] = 0.0
    return {name: dict(one) for name in _ALL_OPTIM} if one else {}
