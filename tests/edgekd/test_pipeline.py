"""The distillation pipeline on a tiny teacher: stages, resume, and the path to a running bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import runtime
from edgekd.config import ConfigError
from edgekd.distill.export import export_run
from edgekd.distill.model import EarlyExitStudent
from edgekd.distill.pipeline import distill
from edgekd.run_folder import StudentFolder
from edgekd.distill.stages import RunContext
from runtime.exits import REPORT_SPEEDS
from tests.conftest import tiny_config
from edgekd.data import DataError


def test_run_folder_holds_every_artifact(finished_run):
    names = {p.name for p in finished_run.iterdir()}
    assert {"config.json", "labels.json", "tokenizer.json", "teacher", "student", "metrics.json", "state.json"} <= names
    assert json.loads((finished_run / "labels.json").read_text()) == ["negative", "positive"]
    state = json.loads((finished_run / "state.json").read_text())
    assert state["finished"] == ["teacher", "attention", "baseline", "finetune", "branches"]
    metrics = json.loads((finished_run / "metrics.json").read_text())
    assert set(metrics) == set(state["finished"])
    for name in ("attention", "baseline", "finetune", "branches"):
        assert 0.0 <= metrics[name]["dev_accuracy"] <= 1.0
        assert [r["speed"] for r in metrics[name]["exits"]] == list(REPORT_SPEEDS)
    assert metrics["attention"]["relation_heads"] == 2
    assert (finished_run / "teacher" / "model.safetensors").is_file()
    # the finished student is self-contained: export needs nothing else from the run folder
    student = StudentFolder(finished_run / "student")
    assert student.is_complete() and student.labels == ["negative", "positive"] and student.max_length == 32
    assert (student.tokenizer).read_bytes() == (finished_run / "tokenizer.json").read_bytes()


def test_branches_changes_only_exit_heads(finished_run):
    before = EarlyExitStudent.load(finished_run / "stages" / "finetune" / "student").state_dict()
    after = EarlyExitStudent.load(finished_run / "stages" / "branches" / "student").state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "branches must train something"
    last = len([k for k in before if k.startswith("layers.") and k.endswith("ffn_norm.weight")]) - 1
    assert all(k.startswith("heads.") and not k.startswith(f"heads.{last}.") for k in changed), changed


def test_rerun_skips_finished_stages(finished_run):
    cfg_path = finished_run / "config.json"
    from edgekd.config import DistillConfig

    logs = []
    distill(DistillConfig.load(cfg_path), log=logs.append)
    assert all("already finished" in line for line in logs if line.startswith("stage"))


def test_changed_config_is_refused(finished_run):
    from edgekd.config import DistillConfig

    cfg = DistillConfig.load(finished_run / "config.json")
    cfg.student.hidden = 64
    cfg.student.heads = 2
    with pytest.raises(ConfigError, match="student changed"):
        RunContext(cfg, log=lambda _: None)


@pytest.mark.slow  # the full tier: test_resume_is_bit_exact_from_any_kill_point[1] keeps resume in the fast one
def test_resume_after_interruption_equals_uninterrupted(tiny_teacher_dir, tiny_data, tmp_path):
    overrides = dict(stages=["teacher", "finetune"], seed=3,
                     teacher_stage={"max_steps": 6, "checkpoint_every": 1},
                     finetune={"max_steps": 6, "checkpoint_every": 1})
    straight = distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "a", **overrides), log=lambda _: None)

    class Interrupt(Exception):
        pass

    def stop(stage, step):
        if stage == "finetune" and step == 3:
            raise Interrupt

    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "b", **overrides)
    with pytest.raises(Interrupt):
        distill(cfg, log=lambda _: None, on_step=stop)
    assert json.loads((tmp_path / "b" / "state.json").read_text())["finished"] == ["teacher"]
    assert (tmp_path / "b" / "stages" / "finetune" / "checkpoint.pt").is_file()
    resumed = distill(cfg, log=lambda _: None)
    a = EarlyExitStudent.load(straight / "student").state_dict()
    b = EarlyExitStudent.load(resumed / "student").state_dict()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_branches_without_a_student_is_explained(tiny_teacher_dir, tiny_data, tmp_path):
    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "r", stages=["teacher", "branches"])
    with pytest.raises(ConfigError, match="run `finetune` first"):
        distill(cfg, log=lambda _: None)


def test_teacher_without_head_needs_the_teacher_stage(tiny_teacher_dir, tiny_data, tmp_path):
    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "r", stages=["finetune"])
    with pytest.raises(ConfigError, match="run the `teacher` stage first"):
        distill(cfg, log=lambda _: None)


def test_distill_export_and_run_without_torch_agree(finished_run, tmp_path):
    result = export_run(finished_run, tmp_path / "bundle")
    model = runtime.load(result.path)
    student = EarlyExitStudent.load(finished_run / "student")
    texts = ["a superb film", "dull , boring and bad", "the plot was fine but the cast was weak"]
    ids, mask = model.encoder(texts)
    logits, _, _ = model.run_ids(ids, mask, speed=0.0)
    with torch.no_grad():
        want = student(torch.from_numpy(ids), torch.from_numpy(mask)).logits.numpy()
    assert np.abs(logits - want).max() < 1e-4
    assert [p.label for p in model.classify(texts, speed=0.0)] == [["negative", "positive"][i] for i in want.argmax(1)]


def test_epoch_batches_cover_every_row_once_and_group_lengths():
    from edgekd.distill.batches import epoch_batches

    lengths = torch.randint(2, 60, (1000,))
    batches = epoch_batches(0, lengths, 32, seed=1)
    rows = torch.cat(batches)
    assert sorted(rows.tolist()) == list(range(1000))
    assert all(len(b) <= 32 for b in batches)
    assert [b.tolist() for b in epoch_batches(0, lengths, 32, seed=1)] == [b.tolist() for b in batches]
    assert [b.tolist() for b in epoch_batches(1, lengths, 32, seed=1)] != [b.tolist() for b in batches]
    spread = torch.tensor([float(lengths[b].max() - lengths[b].min()) for b in batches]).mean()
    assert spread < 10, "length grouping keeps padding small"


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    import torch.nn.functional as F

    from edgekd.config import Optim
    from edgekd.testing.fixtures import tiny_sentiment, tiny_tokenizer
    from edgekd.distill.batches import TokenizedData
    from edgekd.distill.train import train_loop
    from runtime.tokenize import TextEncoder
    from tests.conftest import make_student

    encoder = TextEncoder.from_file(tiny_tokenizer(tmp_path / "tok.json"), 24)
    rows = tiny_sentiment(48, seed=5)
    data = TokenizedData(encoder, [t for t, _ in rows], [int(l == "positive") for _, l in rows])

    def loss_fn(module, batch):
        return F.cross_entropy(module(batch.input_ids, batch.mask, exits=False).logits, batch.labels), {}

    results = []
    for accum in (1, 4):
        student = make_student(seed=7)
        opt = Optim(lr=1e-3, max_steps=3, batch_size=16, grad_accum=accum, checkpoint_every=100)
        train_loop("t", student, list(student.parameters()), loss_fn, data, opt, 0, torch.device("cpu"),
                   tmp_path / f"ckpt{accum}")
        results.append(student.state_dict())
    for key in results[0]:
        assert torch.allclose(results[0][key], results[1][key], atol=1e-5), key


# one kill point in the fast tier, all three in the full one (the fast tier stays under a minute)
@pytest.mark.parametrize("kill_at", [1, *(pytest.param(k, marks=pytest.mark.slow) for k in (3, 5))])
def test_resume_is_bit_exact_from_any_kill_point(tiny_teacher_dir, tiny_data, tmp_path, kill_at):
    """Killed before the stage's first checkpoint (step 1 and 3 of checkpoint_every 4), or after it (5)."""
    overrides = dict(stages=["teacher", "attention", "finetune"], seed=5, student={"dropout": 0.2},
                     teacher_stage={"max_steps": 4}, attention={"max_steps": 6, "checkpoint_every": 4},
                     finetune={"max_steps": 6, "checkpoint_every": 4})
    straight = distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "a", **overrides), log=lambda _: None)

    class Killed(Exception):
        pass

    def kill(stage, step):
        if stage == "finetune" and step == kill_at:
            raise Killed

    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "b", **overrides)
    with pytest.raises(Killed):
        distill(cfg, log=lambda _: None, on_step=kill)
    assert (tmp_path / "b" / "stages" / "finetune" / "checkpoint.pt").is_file() == (kill_at >= 4)
    resumed = distill(cfg, log=lambda _: None)
    a = EarlyExitStudent.load(straight / "student").state_dict()
    b = EarlyExitStudent.load(resumed / "student").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]


