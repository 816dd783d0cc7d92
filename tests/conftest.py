"""Session fixtures: tiny models built from config, tiny data; nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Texts of many lengths (2..~30 tokens) for padded, mixed-length batches.
TEXTS = [
    "good",
    "bad film",
    "the plot was very dull and the acting was awful",
    "a superb , moving story with a brilliant cast",
    "not quite fine",
    "it is a film",
    "boring boring boring boring boring boring boring boring boring boring boring boring",
    "charming and lovely but rather messy",
    "the cast is weak , the story is tedious , the plot is bland and the film is too long really",
    "fun",
    "an awful , terrible , poor movie",
    "truly great",
] * 3


def make_student(head_type: str = "mean", layers: int = 3, hidden: int = 32, sharpen: float = 0.0, seed: int = 0,
                 num_labels: int = 2, problem: str = "single-label"):
    """A tiny random student. `sharpen` scales the exit classifiers so that
    their confidences spread over [0, 1] and middle speeds make rows exit."""
    import torch

    from edgekd.distill.model import EarlyExitStudent, StudentConfig
    from edgekd.testing.fixtures import SPECIALS, WORDS

    torch.manual_seed(seed)
    cfg = StudentConfig(vocab_size=len(SPECIALS) + len(WORDS) + 2, hidden_size=hidden, num_layers=layers,
                        num_heads=2, ffn_size=2 * hidden, num_labels=num_labels, problem=problem, head_type=head_type,
                        max_position=64, dropout=0.0)
    model = EarlyExitStudent(cfg).eval()
    if sharpen:
        with torch.no_grad():
            for i, head in enumerate(model.heads):
                head.classifier.weight.mul_(sharpen * (1 + i))
                head.classifier.bias.normal_(0, 0.5)
    return model


@pytest.fixture(scope="session")
def tokenizer_file(tmp_path_factory) -> Path:
    from edgekd.testing.fixtures import tiny_tokenizer

    return tiny_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.json")


@pytest.fixture(scope="session")
def student():
    return make_student(sharpen=60.0)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory, student, tokenizer_file) -> Path:
    from exporters import export_student

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    export_student(student, tokenizer_file, ["negative", "positive"], out, max_length=40)
    return out


@pytest.fixture
def bundle_copy(bundle, tmp_path) -> Path:
    """A private copy of the session bundle, free to damage or recalibrate."""
    import shutil

    target = tmp_path / "b"
    shutil.copytree(bundle, target)
    return target


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory) -> Path:
    from edgekd.testing.fixtures import tiny_teacher

    return tiny_teacher(tmp_path_factory.mktemp("teacher") / "bert")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    from tests.golden.make_golden import make_files

    return make_files(tmp_path_factory.mktemp("data"))


def tiny_config(teacher: Path, files: dict[str, Path], out: Path, **overrides):
    from edgekd.config import deep_merge, resolve_config

    base = {"teacher": str(teacher), "out": str(out), "device": "cpu",
            "data": {"train": str(files["train"]), "dev": str(files["dev"]), "max_train": 0}}
    return resolve_config(preset="tiny", overrides=deep_merge(base, overrides))


@pytest.fixture(scope="session")
def finished_run(tiny_teacher_dir, tiny_data, tmp_path_factory) -> Path:
    """A tiny run through every stage (teacher-initialised student)."""
    from edgekd.distill.pipeline import distill

    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path_factory.mktemp("runs") / "full",
                      stages=["teacher", "attention", "baseline", "finetune", "branches"], student={"init": "teacher"})
    return distill(cfg, log=lambda _: None)
