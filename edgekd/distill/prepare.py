"""The preparation step of a run: read and check the data, find the problem type, name the labels and build the
task record, before anything is written (RunContext writes the run folder from what this returns)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from edgekd.config import ConfigError, DistillConfig
from edgekd.data import TextDataset, is_token_file, read_labelled, read_unlabelled
from edgekd.distill.refine import flip_labels
from edgekd.distill.teacher import (
    check_teacher,
    head_names,
    head_order,
    resolve_init,
    teacher_config,
    teacher_problem,
)
from edgekd.run_folder import RunFolder, read_json
from runtime.exits import TOKENS
from runtime.task import Task

# Keys that may change between a run and its resumption.
RESUMABLE_KEYS = {"stages", "device", "out", "eval_speeds", "keep_checkpoints"}


@dataclass(frozen=True)
class Prepared:
    """What a run is made of, read and checked: the resolved config, the data sets, the task, the student's
    initialisation."""

    cfg: DistillConfig  # with the automatic choices resolved (data.standardize)
    full_train_set: TextDataset  # every training row (the teacher trains on it)
    train_set: TextDataset  # the rows the student stages use (data.max_train)
    dev_set: TextDataset
    unlabeled_set: TextDataset
    task: Task
    init: str  # teacher | random: how a new student starts


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


def check_same_config(run: RunFolder, cfg: DistillConfig) -> None:
    """Refuse to resume `run` under settings other than those it was made with (RESUMABLE_KEYS may change).
    An automatic data.standardize (None) takes the run's saved choice first, so a resume keeps its units."""
    if not run.config.is_file():
        return
    old = DistillConfig.load(run.config).to_dict()
    if cfg.data.standardize is None:  # auto: what the run resolved it to (regression runs made before: off)
        cfg.data.standardize = old["data"]["standardize"]
    new = cfg.to_dict()
    changed = sorted(k for k in new if k not in RESUMABLE_KEYS and old.get(k) != new[k])
    if changed:
        raise ConfigError([f"{run.root} was made with a different config ({', '.join(changed)} changed: "
                           f"{'; '.join(config_changes(old, new, changed))}); use a new --out to start afresh, or "
                           "the same settings to resume (a preset's defaults can move between versions: give the "
                           "run's values as flags or in --config)"])


def config_changes(old: dict, new: dict, keys: list[str]) -> list[str]:
    """'section.field run -> now' for each setting under `keys` that differs (whole values for plain keys)."""
    out = []
    for key in keys:
        a, b = old.get(key), new[key]
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{f} {a.get(f)!r} -> {b.get(f)!r}" for f in sorted(set(a) | set(b)) if a.get(f) != b.get(f)]
        else:
            out.append(f"{key} {a!r} -> {b!r}")
    return out


def _pairs_or_single(pair: bool) -> str:
    return "pairs" if pair else "single texts"


def _ids_as_indexes(cfg: DistillConfig, train: TextDataset, text_pair_column: str | None,
                    log: Callable[[str], None]) -> TextDataset:
    """With --label-names and labels that are whole numbers 0..N-1, the labels are indexes into the names (id i is
    names[i]), even when the training file lacks some of the classes: read again with every id as a class, and
    say which ones train lacks."""
    names, values = cfg.data.label_names, train.label_names
    if not names or len(names) == len(values) or train.problem == "regression":
        return train
    if not all(v.isdigit() for v in values) or max(int(v) for v in values) >= len(names):
        return train  # not ids into the names: refused with both counts below
    d = cfg.data
    every = [str(i) for i in range(len(names))]
    again = read_labelled(d.train, d.text_column or None, d.label_column or None, every,
                          text_pair_column=text_pair_column, problem=train.problem, accept_labels=True)
    missing = [f"{i} {names[i]}" for i in range(len(names)) if str(i) not in values]
    log(f"--label-names: the labels are ids into the {len(names)} names; {d.train} has no row of {len(missing)} of "
        f"them ({', '.join(missing)}): the student learns them from nothing")
    return replace(again, problem_why=train.problem_why)


