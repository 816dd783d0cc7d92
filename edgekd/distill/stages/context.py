"""The shared state of one `edgekd distill` run, handed to every stage as `ctx`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import hashlib
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from edgekd.distill.augment import Augmenter, auto_factor, embedding_neighbours
from edgekd.config import STUDENT_STAGES, ConfigError, DistillConfig
from edgekd.data import TextDataset, read_labelled, read_unlabelled
from edgekd.distill import losses
from edgekd.distill.evaluate import all_exit_logits, classifier_logits, exit_table, main_score, scores
from edgekd.distill.model import EarlyExitStudent, StudentConfig
from edgekd.distill.refine import flip_labels
from edgekd.run_folder import RunFolder, read_json, write_json
from edgekd.distill.students import SmallStudentConfig, build_small_student, load_student, project_teacher_embeddings
from edgekd.distill.teacher import (
    TeacherAdaptor,
    check_teacher,
    check_tokenizer,
    has_task_head,
    head_names,
    head_order,
    load_encoder,
    load_teacher,
    output_layer,
    resolve_init,
    segment_kwargs,
    teacher_config,
    teacher_problem,
    teacher_tokenizer_json,
)
from edgekd.distill.batches import TokenizedData, label_tensor
from edgekd.distill.student_init import init_student_from_teacher, student_shape
from edgekd.distill.train import barrier, rank_world, setup_distributed
from edgekd.distill.vocab import MASK_TOKENS, VocabMap, build_vocab_map, compress_student, first_token, remapped_share
from runtime.exits import default_rule
from runtime.task import Task
from runtime.files import atomic_folder, atomic_write
from runtime.tokenize import TextEncoder

Log = Callable[[str], None]


@dataclass
class TransferSet:
    """The augmented transfer set: variants of the labelled texts, any --unlabeled text, and the teacher's
    logits on both (variants first)."""

    variants: list[str]
    unlabeled: list[str]
    logits: torch.Tensor

    @property
    def texts(self) -> list[str]:
        return self.variants + self.unlabeled


def classifier_loss(problem: str, scale: float = 1.0):
    """The gold loss of a Hugging Face sequence classifier (teacher A or B) for the problem type (cross-entropy,
    binary cross-entropy, MSE: what transformers uses; MSE in units of `scale`), as a train_loop loss function."""
    def loss_fn(module, batch):
        logits = module(input_ids=batch.input_ids, attention_mask=batch.mask,
                        **segment_kwargs(getattr(module, "module", module), batch.token_types)).logits
        return losses.gold_loss(logits, batch.labels, problem, scale), {}
    return loss_fn


classifier_ce = classifier_loss("single-label")


def declared_problem(cfg: DistillConfig) -> tuple[str | None, str]:
    """The problem type the teacher's config or --problem states (None: read it from the labels), and why.
    A flag that contradicts the teacher is refused."""
    from_teacher, why = teacher_problem(cfg.teacher, cfg.offline)
    flag = cfg.data.problem or None
    if from_teacher and flag and from_teacher != flag:
        raise ConfigError([f"--problem {flag}, but {why} ({from_teacher}); drop --problem or give a teacher "
                           f"without a {from_teacher} head"])
    if from_teacher:
        return from_teacher, why
    return (flag, "--problem") if flag else (None, "")


# Keys that may change between a run and its resumption.
_RESUMABLE_KEYS = {"stages", "device", "out", "eval_speeds", "keep_checkpoints"}


def check_same_config(run: RunFolder, cfg: DistillConfig) -> None:
    """Refuse to resume `run` under settings other than those it was made with (_RESUMABLE_KEYS may change).
    An automatic data.standardize (None) takes the run's saved choice first, so a resume keeps its units."""
    if not run.config.is_file():
        return
    old = DistillConfig.load(run.config).to_dict()
    if cfg.data.standardize is None:  # auto: what the run resolved it to (regression runs made before: off)
        cfg.data.standardize = old["data"]["standardize"]
    new = cfg.to_dict()
    changed = sorted(k for k in new if k not in _RESUMABLE_KEYS and old.get(k) != new[k])
    if changed:
        raise ConfigError([f"{run.root} was made with a different config ({', '.join(changed)} changed); "
                           "use a new --out to start afresh, or the same settings to resume"])