def test_a_distill_that_cannot_start_leaves_no_folder(tiny_teacher_dir, tiny_data, tmp_path):
    from edgekd.config import ConfigError
    from edgekd.distill.pipeline import distill
    from tests.conftest import tiny_config

    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\nonly one\tpos\n")
    cfg = tiny_config(tiny_teacher_dir, {"train": bad, "dev": tiny_data["dev"]}, tmp_path / "run")
    with pytest.raises(DataError):
        distill(cfg, log=lambda _: None)
    assert not (tmp_path / "run").exists()
    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "run", data={"label_names": ["a", "b", "c"]})
    with pytest.raises(ConfigError, match="--label-names gives 3 names"):
        distill(cfg, log=lambda _: None)
    assert not (tmp_path / "run").exists()


def test_overwrite_starts_over_and_never_removes_a_foreign_folder(tiny_teacher_dir, tiny_data, tmp_path):
    from edgekd.config import ConfigError
    from edgekd.distill.pipeline import distill
    from tests.conftest import tiny_config

    cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "run", stages=["teacher"])
    distill(cfg, log=lambda _: None)
    (tmp_path / "run" / "marker").write_text("old")
    distill(cfg, log=lambda _: None, overwrite=True)
    assert not (tmp_path / "run" / "marker").exists() and (tmp_path / "run" / "state.json").is_file()
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"\xff\xd8")
    cfg = tiny_config(tiny_teacher_dir, tiny_data, foreign, stages=["teacher"])
    with pytest.raises(ConfigError, match="not a run folder"):
        distill(cfg, log=lambda _: None, overwrite=True)
    assert (foreign / "cat.jpg").is_file()


