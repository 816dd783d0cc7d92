"""The shared state of one `edgekd distill` run, handed to every stage as `ctx`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from edgekd.config import STUDENT_STAGES, ConfigError, DistillConfig
from edgekd.distill import losses
from edgekd.distill.batches import TokenizedData, label_tensor
from edgekd.distill.evaluate import classifier_logits
from edgekd.distill.model import EarlyExitStudent
from edgekd.distill.prepare import prepare
from edgekd.distill.students import load_student
from edgekd.distill.teacher import (
    TeacherAdaptor,
    check_tokenizer,
    has_task_head,
    load_teacher,
    segment_kwargs,
    teacher_tokenizer_json,
)
from edgekd.distill.fork import fork_run
from edgekd.distill.train import barrier, rank_world, setup_distributed
from edgekd.distill.vocab import VocabMap, build_vocab_map, remapped_share
from edgekd.run_folder import RunFolder, write_json
from edgekd.tokens import TokenDataset, token_labels
from runtime.exits import TOKENS
from runtime.files import atomic_folder, atomic_write
from runtime.tokenize import TextEncoder

Log = Callable[[str], None]


def classifier_loss(problem: str, scale: float = 1.0):
    """The gold loss of a Hugging Face sequence classifier (teacher A or B) for the problem type (cross-entropy,
    binary cross-entropy, MSE: what transformers uses; MSE in units of `scale`), as a train_loop loss function."""
    def loss_fn(module, batch):
        logits = module(input_ids=batch.input_ids, attention_mask=batch.mask,
                        **segment_kwargs(getattr(module, "module", module), batch.token_type_ids)).logits
        return losses.gold_loss(logits, batch.labels, problem, scale), {}
    return loss_fn


classifier_ce = classifier_loss("single-label")


class RunContext:
    """What every stage shares for one run: config, data, tokenizer, device, run folder, and the
    lazily loaded teacher. Stages read from it and write through `run` (the run folder). What it holds is
    read and checked by edgekd.distill.prepare; a new student comes from edgekd.distill.factory, the transfer
    set from edgekd.distill.transfer, dev scores from edgekd.distill.dev."""

    def __init__(self, cfg: DistillConfig, log: Log = print, on_step: Callable[[str, int], None] | None = None,
                 source: str | Path | None = None):
        cfg = cfg.validate()
        self.on_step = on_step
        self.run = RunFolder(Path(cfg.out))
        self.device = setup_distributed(cfg.device)
        self.rank, _ = rank_world()
        self.log = log if self.rank == 0 else (lambda _: None)
        torch.manual_seed(cfg.seed)
        ready = prepare(cfg, self.run, self.log)  # everything is read and checked before the run folder is made
        self.cfg, self.task, self.init = ready.cfg, ready.task, ready.init
        self.full_train_set, self.train_set = ready.full_train_set, ready.train_set
        self.dev_set, self.unlabeled_set = ready.dev_set, ready.unlabeled_set
        if self.rank == 0:
            if source is not None:  # --from: the new run starts as the source's stages it shares
                fork_run(source, self.cfg, self.log)
            self.run.root.mkdir(parents=True, exist_ok=True)
            self.cfg.save(self.run.config)
            write_json(self.run.labels, self.labels)
            write_json(self.run.task, self.task.to_dict())
            write_json(self.run.label_values, self.task.label_values)
            if not self.run.tokenizer.is_file():
                teacher_tokenizer_json(self.cfg.teacher, self.run.tokenizer, self.cfg.offline)
        barrier()
        self.encoder = TextEncoder.from_file(self.run.tokenizer, self.cfg.data.max_length)
        check_tokenizer(self.encoder, self.cfg.teacher, self.cfg.offline, self.train_set.texts, self.log)
        self.train, self.dev = self.tokenized(self.train_set), self.tokenized(self.dev_set)
        self.unlabeled = TokenizedData(self.encoder, self.unlabeled_set.texts)
        self._teacher = None
        self._vocab: VocabMap | None = None
        self.cache: dict = {}  # what the stages compute once per process (the transfer set)

    problem = property(lambda self: self.task.problem)
    labels = property(lambda self: self.task.labels)
    label_values = property(lambda self: self.task.label_values)
    text_pair = property(lambda self: self.task.text_pair)

    # ------------------------------------------------------------------ helpers
    def tokenized(self, rows) -> TokenizedData:
        """A labelled TextDataset tokenized for training: its labels as this task's tensor; token classification's
        word tags put on the tokens the runtime reads them from (edgekd.tokens.token_labels)."""
        if self.problem != TOKENS:
            return TokenizedData(self.encoder, rows.texts, self.label_tensor(rows.labels))
        words = TokenDataset([text.split(" ") for text in rows.texts], rows.labels)
        texts, tags = token_labels(self.encoder, words, self.labels)
        return TokenizedData(self.encoder, texts, self.label_tensor(tags), per_token=True)

    def rule_mask(self, batch) -> torch.Tensor | None:
        """(B,T) bool: the tokens the token exit rule reads in `batch` (real, not special); None for the other
        problem types."""
        if self.problem != TOKENS:
            return None
        specials = self.cache.setdefault("special_ids", torch.tensor(self.encoder.special_ids, dtype=torch.long))
        return batch.mask.bool() & ~torch.isin(batch.input_ids, specials.to(batch.input_ids.device))

    def label_tensor(self, labels: list) -> torch.Tensor:
        """Labels (None = gold unknown) as this task's training tensor (edgekd.distill.batches.label_tensor)."""
        return label_tensor(labels, self.problem, len(self.labels))

    @property
    def num_outputs(self) -> int:
        """Outputs of the classifiers: one per label (one value for regression)."""
        return len(self.labels)

    @property
    def exit_scale(self) -> float:
        """Regression's exit-rule scale: the training targets' standard deviation (1 for the other types)."""
        return float(self.task.target_scale or 1.0)

    @property
    def loss_scale(self) -> float:
        """The unit of the regression losses: the targets' s.d. with data.standardize, else 1 (data units)."""
        return self.exit_scale if self.cfg.data.standardize else 1.0

    def gold_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return losses.gold_loss(logits, labels, self.problem, self.loss_scale)

    def teacher_source(self) -> str:
        if self.run.teacher.is_dir():
            return str(self.run.teacher)
        if has_task_head(self.cfg.teacher, len(self.labels), self.cfg.offline, self.problem):
            return self.cfg.teacher
        raise ConfigError([f"the teacher {self.cfg.teacher} has no task head for {len(self.labels)} labels; "
                           "run the `teacher` stage first (--stages teacher,...)"])

    def relation_layer(self, model) -> int:
        """attention.teacher_layer as an index into the teacher's layers (-1 the last), checked."""
        from edgekd.distill.families import family_of

        layers, k = family_of(model.config).num_layers(model.config), self.cfg.attention.teacher_layer
        if k == 0:
            return -1
        index = k - 1 if k > 0 else layers + k
        if not 0 <= index < layers:
            raise ConfigError([f"attention.teacher_layer {k}: the teacher has {layers} layers (give 1..{layers}, "
                               f"-1..-{layers}, or 0 for the last)"])
        return index

    def reset_teacher(self) -> None:
        """Forget the loaded teacher (after the teacher stage wrote a new one)."""
        self._teacher = None

    def teacher(self) -> TeacherAdaptor:
        if self._teacher is None:
            model = load_teacher(self.teacher_source(), len(self.labels), self.cfg.offline, self.labels,
                                 self.problem).to(self.device).eval()
            for p in model.parameters():
                p.requires_grad_(False)
            self._teacher = TeacherAdaptor(model, self.relation_layer(model))
        return self._teacher

    def vocab_map(self) -> VocabMap:
        """GLMD map from train + unlabelled token counts and the teacher's input embeddings (cached)."""
        if self._vocab is None:
            s = self.cfg.student
            texts = self.train_set.texts + (self.unlabeled_set.texts if self.cfg.data.unlabeled else [])
            embedding = self.teacher().word_embeddings
            self._vocab = build_vocab_map(self.encoder, texts, embedding, keep=s.vocab_keep or None,
                                          size=s.vocab_size or None, metric=s.vocab_metric)
            info = {"original_size": self._vocab.original_size, "kept_size": self._vocab.kept_size,
                    "dev_remapped_share": remapped_share(self.encoder, self.dev_set.texts, self._vocab)}
            if self.rank == 0:
                write_json(self.run.vocab, info)
            self.log(f"vocabulary: keeping {info['kept_size']} of {info['original_size']} tokens; "
                     f"{100 * info['dev_remapped_share']:.2f}% of dev tokens are remapped")
        return self._vocab

    def latest_student(self, before: str) -> EarlyExitStudent | None:
        """The student written by the last finished stage before `before`."""
        order = list(STUDENT_STAGES)
        for name in reversed(order[: order.index(before)] if before in order else order):
            folder = self.run.stage_student(name)
            if folder.is_dir():
                return load_student(folder).to(self.device)
        return None

    def save_student(self, name: str, student: EarlyExitStudent) -> None:
        if self.rank == 0:
            with atomic_folder(self.run.stage_student(name)) as tmp:
                student.save(tmp)
        barrier()

    def step_hook(self, name: str):
        return None if self.on_step is None else (lambda step: self.on_step(name, step))

    def train_targets(self) -> torch.Tensor:
        """KD targets of the training rows: refined ones after `refine`, else the teacher's logits."""
        if self.run.refined_logits.is_file() and "refine" in self.run.finished():
            return torch.load(self.run.refined_logits, map_location="cpu", weights_only=True)
        return self.teacher_logits()

    def teacher_logits(self) -> torch.Tensor:
        """The teacher's logits on the training rows, computed once and cached."""
        path = self.run.teacher_logits
        if path.is_file():
            cached = torch.load(path, map_location="cpu", weights_only=True)
            if cached.shape[0] == len(self.train):
                return cached
        teacher = self.teacher()
        self.log(f"teacher logits on {len(self.train)} training rows")
        logits = classifier_logits(lambda i, m, t: teacher(i, m, t).logits, self.train, self.device,
                                   desc="teacher logits (training rows)")
        if self.rank == 0:
            atomic_write(path, lambda tmp: torch.save(logits, tmp))
        barrier()
        return logits
