"""Small labelled sets: the augmented transfer set, the data-size schedule and the best dev checkpoint."""

from __future__ import annotations

import json
import random

import pytest
import torch

from edgekd.distill.augment import Augmenter, auto_factor, embedding_neighbours
from edgekd.config import Optim, optim_overrides, resolve_config
from edgekd.distill.losses import task_distillation
from edgekd.distill.batches import TokenizedData
from edgekd.distill.train import total_steps, train_loop
from tests.conftest import tiny_config


def test_auto_factor_follows_the_labelled_set_size():
    assert [auto_factor(n) for n in (0, 500, 5000, 6800, 19_999, 20_000, 67_349)] == [0, 10, 8, 6, 3, 0, 0]


def test_neighbours_are_the_closest_whole_words_by_cosine():
    vocab = {"[PAD]": 0, "good": 1, "great": 2, "bad": 3, "##s": 4, "awful": 5, "42": 6}
    table = torch.tensor([[0.0, 0], [1, 0.1], [1, 0.12], [-1, 0.1], [1, 0.1], [-1, 0.13], [1, 0.1]])
    near = embedding_neighbours({"good", "bad", "missing"}, vocab, table, k=1)
    assert near == {"good": ["great"], "bad": ["awful"]}  # not ##s, not digits, not itself


def test_variants_are_seeded_and_made_only_of_masks_neighbours_and_spans():
    augmenter = Augmenter("[MASK]", {"good": ["great", "fine"]}, p_mask=0.3, p_swap=0.3, p_ngram=0.3)
    texts = ["a good film with a good cast", "not good at all"]
    one = augmenter.transfer_set(texts, 5, seed=7)
    assert one == augmenter.transfer_set(texts, 5, seed=7)
    assert one != augmenter.transfer_set(texts, 5, seed=8)
    assert len(one) == 10
    for i, variant in enumerate(one):
        source = texts[i // 5].split()
        allowed = set(source) | {"[MASK]", "great", "fine"}
        assert variant and set(variant.split()) <= allowed
        assert len(variant.split()) <= len(source)
    rng = random.Random(0)
    assert Augmenter(None, {}, p_mask=1.0, p_swap=0, p_ngram=0).variant("a b c", rng) == "a b c"  # no mask token


@pytest.mark.slow
def test_transfer_rows_take_kd_only_and_labelled_rows_take_both():
    torch.manual_seed(0)
    student, teacher = torch.randn(6, 3), torch.randn(6, 3)
    labels = torch.tensor([0, 2, -1, -1, 1, -1])
    loss, parts = task_distillation(student, teacher, labels, "soft", 2.0, 0.7)
    labelled = labels >= 0
    ce = torch.nn.functional.cross_entropy(student[labelled], labels[labelled])
    _, kd_only = task_distillation(student, teacher, torch.tensor([0, 0, 0, 0, 0, 0]), "soft", 2.0, 0.7)
    torch.testing.assert_close(parts["ce"], ce)
    torch.testing.assert_close(parts["kd"], kd_only["kd"])  # KD over every row, transfer rows included
    torch.testing.assert_close(loss, 0.3 * ce + 0.7 * parts["kd"])
    loss, parts = task_distillation(student, teacher, torch.full((6,), -1), "soft", 2.0, 0.7)
    assert float(parts["ce"]) == 0.0 and torch.isfinite(loss)


def test_the_data_size_schedule_gives_way_to_an_explicit_one():
    opt = Optim(epochs=1.0, batch_size=32, min_steps=1000)
    assert total_steps(opt, 5000) == 1000  # 157 steps per epoch: the minimum holds
    assert total_steps(opt, 67_349) == 2105  # large data: the epochs decide
    assert total_steps(Optim(epochs=1.0, min_steps=1000, max_steps=40), 5000) == 40
    quick = resolve_config(preset="quick", overrides={"teacher": "t", "out": "o", "data": {"train": "a", "dev": "b"}})
    assert quick.teacher_stage.min_steps == 1000 and quick.finetune.eval_every > 0
    flagged = resolve_config(preset="quick", overrides={"teacher": "t", "out": "o", "data": {"train": "a", "dev": "b"},
                                                        **optim_overrides(2.0, None, None)})
    assert flagged.teacher_stage.min_steps == 0 and flagged.finetune.epochs == 2.0


@pytest.mark.slow
def test_the_best_dev_checkpoint_is_kept(tmp_path):
    from edgekd.testing.fixtures import tiny_tokenizer
    from runtime.tokenize import TextEncoder

    encoder = TextEncoder.from_file(tiny_tokenizer(tmp_path / "tok.json"), 8)
    data = TokenizedData(encoder, ["good film", "bad film"] * 8, [1, 0] * 8)
    model = torch.nn.Linear(2, 2)
    states, scores = [], iter([0.5, 0.9, 0.7])

    def evaluate():
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scores)

    def loss_fn(module, batch):
        return module(batch.mask[:, :2].float()).pow(2).mean(), {}

    stats = train_loop("t", model, list(model.parameters()), loss_fn, data, Optim(lr=0.1, max_steps=6, batch_size=4,
                       eval_every=2), 0, torch.device("cpu"), tmp_path / "ck", evaluate=evaluate)
    assert (stats["best_step"], stats["best_score"], stats["last_score"]) == (4, 0.9, 0.7)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, states[1][key])  # the weights scored 0.9, not the last ones
    assert not torch.equal(states[1]["weight"], states[2]["weight"])