@pytest.mark.slow  # about 1 s: the full tier (keeps `-m 'not slow'` under 60 s)
def test_label_names_reach_the_bundle_and_predictions(tiny_teacher_dir, tmp_path):
    from edgekd.distill.pipeline import distill
    from edgekd.testing.fixtures import tiny_sentiment
    from tests.conftest import tiny_config

    files = {}
    for name, n, seed in (("train", 64, 0), ("dev", 24, 1)):
        files[name] = tmp_path / f"{name}.tsv"
        files[name].write_text("sentence\tlabel\n" + "".join(
            f"{t}\t{1 if l == 'positive' else 0}\n" for t, l in tiny_sentiment(n, seed)))
    cfg = tiny_config(tiny_teacher_dir, files, tmp_path / "run", stages=["teacher", "finetune"],
                      data={"label_names": ["negative", "positive"]})
    run = distill(cfg, log=lambda _: None)
    bundle = export_run(run, tmp_path / "b", data=files["dev"], max_drop=1.0).path  # dev labels are 0/1
    model = runtime.load(bundle)
    assert model.labels == ["negative", "positive"] and model.manifest.label_values == ["0", "1"]
    p = model.classify(["good film"])[0]
    assert p.label in ("negative", "positive") and list(p.probs) == ["negative", "positive"]


def test_the_log_reports_attention_by_its_own_loss_and_names_the_schedule_it_ran(tiny_teacher_dir, tiny_data,
                                                                                 tmp_path):
    lines = []
    distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "run", stages=["teacher", "attention", "finetune"]),
            log=lines.append)
    attention = [line for line in lines if line.startswith("stage attention:")]
    assert attention and "final loss" in attention[0] and "dev accuracy" not in attention[0]
    notes = [line for line in lines if line.startswith("finetune: ") and " steps over " in line]
    assert notes and "max_steps 4" in notes[-1] and "--max-steps" not in " ".join(lines)