class RunContext:
    """What every stage shares for one run: config, data, tokenizer, device, run folder, and the
    lazily loaded teacher. Stages read from it and write through `run` (the run folder)."""

    def __init__(self, cfg: DistillConfig, log: Log = print, on_step: Callable[[str, int], None] | None = None):
        self.cfg = cfg.validate()
        self.on_step = on_step
        self.run = RunFolder(Path(cfg.out))
        self.device = setup_distributed(cfg.device)
        self.rank, _ = rank_world()
        self.log = log if self.rank == 0 else (lambda _: None)
        torch.manual_seed(cfg.seed)
        check_same_config(self.run, cfg)
        d = cfg.data  # everything below is read and checked before the run folder is made
        pair_col = d.text_pair_column or None
        declared, declared_why = declared_problem(cfg)
        self.full_train_set = read_labelled(d.train, d.text_column or None, d.label_column or None,
                                            text_pair_column=pair_col, problem=declared)
        self.problem = self.full_train_set.problem
        self.log(f"{d.train}: {len(self.full_train_set)} rows; {self.full_train_set.columns}")
        self.log(f"problem type: {self.problem} ({declared_why or self.full_train_set.problem_why})")
        if d.standardize and self.problem != "regression":
            raise ConfigError([f"--standardize scales regression targets; this task is {self.problem}"])
        if d.standardize is None:  # auto, resolved before config.json is written: a resume reads the choice back
            d.standardize = self.problem == "regression"
            if d.standardize:
                self.log("regression: training in units of the targets' standard deviation (--no-standardize: data "
                         "units)")
        if d.label_noise and self.problem != "single-label":
            raise ConfigError([f"data.label_noise flips single labels; this task is {self.problem}"])
        if d.label_noise:
            self.full_train_set.labels = flip_labels(self.full_train_set.labels, len(self.full_train_set.label_names),
                                                     d.label_noise, cfg.seed)
        self.train_set = self.full_train_set.subset(d.max_train or None)
        self.dev_set = read_labelled(d.dev, d.text_column or None, d.label_column or None, self.train_set.label_names,
                                     text_pair_column=pair_col, problem=self.problem)
        self.text_pair = self.train_set.text_pair
        if self.dev_set.text_pair != self.text_pair:
            raise ConfigError([f"{d.train} holds {'pairs' if self.text_pair else 'single texts'} ({self.train_set.columns}) "
                               f"but {d.dev} holds {'pairs' if self.dev_set.text_pair else 'single texts'} "
                               f"({self.dev_set.columns}); name the columns with --text-column / --text-pair-column"])
        if d.unlabeled:
            self.unlabeled_set = read_unlabelled(d.unlabeled, d.text_column or None,
                                                 text_pair_column=pair_col).subset(d.max_unlabeled or None)
            if self.unlabeled_set.text_pair != self.text_pair:
                raise ConfigError([f"{d.unlabeled} holds {'pairs' if self.unlabeled_set.text_pair else 'single texts'}"
                                   f" but the training data {'pairs' if self.text_pair else 'single texts'}"])
        else:
            self.unlabeled_set = TextDataset(self.train_set.texts, None, [], self.train_set.source).subset(d.max_unlabeled or None)
        self.label_values = self.train_set.label_names  # the labels as the data spells them
        if d.label_names and len(d.label_names) != len(self.label_values):
            raise ConfigError([f"--label-names gives {len(d.label_names)} names but {d.train} has "
                               f"{len(self.label_values)} labels ({', '.join(self.label_values)})"])
        # auto: copy the teacher's layers where its family allows it (bert, roberta, ...), else random
        self.init = resolve_init(cfg.student.init, teacher_config(cfg.teacher, cfg.offline).model_type)
        check_teacher(cfg.teacher, cfg.offline, self.init if cfg.student.kind == "transformer" else "random")
        if cfg.student.init_from:
            check_teacher(cfg.student.init_from, cfg.offline, "teacher")
        self.labels = list(d.label_names) or self.label_values  # the names the classifier's outputs carry
        names = head_names(cfg.teacher, cfg.offline) if self.problem != "regression" else None
        if names is not None and len(names) == len(self.labels):
            if not d.label_names and all(v.lstrip("-").isdigit() for v in self.label_values):
                self.labels = names  # numeric data labels: the teacher's head names them, in its order
            else:
                head_order(names, self.labels)  # refuses, naming both, when they cannot be matched
        saved = read_json(self.run.labels, None)
        if saved is not None and saved != self.labels:
            raise ConfigError([f"{self.run.labels} holds labels {saved} but the training file has {self.labels}"])
        stats = {}
        if self.problem == "regression":
            values = torch.tensor(self.train_set.labels, dtype=torch.float64)
            stats = {"target_mean": float(values.mean()), "target_scale": float(values.std()) or 1.0}
        self.task = Task(self.problem, list(self.labels), list(self.label_values), self.train_set.text_pair,
                         why=declared_why or self.full_train_set.problem_why, **stats).with_rule()
        if self.rank == 0:
            self.run.root.mkdir(parents=True, exist_ok=True)
            cfg.save(self.run.config)
            write_json(self.run.labels, self.labels)
            write_json(self.run.task, self.task.to_dict())
            write_json(self.run.label_values, self.label_values)
            if not self.run.tokenizer.is_file():
                teacher_tokenizer_json(cfg.teacher, self.run.tokenizer, cfg.offline)
        barrier()
        self.encoder = TextEncoder.from_file(self.run.tokenizer, d.max_length)
        check_tokenizer(self.encoder, cfg.teacher, cfg.offline, self.train_set.texts, self.log)
        if self.text_pair and cfg.student.kind != "transformer":
            raise ConfigError([f"a {cfg.student.kind} student takes single texts; for text pairs use --student "
                               "transformer (the default)"])
        self.train = TokenizedData(self.encoder, self.train_set.texts, self.label_tensor(self.train_set.labels))
        self.dev = TokenizedData(self.encoder, self.dev_set.texts, self.label_tensor(self.dev_set.labels))
        self.unlabeled = TokenizedData(self.encoder, self.unlabeled_set.texts)
        self._teacher = None
        self._vocab: VocabMap | None = None
        self._transfer: TransferSet | None = None

    # ------------------------------------------------------------------ helpers
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

    def start_at_mean(self, heads) -> None:
        """With data.standardize (regression), new heads' last linear layers start at the training targets'
        mean (their bias), so the first steps learn the text, not the offset."""
        if not self.cfg.data.standardize:
            return
        with torch.no_grad():
            for head in heads:
                output_layer(head).bias.fill_(self.task.target_mean)

    def start_student_heads(self, heads) -> None:
        """A new student's heads: start_at_mean; with student.head_bias "prior", a multi-label head's bias is
        each label's log-odds of its frequency in the training rows (GoEmotions: 28 labels at 0.2-9%, so a zero
        bias starts every label at p 0.5 and the first steps only push them down). The teacher's head starts as
        transformers makes it."""
        self.start_at_mean(heads)
        if self.problem != "multi-label" or self.cfg.student.head_bias != "prior":
            return
        known = self.train.labels[losses.known(self.train.labels, self.problem)]
        bias = torch.logit(known.mean(0), eps=1e-4) if len(known) else torch.zeros(self.num_outputs)
        with torch.no_grad():
            for head in heads:
                output_layer(head).bias.copy_(bias)

    def gold_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return losses.gold_loss(logits, labels, self.problem, self.loss_scale)

    def teacher_source(self) -> str:
        if self.run.teacher.is_dir():
            return str(self.run.teacher)
        if has_task_head(self.cfg.teacher, len(self.labels), self.cfg.offline):
            return self.cfg.teacher
        raise ConfigError([f"the teacher {self.cfg.teacher} has no task head for {len(self.labels)} labels; "
                           "run the `teacher` stage first (--stages teacher,...)"])

    def reset_teacher(self) -> None:
        """Forget the loaded teacher (after the teacher stage wrote a new one)."""
        self._teacher = None

    def teacher(self) -> TeacherAdaptor:
        if self._teacher is None:
            model = load_teacher(self.teacher_source(), len(self.labels), self.cfg.offline, self.labels,
                                 self.problem).to(self.device).eval()
            for p in model.parameters():
                p.requires_grad_(False)
            self._teacher = TeacherAdaptor(model)
        return self._teacher

    def new_student(self):
        """A fresh student of the configured shape, initialised as configured (seeded)."""
        s = self.cfg.student
        torch.manual_seed(self.cfg.seed)
        if s.kind != "transformer":
            return self._new_small_student()
        teacher_cfg = self.teacher().model.config
        source = None  # the checkpoint whose layers the student copies
        if s.init_from:
            source = load_encoder(s.init_from, self.cfg.offline)
        elif self.init == "teacher":
            source = self.teacher().model
        cfg = StudentConfig(
            vocab_size=self.encoder.vocab_size, hidden_size=s.hidden, num_layers=s.layers, num_heads=s.heads,
            ffn_size=s.ffn, num_labels=len(self.labels), problem=self.problem, head_type=s.head_type, dropout=s.dropout,
            max_position=min(512, self.teacher().family.max_positions(teacher_cfg)), pad_token_id=self.encoder.pad_id,
            **(student_shape(source.config) if source is not None else {}),
        )
        student = EarlyExitStudent(cfg)
        self.start_student_heads(student.heads)
        if source is not None:
            words = source is self.teacher().model or self._same_vocabulary(s.init_from)
            used = init_student_from_teacher(student, source, words=words)
            where = s.init_from if s.init_from else "teacher"
            self.log(f"student initialised from {where} layers {used}" +
                     ("" if words else " (word embeddings random: its vocabulary is not the teacher's)"))
        if s.vocab_keep or s.vocab_size:
            student = compress_student(student, self.vocab_map())
        return student.to(self.device)

    def _same_vocabulary(self, folder: str) -> bool:
        """True when `folder`'s tokenizer.json is byte for byte the run's (its word rows then mean the same)."""
        theirs = Path(folder) / "tokenizer.json"
        return theirs.is_file() and theirs.read_bytes() == self.run.tokenizer.read_bytes()

    def _new_small_student(self):
        s = self.cfg.student
        cfg = SmallStudentConfig(kind=s.kind, vocab_size=self.encoder.vocab_size, embed_size=s.embed,
                                 hidden_size=s.hidden, num_labels=len(self.labels), problem=self.problem,
                                 dropout=s.dropout,
                                 pad_token_id=self.encoder.pad_id)
        student = build_small_student(cfg)
        self.start_student_heads([student.classifier])
        if self.init == "teacher":
            embedding = self.teacher().word_embeddings
            with torch.no_grad():
                student.embeddings.word.weight.copy_(project_teacher_embeddings(embedding, s.embed))
            self.log(f"{s.kind} embeddings projected from the teacher's (PCA to {s.embed})")
        if s.vocab_keep or s.vocab_size:
            student = compress_student(student, self.vocab_map())
        return student.to(self.device)

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

    def student_dev(self, student: EarlyExitStudent) -> dict:
        exits = all_exit_logits(student, self.dev, self.device)
        labels = self.dev.labels
        return {**self.dev_scores(exits[-1]),
                "exits": exit_table(exits, labels, self.cfg.eval_speeds, self.problem, self.exit_scale,
                                    default_rule(self.problem).patience)}

    def dev_scores(self, logits: torch.Tensor) -> dict:
        """Every metric of the problem type on dev, as dev_<metric>: dev_accuracy (and dev_f1, the positive
        class's F1 on a binary task, as GLUE reports for QQP and MRPC); dev_micro_f1, dev_macro_f1;
        dev_pearson, dev_spearman."""
        return {f"dev_{k}": v for k, v in scores(logits, self.dev.labels, self.problem).items()}

    def train_targets(self) -> torch.Tensor:
        """KD targets of the training rows: refined ones after `refine`, else the teacher's logits."""
        if self.run.refined_logits.is_file() and "refine" in self.run.finished():
            return torch.load(self.run.refined_logits, map_location="cpu", weights_only=True)
        return self.teacher_logits()

    # ------------------------------------------------------------ transfer set (small labelled data)
    def augment_factor(self) -> int:
        """data.augment, or for auto (-1) the factor the labelled set's size calls for (0 = off)."""
        return auto_factor(len(self.train_set)) if self.cfg.data.augment < 0 else self.cfg.data.augment

    def transfer(self) -> TransferSet | None:
        """The transfer set, or None when augmentation is off.

        Built once (seeded, with a progress bar) and cached in transfer/; a resumed run reuses it unchanged."""
        factor = self.augment_factor()
        if factor == 0:
            return None
        if self._transfer is not None:
            return self._transfer
        folder = self.run.transfer
        extra = self.unlabeled_set.texts if self.cfg.data.unlabeled else []
        meta = {"factor": factor, "seed": self.cfg.seed, "labelled_rows": len(self.train_set),
                "labelled_sha256": hashlib.sha256("\n".join(t if isinstance(t, str) else "\t".join(t)
                                                             for t in self.train_set.texts).encode()).hexdigest(),
                "unlabeled_rows": len(extra)}
        variants_file, logits_file, meta_file = self.run.transfer_files(folder)
        if read_json(meta_file, None) == meta and logits_file.is_file():
            variants = [v if isinstance(v, str) else tuple(v) for v in read_json(variants_file, [])]  # pairs
            logits = torch.load(logits_file, map_location="cpu", weights_only=True)
            self.log(f"transfer set: {len(variants)} variants ({factor}x) + {len(extra)} unlabelled rows, "
                     f"reused from {folder}")
        else:
            self.log(f"transfer set: {factor}x the {len(self.train_set)} labelled rows (augmentation; data.augment "
                     f"{self.cfg.data.augment}{' = auto' if self.cfg.data.augment < 0 else ''}, 0 turns it off)")
            teacher = self.teacher()
            vocab = self.encoder.tokenizer.get_vocab()
            words = {w.lower() for text in self.train_set.texts
                     for side in ((text,) if isinstance(text, str) else text) for w in side.split()}
            augmenter = Augmenter(first_token(self.encoder.tokenizer, MASK_TOKENS),
                                  embedding_neighbours(words, vocab, teacher.word_embeddings))
            with tqdm(total=len(self.train_set), desc="transfer set", unit="text", disable=self.rank != 0) as bar:
                variants = augmenter.transfer_set(self.train_set.texts, factor, self.cfg.seed, bar.update)
            self.log(f"teacher logits on {len(variants) + len(extra)} transfer rows")
            data = TokenizedData(self.encoder, variants + extra)
            logits = classifier_logits(lambda i, m, t: teacher(i, m, t).logits, data, self.device).cpu()
            if self.rank == 0:
                with atomic_folder(folder) as tmp:
                    variants_file, logits_file, meta_file = self.run.transfer_files(tmp)
                    write_json(variants_file, variants)
                    torch.save(logits, logits_file)
                    write_json(meta_file, meta)
            barrier()
        self._transfer = TransferSet(variants, extra, logits)
        return self._transfer

    def unlabeled_data(self) -> TokenizedData:
        """Text for the stages that need no labels (attention, branches): --unlabeled (or the train texts) + the
        transfer variants when the run has a transfer set."""
        transfer = self.transfer()
        if transfer is None:
            return self.unlabeled
        return TokenizedData(self.encoder, self.unlabeled_set.texts + transfer.variants)

    def dev_score(self, forward) -> float:
        """The main metric on dev (accuracy, micro-F1, Pearson) of `forward(ids, mask, types) -> logits`: the
        best-checkpoint score."""
        return main_score(classifier_logits(forward, self.dev, self.device), self.dev.labels, self.problem)

    def teacher_logits(self) -> torch.Tensor:
        """The teacher's logits on the training rows, computed once and cached."""
        path = self.run.teacher_logits
        if path.is_file():
            cached = torch.load(path, map_location="cpu", weights_only=True)
            if cached.shape[0] == len(self.train):
                return cached
        teacher = self.teacher()
        self.log(f"teacher logits on {len(self.train)} training rows")
        logits = classifier_logits(lambda i, m, t: teacher(i, m, t).logits, self.train, self.device)
        if self.rank == 0:
            atomic_write(path, lambda tmp: torch.save(logits, tmp))
        barrier()
        return logits