def prepare(cfg: DistillConfig, run: RunFolder, log: Callable[[str], None]) -> Prepared:
    """Read and check everything a run needs (nothing is written); one ConfigError names a problem."""
    cfg = DistillConfig.from_dict(cfg.to_dict())  # the caller's config stays as given
    check_same_config(run, cfg)
    d = cfg.data
    text_pair_column = d.text_pair_column or None
    declared, declared_why = declared_problem(cfg)
    tokens = declared == TOKENS or is_token_file(d.train)  # tags as ids in JSONL are named by --label-names
    full_train = read_labelled(d.train, d.text_column or None, d.label_column or None,
                               list(d.label_names) or None if tokens else None,
                               text_pair_column=text_pair_column, problem=declared,
                               accept_labels=d.accept_labels)
    problem = full_train.problem
    why = declared_why or full_train.problem_why
    full_train = _ids_as_indexes(cfg, full_train, text_pair_column, log)
    log(f"{d.train}: {len(full_train)} rows; {full_train.columns}")
    log(f"problem type: {problem} ({why})")
    if d.standardize and problem != "regression":
        raise ConfigError([f"--standardize scales regression targets; this task is {problem}"])
    if d.standardize is None:  # auto, resolved before config.json is written: a resume reads the choice back
        d.standardize = problem == "regression"
        if d.standardize:
            log("regression: training in units of the targets' standard deviation (--no-standardize: data units)")
    if d.label_noise and problem != "single-label":
        raise ConfigError([f"data.label_noise flips single labels; this task is {problem}"])
    if d.label_noise:
        full_train.labels = flip_labels(full_train.labels, len(full_train.label_names), d.label_noise, cfg.seed)
    train = full_train.subset(d.max_train or None)
    dev = read_labelled(d.dev, d.text_column or None, d.label_column or None, train.label_names,
                        text_pair_column=text_pair_column, problem=problem)
    if dev.text_pair != train.text_pair:
        raise ConfigError([f"{d.train} holds {_pairs_or_single(train.text_pair)} ({train.columns}) but {d.dev} "
                           f"holds {_pairs_or_single(dev.text_pair)} ({dev.columns}); name the columns with "
                           "--text-column / --text-pair-column"])
    if d.unlabeled:
        unlabeled = read_unlabelled(d.unlabeled, d.text_column or None,
                                    text_pair_column=text_pair_column).subset(d.max_unlabeled or None)
        if unlabeled.text_pair != train.text_pair:
            raise ConfigError([f"{d.unlabeled} holds {_pairs_or_single(unlabeled.text_pair)} but the training "
                               f"data {_pairs_or_single(train.text_pair)}"])
    else:
        unlabeled = TextDataset(train.texts, None, [], train.source).subset(d.max_unlabeled or None)
    values = train.label_names  # the labels as the data spells them
    if d.label_names and len(d.label_names) != len(values):
        raise ConfigError([f"--label-names gives {len(d.label_names)} names but {d.train} has {len(values)} labels "
                           f"({', '.join(values)})"])
    # auto: copy the teacher's layers where its family allows it (bert, roberta, ...), else random
    init = resolve_init(cfg.student.init, teacher_config(cfg.teacher, cfg.offline).model_type)
    check_teacher(cfg.teacher, cfg.offline, init if cfg.student.kind == "transformer" else "random")
    if cfg.student.init_from:
        check_teacher(cfg.student.init_from, cfg.offline, "teacher")
    labels = list(d.label_names) or values  # the names the classifier's outputs carry
    names = head_names(cfg.teacher, cfg.offline) if problem != "regression" else None
    if names is not None and len(names) == len(labels):
        if not d.label_names and all(v.lstrip("-").isdigit() for v in values):
            labels = names  # numeric data labels: the teacher's head names them, in its order
        else:
            head_order(names, labels)  # refuses, naming both, when they cannot be matched
    saved = read_json(run.labels, None)
    if saved is not None and saved != labels:
        raise ConfigError([f"{run.labels} holds labels {saved} but the training file has {labels}"])
    stats = {}
    if problem == "regression":
        targets = torch.tensor(train.labels, dtype=torch.float64)
        stats = {"target_mean": float(targets.mean()), "target_scale": float(targets.std()) or 1.0}
    task = Task(problem, list(labels), list(values), train.text_pair, why=why, **stats).with_rule()
    if problem == TOKENS and cfg.student.kind != "transformer":
        raise ConfigError([f"a {cfg.student.kind} student has no tag head for token classification; use --student "
                           "transformer (the default)"])
    if problem == TOKENS and d.augment > 0:
        raise ConfigError(["data.augment makes sentence variants for text classification; token classification "
                           "distils on the labelled and unlabelled sentences (set data.augment to 0 or -1)"])
    if train.text_pair and cfg.student.kind != "transformer":
        raise ConfigError([f"a {cfg.student.kind} student takes single texts; for text pairs use --student "
                           "transformer (the default)"])
    return Prepared(cfg, full_train, train, dev, unlabeled, task, init)
