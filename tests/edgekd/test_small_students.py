"""BiLSTM and TextCNN students: padding invariance, torch vs runtime parity, the distill path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import runtime
from edgekd.config import ConfigError
from edgekd.distill.export import export_run
from edgekd.distill.pipeline import distill
from edgekd.distill.students import KINDS, SmallStudentConfig, build_small_student, load_student, reverse_within_length
from edgekd.testing.fixtures import SPECIALS, WORDS
from exporters import export_classifier
from tests.conftest import TEXTS, tiny_config

VOCAB = len(SPECIALS) + len(WORDS) + 2


def small(kind, seed=0):
    torch.manual_seed(seed)
    return build_small_student(SmallStudentConfig(kind=kind, vocab_size=VOCAB, embed_size=16, hidden_size=12,
                                                  filters=8, dropout=0.0)).eval()


def test_reverse_within_length():
    x = torch.arange(5.0).view(1, 5, 1).repeat(2, 1, 1)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert reverse_within_length(x, mask)[:, :, 0].tolist() == [[2, 1, 0, 3, 4], [4, 3, 2, 1, 0]]


@pytest.mark.parametrize("kind", KINDS)
def test_padding_does_not_change_logits(kind):
    model = small(kind)
    ids = torch.randint(5, VOCAB, (1, 7))
    padded = torch.cat([ids, torch.zeros(1, 6, dtype=torch.long)], 1)
    with torch.no_grad():
        a = model(ids, torch.ones(1, 7, dtype=torch.long)).logits
        b = model(padded, torch.tensor([[1] * 7 + [0] * 6])).logits
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_bundle_matches_torch(kind, tmp_path, tokenizer_file):
    model = small(kind)
    result = export_classifier(model, tokenizer_file, ["n", "p"], tmp_path / kind, max_length=32)
    assert [s.kind for s in result.manifest.parts] == ["compiled"] and result.manifest.student == kind
    loaded = runtime.load(result.path)
    ids, mask = loaded.encoder(TEXTS[:12])
    logits, layers, _ = loaded.run_ids(ids, mask, speed=0.5)
    with torch.no_grad():
        want = model(torch.from_numpy(ids), torch.from_numpy(mask)).logits.numpy()
    assert np.abs(logits - want).max() < 1e-4 and (layers == 1).all()
    alone = [list(loaded.classify([t])[0].probs.values()) for t in TEXTS[:12]]
    together = [list(r.probs.values()) for r in loaded.classify(TEXTS[:12])]
    assert np.allclose(alone, together, atol=1e-5)


@pytest.mark.parametrize("kind", [k if k == "bilstm" else pytest.param(k, marks=pytest.mark.slow) for k in KINDS])
def test_distill_small_student_with_compressed_vocab(kind, tiny_teacher_dir, tiny_data, tmp_path):
    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "run", stages=["teacher", "baseline", "finetune"],
                      student={"kind": kind, "init": "teacher", "embed": 16, "hidden": 12, "vocab_keep": 0.6},
                      finetune={"kd": "mse"})
    run = distill(cfg, log=lambda _: None)
    student = load_student(run / "student")
    assert student.config.kind == kind and student.config.original_vocab_size == VOCAB
    bundle = export_run(run, tmp_path / "b").path
    model = runtime.load(bundle)
    assert model.manifest.vocabulary.kept_size == round(0.6 * VOCAB)
    ids, mask = model.encoder(TEXTS[:6])
    with torch.no_grad():
        want = student(torch.from_numpy(ids), torch.from_numpy(mask)).logits.numpy()
    assert np.abs(model.run_ids(ids, mask, 0.0)[0] - want).max() < 1e-4


def test_attention_stage_needs_the_transformer(tiny_teacher_dir, tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="need the transformer student"):
        tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "r", stages=["teacher", "attention"],
                    student={"kind": "bilstm"})


@pytest.mark.parametrize("kind", ["bilstm", "textcnn"])
def test_default_stages_fit_the_student_type(kind, tiny_teacher_dir, tiny_data, tmp_path):
    """`edgekd distill --student bilstm` with no --stages: the default list is the small students' one."""
    from typer.testing import CliRunner

    from edgekd.cli import app

    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "r", student={"kind": kind})
    assert cfg.stages == ["teacher", "finetune"]
    result = CliRunner().invoke(app, ["distill", "--teacher", str(tiny_teacher_dir), "--train", str(tiny_data["train"]),
                                      "--dev", str(tiny_data["dev"]), "--out", str(tmp_path / "cli"), "--preset",
                                      "tiny", "--device", "cpu", "--student", kind])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "cli" / "state.json").read_text())["finished"] == ["teacher", "finetune"]