@pytest.mark.slow
def test_augmented_run_builds_reuses_and_splits_the_transfer_set(tiny_teacher_dir, tiny_data, tmp_path):
    from edgekd.distill.pipeline import distill

    overrides = dict(stages=["teacher", "attention", "finetune"], data={"augment": 3})
    logs: list[str] = []
    run = distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "a", **overrides), log=logs.append)
    variants = json.loads((run / "transfer" / "variants.json").read_text())
    meta = json.loads((run / "transfer" / "meta.json").read_text())
    rows = meta["labelled_rows"]
    assert meta["factor"] == 3 and len(variants) == 3 * rows
    logits = torch.load(run / "transfer" / "logits.pt")
    assert logits.shape == (3 * rows, 2)
    assert any(f"{rows} labelled rows (CE + KD) and {3 * rows} transfer rows (KD)" in line for line in logs)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finetune"]["transfer_rows"] == 3 * rows
    # interrupted in finetune after the transfer set was written, then resumed: the cache is reused unchanged,
    # and the resumed student equals the uninterrupted one
    class Interrupt(Exception):
        pass

    def stop(stage, step):
        if stage == "finetune" and step == 2:
            raise Interrupt

    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "c", **{**overrides, "finetune": {"checkpoint_every": 1}})
    with pytest.raises(Interrupt):
        distill(cfg, log=lambda _: None, on_step=stop)
    before = (tmp_path / "c" / "transfer" / "logits.pt").stat().st_mtime_ns
    logs.clear()
    resumed = distill(cfg, log=logs.append)
    assert (resumed / "transfer" / "logits.pt").stat().st_mtime_ns == before
    assert any("reused from" in line for line in logs)
    assert json.loads((resumed / "transfer" / "variants.json").read_text()) == variants
    from edgekd.distill.model import EarlyExitStudent

    a, b = (EarlyExitStudent.load(r / "student").state_dict() for r in (run, resumed))
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    # a fresh run with the same seed makes the same transfer set (deterministic)
    other = distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "b", **overrides), log=lambda _: None)
    assert json.loads((other / "transfer" / "variants.json").read_text()) == variants


@pytest.mark.slow
def test_attention_and_branches_read_the_transfer_variants_too(tiny_teacher_dir, tiny_data, tmp_path, monkeypatch):
    """The stages that need no labels train on the unlabelled text plus the transfer set's variants (a small
    labelled set otherwise gives its exit heads a few dozen steps)."""
    from edgekd.distill import train
    from edgekd.distill.pipeline import distill
    from edgekd.distill.stages import attention, branches

    rows: dict[str, int] = {}

    def counting(name, model, parameters, loss_fn, data, *args, **kwargs):
        rows[name] = len(data)
        return train.train_loop(name, model, parameters, loss_fn, data, *args, **kwargs)

    monkeypatch.setattr(attention, "train_loop", counting)
    monkeypatch.setattr(branches, "train_loop", counting)
    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "a", stages=["teacher", "attention", "finetune", "branches"],
                      data={"augment": 3})
    run = distill(cfg, log=lambda _: None)
    labelled = json.loads((run / "transfer" / "meta.json").read_text())["labelled_rows"]
    unlabeled = min(labelled, cfg.data.max_unlabeled)  # the train texts stand in for --unlabeled (the first 64)
    assert rows == {"attention": unlabeled + 3 * labelled, "branches": unlabeled + 3 * labelled}
