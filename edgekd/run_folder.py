"""The run folder of `edgekd distill`: the only code that knows its layout.

  config.json          the resolved config
  labels.json          label names (their order is the classifier's outputs)
  task.json            the problem type, why, and a regression's target mean and standard deviation
  tokenizer.json       the teacher's tokenizer (the student uses it unchanged)
  vocab.json           vocabulary compression summary (with --vocab-keep / --vocab-size)
  teacher/             fine-tuned teacher (HF format, safetensors)
  teacher_logits.pt    the teacher's logits on the training rows (cache)
  refined_logits.pt    two-teacher refined targets (stage refine)
  stages/<name>/       checkpoint.pt while training, student/ when finished
  student/             the finished student, self-contained: student.json + model.safetensors,
                       tokenizer.json, labels.json, inference.json (max_length); what export reads
  state.json           finished stages
  metrics.json         dev accuracy (and exit tables) after each stage
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgekd.config import CONFIG_FILE
from runtime.errors import EdgeKDError
from runtime.files import atomic_folder, atomic_write_text
from runtime.task import Task

LABELS_FILE = "labels.json"
LABEL_VALUES_FILE = "label_values.json"  # the labels as the data spells them (e.g. "0", "1"), same order
TOKENIZER_FILE = "tokenizer.json"
INFERENCE_FILE = "inference.json"  # in a finished student folder: {"max_length": N, "text_pair": bool, "task": {..}}
TASK_FILE = "task.json"


def read_task(data: dict, where: str | Path = TASK_FILE) -> Task:
    """A run's task record (task.json; `task` in a student's inference.json). Runs made before the record
    wrote {"problem", "why", "target_mean", "target_std"}: those keys are read into the same record."""
    data = dict(data)
    if "target_std" in data:
        data["target_scale"] = data.pop("target_std")
    task, problems = Task.from_dict({"problem": "single-label", **data}, "")
    if problems or task is None:
        raise EdgeKDError(f"{where}: the task record is malformed: " + "; ".join(problems))
    return task


def link_or_copy(source: Path, target: Path) -> None:
    """`target` as a hard link to `source` (no second copy of a model on disk), or a copy where links fail."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def write_json(path: Path, data) -> None:
    """Write JSON atomically (runtime.files)."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path, default):
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else default


@dataclass
class RunFolder:
    root: Path

    config = property(lambda self: self.root / CONFIG_FILE)
    labels = property(lambda self: self.root / LABELS_FILE)
    label_values = property(lambda self: self.root / LABEL_VALUES_FILE)
    task = property(lambda self: self.root / TASK_FILE)
    tokenizer = property(lambda self: self.root / TOKENIZER_FILE)
    vocab = property(lambda self: self.root / "vocab.json")
    teacher = property(lambda self: self.root / "teacher")
    teacher_logits = property(lambda self: self.root / "teacher_logits.pt")
    refined_logits = property(lambda self: self.root / "refined_logits.pt")
    transfer = property(lambda self: self.root / "transfer")  # the augmented transfer set and its teacher logits
    student = property(lambda self: self.root / "student")
    state = property(lambda self: self.root / "state.json")
    metrics = property(lambda self: self.root / "metrics.json")

    @staticmethod
    def transfer_files(folder: Path) -> tuple[Path, Path, Path]:
        """(variants.json, logits.pt, meta.json) of a transfer set in `folder` (`transfer`, or the temporary
        folder it is written to)."""
        return folder / "variants.json", folder / "logits.pt", folder / "meta.json"

    def stage(self, name: str) -> Path:
        return self.root / "stages" / name

    def stage_student(self, name: str) -> Path:
        return self.stage(name) / "student"

    def finished(self) -> list[str]:
        return read_json(self.state, {"finished": []})["finished"]

    def mark_finished(self, name: str) -> None:
        done = self.finished()
        if name not in done:
            write_json(self.state, {"finished": done + [name]})

    def record(self, name: str, values: dict) -> None:
        metrics = read_json(self.metrics, {})
        metrics[name] = values
        write_json(self.metrics, metrics)

    def take_over(self, source: RunFolder, stages: list[str], teacher: bool, save_config) -> None:
        """Make this (new) run folder from `source`'s finished `stages` (edgekd.distill.fork decides which):
        the data's files always, the teacher and what was computed from it (its logits, the transfer set) when
        `teacher`, the two-teacher targets with `refine`, each stage's folder, and their state and metrics; hard
        links, not copies. `save_config(path)` writes the new run's config. The folder appears whole or not at
        all; `student/` is published again when the run finishes."""
        metrics = read_json(source.metrics, {})
        with atomic_folder(self.root) as tmp:
            into = RunFolder(tmp)
            owned = [source.labels, source.label_values, source.task, source.tokenizer, source.vocab]
            if teacher:
                owned += [source.teacher, source.teacher_logits, source.transfer]
            if "refine" in stages:
                owned.append(source.refined_logits)
            owned += [source.stage(name) for name in stages]
            for path in owned:
                target = tmp / path.relative_to(source.root)
                if path.is_dir():
                    shutil.copytree(path, target, copy_function=lambda a, b: link_or_copy(Path(a), Path(b)))
                elif path.is_file():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    link_or_copy(path, target)
            save_config(into.config)
            write_json(into.state, {"finished": list(stages)})
            write_json(into.metrics, {name: metrics[name] for name in stages if name in metrics})

    def publish_student(self, stage: str, max_length: int, text_pair: bool = False) -> Path:
        """Make `student/` from a stage's student: weights + config, tokenizer, labels, max_length, whether it
        takes text pairs, and the task (problem type, target statistics)."""
        with atomic_folder(self.student) as tmp:
            for path in self.stage_student(stage).iterdir():  # the same model: one copy on disk (a hard link)
                link_or_copy(path, tmp / path.name)
            shutil.copyfile(self.tokenizer, tmp / TOKENIZER_FILE)
            shutil.copyfile(self.labels, tmp / LABELS_FILE)
            if self.label_values.is_file():
                shutil.copyfile(self.label_values, tmp / LABEL_VALUES_FILE)
            write_json(tmp / INFERENCE_FILE, {"max_length": max_length, "stage": stage, "text_pair": text_pair,
                                              "task": read_json(self.task, {"problem": "single-label"})})
        return self.student


@dataclass
class StudentFolder:
    """A finished student as export reads it (no knowledge of stages needed)."""

    root: Path

    @property
    def tokenizer(self) -> Path:
        return self.root / TOKENIZER_FILE

    @property
    def labels(self) -> list[str]:
        return json.loads((self.root / LABELS_FILE).read_text(encoding="utf-8"))

    @property
    def label_values(self) -> list[str] | None:
        return read_json(self.root / LABEL_VALUES_FILE, None)

    @property
    def max_length(self) -> int:
        return int(json.loads((self.root / INFERENCE_FILE).read_text(encoding="utf-8"))["max_length"])

    @property
    def text_pair(self) -> bool:
        """The student was trained on text pairs (its bundle takes (text, text_pair))."""
        return bool(json.loads((self.root / INFERENCE_FILE).read_text(encoding="utf-8")).get("text_pair", False))

    @property
    def task(self) -> Task:
        """The task the student answers (single-label when its folder records none)."""
        info = json.loads((self.root / INFERENCE_FILE).read_text(encoding="utf-8"))
        return read_task(info.get("task") or {}, self.root / INFERENCE_FILE)

    def is_complete(self) -> bool:
        return all((self.root / f).is_file() for f in (TOKENIZER_FILE, LABELS_FILE, INFERENCE_FILE))


def run_dev_file(run_dir: Path) -> Path | None:
    """The dev file a run was distilled with, if the run records one that still exists."""
    config = Path(run_dir) / "config.json"
    try:
        dev = json.loads(config.read_text(encoding="utf-8"))["data"]["dev"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Path(dev) if dev and Path(dev).is_file() else None


def check_run_folder(run_dir: str | Path) -> None:
    """Refuse, naming the argument, a folder that is not a finished run of `edgekd distill` (before any work)."""
    run = RunFolder(Path(run_dir))
    if not run.root.is_dir():
        raise EdgeKDError(f"RUN_DIR {run.root}: no such folder; give the run folder written by `edgekd distill "
                          "--out RUN_DIR`")
    if not run.config.is_file():
        raise EdgeKDError(f"RUN_DIR {run.root} is not a run folder (it has no {CONFIG_FILE}); give the folder "
                          "written by `edgekd distill --out RUN_DIR`")
    if not run.student.is_dir():
        raise EdgeKDError(f"RUN_DIR {run.root}: the run has no finished student yet ({run.student} is missing); "
                          "run `edgekd distill` again with the same --out to finish it")
