"""GLMD vocabulary compression: the token map, specials, and bundles that remap inside the graph."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import runtime
from edgekd.distill.export import export_run
from edgekd.distill.pipeline import distill
from edgekd.distill.vocab import VocabMap, choose_kept, compress_student, keep_count, nearest_kept, special_ids
from exporters import export_student
from runtime.tokenize import TextEncoder
from edgekd.testing.fixtures import SPECIALS, WORDS
from tests.conftest import TEXTS, make_student, tiny_config


def test_nearest_kept_on_a_hand_made_matrix():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 0.1], [0.2, 0.5], [-1.0, 0.0], [0.6, 0.6]])
    kept = np.array([0, 1, 5])
    # dot: row 2 -> [3, 0.1]: scores 3.0, 0.1, 1.86 -> id 0; row 3 -> 0.2, 0.5, 0.42 -> id 1
    # row 4 -> -1, 0, -0.6 -> id 1 (score 0 beats -0.6 and -1)
    assert nearest_kept(emb, kept, "dot").tolist() == [0, 1, 0, 1, 1, 2]
    # cosine: row 3 is closest in angle to [0.6, 0.6]? cos with [0,1]=0.928, with [.6,.6]=0.919 -> id 1
    assert nearest_kept(emb, kept, "cosine").tolist() == [0, 1, 0, 1, 1, 2]
    emb2 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [10.0, 10.0], [0.7, 0.7]])
    assert nearest_kept(emb2, np.array([0, 1, 3]), "dot")[2] == 2  # the big vector: largest dot with [.7,.7]
    with pytest.raises(ValueError, match="metric"):
        nearest_kept(emb, kept, "l2")


def test_specials_are_never_dropped_and_ties_prefer_words():
    counts = np.array([0, 0, 0, 50, 40, 0, 0, 30])
    pieces = np.array([False, False, False, False, False, True, False, False])
    kept = choose_kept(counts, keep_count(len(counts), size=5), specials=[0, 1, 2], pieces=pieces)
    assert kept.tolist() == [0, 1, 2, 3, 4]
    kept = choose_kept(counts, keep_count(len(counts), size=7), specials=[0, 1, 2], pieces=pieces)
    assert kept.tolist() == [0, 1, 2, 3, 4, 6, 7], "unseen word 6 beats unseen piece 5"
    assert choose_kept(counts, keep_count(len(counts), keep=0.1), specials=[0, 1, 2]).tolist() == [0, 1, 2]
    assert len(choose_kept(counts, keep_count(len(counts), keep=1.0), specials=[0, 1, 2])) == 8, "keep 1.0 keeps all"
    assert keep_count(1000, keep=0.3) == 300 and keep_count(1000, size=250) == 250 and keep_count(10, size=20) == 10
    for bad in ({"keep": 2.0}, {"keep": 0.0}, {"size": 0}, {"size": 2.5}, {}, {"keep": 0.5, "size": 3}):
        with pytest.raises(ValueError):
            keep_count(1000, **bad)


def test_special_ids_of_the_tokenizer(tokenizer_file):
    encoder = TextEncoder.from_file(tokenizer_file, 16)
    assert special_ids(encoder) == [0, 1, 2, 3, 4]


def test_compressed_student_equals_the_original_fed_remapped_ids(tmp_path, tokenizer_file):
    student = make_student(sharpen=5.0)
    vocab = student.config.vocab_size
    kept = np.array([0, 1, 2, 3, 4] + list(range(5, vocab, 3)))
    remap = nearest_kept(student.embeddings.word.weight, kept)
    small = compress_student(student, VocabMap(kept, remap)).eval()
    assert small.config.vocab_size == len(kept) and small.config.original_vocab_size == vocab
    ids = torch.randint(1, vocab, (4, 9))
    mask = torch.ones(4, 9, dtype=torch.long)
    with torch.no_grad():
        want = student(torch.from_numpy(kept)[torch.from_numpy(remap)][ids], mask).logits
        got = small(ids, mask).logits
    assert torch.allclose(want, got, atol=1e-6)
    export_student(small, tokenizer_file, ["n", "p"], tmp_path / "b", max_length=24)
    model = runtime.load(tmp_path / "b")
    assert model.manifest.vocabulary.original_size == vocab and model.manifest.vocabulary.kept_size == len(kept)
    ids, mask = model.encoder(TEXTS[:8])
    logits, _, _ = model.run_ids(ids, mask, 0.0)
    with torch.no_grad():
        torch_logits = small(torch.from_numpy(ids), torch.from_numpy(mask)).logits.numpy()
    assert np.abs(logits - torch_logits).max() < 1e-4


@pytest.mark.slow  # about 1 s: the full tier (keeps `-m 'not slow'` under 60 s)
def test_distill_with_vocab_keep_and_export(tiny_teacher_dir, tiny_data, tmp_path):
    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "run", stages=["teacher", "finetune"],
                      student={"vocab_keep": 0.5, "init": "teacher"})
    run = distill(cfg, log=lambda _: None)
    vocab = len(SPECIALS) + len(WORDS) + 2
    info = json.loads((run / "vocab.json").read_text())
    assert info["kept_size"] == round(0.5 * vocab) and info["original_size"] == vocab
    bundle = export_run(run, tmp_path / "b", data=tiny_data["dev"]).path
    m = runtime.load(bundle).manifest
    assert (m.vocabulary.original_size, m.vocabulary.kept_size) == (vocab, round(0.5 * vocab))


def test_export_compresses_an_existing_student(finished_run, tiny_data, tmp_path):
    result = export_run(finished_run, tmp_path / "b", vocab_keep=0.3, data=tiny_data["dev"])
    v = result.manifest.vocabulary
    vocab = len(SPECIALS) + len(WORDS) + 2
    assert v.kept_size == round(0.3 * vocab) and v.original_size == vocab
    assert 0.0 <= v.remapped_token_share < 1.0
    assert len(runtime.load(result.path).classify(["good film"])) == 1


@pytest.mark.parametrize("objective", ["word", "both"])
def test_word_prediction_objective_with_compressed_vocab(objective, tiny_teacher_dir, tiny_data, tmp_path):
    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "run", stages=["teacher", "attention"],
                      student={"vocab_keep": 0.5, "init": "teacher"}, attention={"objective": objective})
    run = distill(cfg, log=lambda _: None)
    metrics = json.loads((run / "metrics.json").read_text())["attention"]
    assert metrics["objective"] == objective and np.isfinite(metrics["loss"]) and metrics["loss"] > 0