def test_the_run_keeps_one_copy_of_the_published_student_and_honours_the_umask(finished_run):
    """Issue 43, item 17: student/ was a byte-identical copy of the last stage's student, and model.safetensors
    was written 0600 whatever the umask."""
    import os
    import stat

    from edgekd.run_folder import RunFolder

    run = RunFolder(finished_run)
    published = run.student / "model.safetensors"
    source = run.stage_student("branches") / "model.safetensors"
    assert os.stat(published).st_ino == os.stat(source).st_ino  # one copy on disk
    mask = os.umask(0)
    os.umask(mask)
    for path in [published, *run.teacher.glob("*.safetensors")]:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask, path


def test_long_logits_show_progress_and_an_interrupt_says_how_to_resume(tiny_teacher_dir, tiny_data, tmp_path,
                                                                        monkeypatch, capsys):
    """Issue 43, item 11: the transfer set's teacher logits ran with no progress bar, and Ctrl-C there exited
    without a word on resuming."""
    import torch

    from edgekd.distill import pipeline
    from edgekd.distill.batches import TokenizedData
    from edgekd.distill.evaluate import PROGRESS_FROM_ROWS, classifier_logits
    from edgekd.testing.fixtures import tiny_tokenizer
    from runtime.tokenize import TextEncoder
    from tests.conftest import tiny_config

    encoder = TextEncoder.from_file(tiny_tokenizer(tmp_path / "tok.json"), 16)
    data = TokenizedData(encoder, ["good film"] * PROGRESS_FROM_ROWS)
    logits = classifier_logits(lambda i, m, t: torch.zeros(len(i), 2), data, "cpu", desc="teacher logits (test)")
    assert logits.shape == (PROGRESS_FROM_ROWS, 2) and "teacher logits (test)" in capsys.readouterr().err

    def interrupted(ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline.REGISTRY["attention"], "run", interrupted)
    logs: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        pipeline.distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "run"), log=logs.append)
    assert "run the same command again to resume" in logs[-1]
    assert json.loads((tmp_path / "run" / "state.json").read_text())["finished"] == ["teacher"]


@pytest.mark.slow
def test_copied_lr_trains_a_copied_student_and_leaves_a_random_one_alone(tiny_teacher_dir, tiny_data, tmp_path):
    from safetensors.torch import load_file

    def trained(init: str, copied_lr: float) -> tuple[dict, list[str]]:
        lines = []
        cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / f"{init}-{copied_lr}", stages=["teacher", "finetune"],
                          student={"init": init}, finetune={"copied_lr": copied_lr})
        distill(cfg, log=lines.append)
        return load_file(tmp_path / f"{init}-{copied_lr}" / "student" / "model.safetensors"), lines

    def same(a: dict, b: dict) -> bool:
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    plain, plain_log = trained("teacher", 0.0)
    copied, copied_log = trained("teacher", 0.01)
    assert not same(plain, copied)  # the copied layers trained at copied_lr, not at finetune.lr
    assert any("learning rate 0.01 (finetune.copied_lr" in line for line in copied_log)
    assert not any("(finetune.copied_lr" in line for line in plain_log)
    random_plain, _ = trained("random", 0.0)
    random_copied, random_log = trained("random", 0.01)
    assert same(random_plain, random_copied)  # a student that starts at random keeps finetune.lr
    assert not any("(finetune.copied_lr" in line for line in random_log)


def test_a_negative_copied_lr_is_refused(tiny_teacher_dir, tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="finetune.copied_lr must be >= 0"):
        tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "r", finetune={"copied_lr": -1.0}).validate()


@pytest.mark.parametrize("kind,init,init_from,expected", [
    ("transformer", "teacher", "", 3e-5), ("transformer", "random", "", 1e-4),
    ("transformer", "random", "other/model", 3e-5), ("bilstm", "teacher", "", 1e-4)])
def test_the_finetune_rate_is_copied_lr_only_for_copied_transformer_layers(kind, init, init_from, expected):
    from types import SimpleNamespace

    from edgekd.config import DistillConfig
    from edgekd.distill.stages.finetune import finetune_options

    cfg = DistillConfig()
    cfg.finetune.copied_lr, cfg.student.kind, cfg.student.init_from = 3e-5, kind, init_from
    assert finetune_options(SimpleNamespace(cfg=cfg, init=init)).lr == expected
    cfg.finetune.copied_lr = 0.0  # off: finetune.lr for every student
    assert finetune_options(SimpleNamespace(cfg=cfg, init=init)).lr == 1e-4
