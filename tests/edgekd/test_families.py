"""Every supported teacher family, from a tiny random model built from its transformers config.

Fast: each adaptor's last-layer q, k, v are what the model's attention really uses, and a student
initialised from a layer-copying family reproduces the teacher's chosen layers exactly.
Slow: every family distils with the default --init, exports (parity-checked against torch) and predicts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgekd.distill.families import LAYER_COPYING, family_of
from edgekd.distill.model import EarlyExitStudent, StudentConfig
from edgekd.distill.teacher import TeacherAdaptor, TeacherError, check_teacher
from edgekd.distill.student_init import init_student_from_teacher, student_shape
from edgekd.testing.fixtures import TINY_FAMILIES, tiny_config, tiny_teacher

LENGTH = 9


def _teacher(family: str, layers: int = 3, attn: str = "eager"):
    config = tiny_config(family, layers=layers)
    config.num_labels = 2
    config._attn_implementation = attn
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config).eval()


def _batch(seed: int = 0):
    """Two rows, the second right-padded (pad id 0), [CLS]-like id 2 first."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 53, (2, LENGTH), generator=g)
    ids[:, 0] = 2
    mask = torch.ones(2, LENGTH, dtype=torch.long)
    mask[1, 6:] = 0
    ids[1, 6:] = 0
    return ids, mask


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_captured_qkv_are_the_last_layers_own(family):
    """q·k from the capture reproduces the last layer's attention probabilities (the model's own, eager);
    for DeBERTa, whose probabilities add relative-position terms, q, k, v are its content projections."""
    model = _teacher(family)
    adaptor = TeacherAdaptor(model)
    ids, mask = _batch()
    with torch.no_grad():
        q, k, v = adaptor(ids, mask).last_qkv
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True, output_hidden_states=True)
    heads = model.config.num_attention_heads
    assert q.shape == k.shape == v.shape == (2, LENGTH, model.config.hidden_size)
    if family == "deberta-v2":
        attention = model.base_model.encoder.layer[-1].attention.self
        hidden = out.hidden_states[-2]
        for got, projection in ((q, attention.query_proj), (k, attention.key_proj), (v, attention.value_proj)):
            torch.testing.assert_close(got, projection(hidden), rtol=0, atol=1e-6)
        return
    split = lambda x: x.view(2, LENGTH, heads, -1).transpose(1, 2)  # noqa: E731
    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(q.shape[-1] // heads)
    scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
    real = mask.bool()
    torch.testing.assert_close(scores.softmax(-1)[real[:, None, :, None].expand(-1, heads, -1, LENGTH)],
                               out.attentions[-1][real[:, None, :, None].expand(-1, heads, -1, LENGTH)],
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", LAYER_COPYING)
def test_initialised_student_reproduces_the_chosen_teacher_layers(family):
    """Full width: embeddings equal the teacher's layer-0 input, and student layer i run on the teacher's
    input to layer t_i gives the teacher's output of t_i (real tokens; padding is masked anyway)."""
    teacher = _teacher(family, layers=4)
    config = teacher.config
    family_adaptor = family_of(config)
    student = EarlyExitStudent(StudentConfig(
        vocab_size=config.vocab_size, hidden_size=32, num_layers=2, num_heads=2, ffn_size=64, max_position=64,
        dropout=0.0, **student_shape(config))).eval()
    used = init_student_from_teacher(student, teacher)
    assert used == [1, 3]
    ids, mask = _batch(1)
    real = mask.bool()
    with torch.no_grad():
        hidden = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        torch.testing.assert_close(student.embeddings(ids)[real], hidden[0][real], rtol=0, atol=1e-5)
        for s_index, t_index in enumerate(used):
            out, _ = student.layers[s_index](hidden[t_index], mask)
            torch.testing.assert_close(out[real], hidden[t_index + 1][real], rtol=0, atol=1e-5)
    assert family_adaptor.copies_layers


def test_factorised_embeddings_carry_their_projection_and_albert_unrolls_its_shared_layer():
    for family in ("electra", "albert"):
        teacher = _teacher(family)
        shape = student_shape(teacher.config)
        assert shape["embedding_size"] == 16
        student = EarlyExitStudent(StudentConfig(vocab_size=teacher.config.vocab_size, hidden_size=32, num_layers=2,
                                                 num_heads=2, ffn_size=64, max_position=64, **shape))
        init_student_from_teacher(student, teacher)
        assert student.embeddings.word.weight.shape == (teacher.config.vocab_size, 16)
        assert student.embeddings.project.weight.shape == (32, 16)
    assert shape["activation"] == "gelu_tanh"  # ALBERT's gelu_new
    # ALBERT's one shared layer: both student layers start as the same weights
    torch.testing.assert_close(student.layers[0].ffn_in.weight, student.layers[1].ffn_in.weight)


def test_roberta_positions_start_after_the_padding_id():
    teacher = _teacher("roberta")
    assert family_of(teacher.config).max_positions(teacher.config) == 129  # 130 rows after the offset pad + 1 = 1
    student = EarlyExitStudent(StudentConfig(vocab_size=teacher.config.vocab_size, hidden_size=32, num_layers=2,
                                             num_heads=2, ffn_size=64, max_position=128, **student_shape(teacher.config)))
    init_student_from_teacher(student, teacher)
    rows = teacher.base_model.embeddings.position_embeddings.weight
    torch.testing.assert_close(student.embeddings.position.weight, rows[1:129])


def test_a_narrower_student_takes_whole_heads_and_spread_dims():
    teacher = _teacher("distilbert", layers=4)
    student = EarlyExitStudent(StudentConfig(vocab_size=teacher.config.vocab_size, hidden_size=16, num_layers=2,
                                             num_heads=1, ffn_size=32, max_position=64, **student_shape(teacher.config)))
    init_student_from_teacher(student, teacher)
    t_q = teacher.distilbert.transformer.layer[1].attention.q_lin.weight
    h = torch.linspace(0, 31, 16).round().long()
    torch.testing.assert_close(student.layers[0].attention.query.weight, t_q[:16][:, h])  # head 0 of 2


@pytest.mark.parametrize("family", ["deberta-v2", "modernbert"])
def test_init_teacher_is_refused_in_one_line_for_families_whose_layers_cannot_be_copied(family, tmp_path):
    folder = tiny_teacher(tmp_path / family, family=family)
    with pytest.raises(TeacherError) as info:
        check_teacher(folder, True, "teacher")
    message = str(info.value)
    assert "\n" not in message and "--init random" in message and "--student-init" in message
    check_teacher(folder, True, "random")  # the default for these families


def test_auto_init_follows_the_family():
    from edgekd.distill.teacher import resolve_init

    assert [resolve_init("auto", f) for f in ("bert", "albert", "deberta-v2", "modernbert")] == \
        ["teacher", "teacher", "random", "random"]
    assert resolve_init("random", "bert") == "random"


def test_an_unknown_family_is_refused_naming_the_supported_ones(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=16, n_head=2).save_pretrained(str(tmp_path / "g"))
    with pytest.raises(TeacherError, match="'gpt2' is not supported.*distilbert.*modernbert"):
        check_teacher(tmp_path / "g", True, "random")


# ------------------------------------------------------------------ end to end, one family at a time
@pytest.mark.slow
@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_every_family_distils_exports_and_predicts_with_the_default_init(family, tiny_data, tmp_path):
    import runtime
    from edgekd.distill.export import export_run
    from edgekd.distill.pipeline import distill
    from tests.conftest import tiny_config as run_config

    teacher = tiny_teacher(tmp_path / "teacher", family=family, layers=3)
    logs: list[str] = []
    cfg = run_config(teacher, tiny_data, tmp_path / "run", stages=["teacher", "attention", "finetune", "branches"],
                     student={"init": "auto"}, attention={"objective": "both"})
    run = distill(cfg, log=logs.append)
    copies = family in LAYER_COPYING
    assert any("student initialised from teacher layers" in line for line in logs) == copies
    result = export_run(run, tmp_path / "bundle")  # parity of every stage against torch inside
    model = runtime.load(result.path)
    texts = ["a superb , moving story", "the plot was dull", ""]
    predictions = model.classify(texts, speed=0.0)
    student = EarlyExitStudent.load(run / "student")
    ids, mask = (torch.from_numpy(a) for a in model.encoder(texts))
    with torch.no_grad():
        logits = student(ids, mask).logits.numpy()
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    for p, row in zip(predictions, probs):
        assert p.exit_layer == 2 and p.label == model.labels[int(row.argmax())]
        assert max(abs(p.probs[name] - row[i]) for i, name in enumerate(model.labels)) < 1e-4


def test_student_init_copies_layers_from_another_checkpoint(tiny_data, tmp_path):
    """A DeBERTa teacher cannot give its layers; --student-init PATH (a BERT checkpoint with the same tokenizer)
    does, word embeddings included."""
    from edgekd.distill.factory import new_student
    from edgekd.distill.stages import RunContext
    from tests.conftest import tiny_config as run_config

    teacher = tiny_teacher(tmp_path / "deberta", family="deberta-v2", num_labels=2)
    donor = tiny_teacher(tmp_path / "bert", family="bert", layers=4, seed=3)
    logs: list[str] = []
    cfg = run_config(teacher, tiny_data, tmp_path / "run", student={"init": "auto", "init_from": str(donor)})
    student = new_student(RunContext(cfg, log=logs.append))
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(donor))
    torch.testing.assert_close(student.layers[0].attention.query.weight, bert.encoder.layer[1].attention.self.query.weight)
    torch.testing.assert_close(student.embeddings.word.weight, bert.embeddings.word_embeddings.weight)
    assert any(f"initialised from {donor} layers [1, 3]" in line for line in logs)
    bad = run_config(teacher, tiny_data, tmp_path / "run2", student={"init_from": str(teacher)})
    with pytest.raises(TeacherError, match="--init teacher copies teacher layers, but DeBERTa"):
        RunContext(bad, log=logs.append)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["distilbert", "deberta-v2", "modernbert"])
def test_bench_runs_the_teacher_of_other_families_in_torch_and_onnx(family, tiny_data, tmp_path):
    from edgekd.bench import BenchOptions, run_bench
    from edgekd.distill.export import export_run
    from edgekd.distill.pipeline import distill
    from tests.conftest import tiny_config as run_config

    teacher = tiny_teacher(tmp_path / "teacher", family=family)
    run = distill(run_config(teacher, tiny_data, tmp_path / "run", stages=["teacher", "finetune"]), log=lambda _: None)
    bundle = export_run(run, tmp_path / "bundle").path
    payload = run_bench(BenchOptions(bundle, tiny_data["dev"], tmp_path / "bench", run_dir=run, latency_texts=5,
                                     speeds=[0.0], thread_study=False, js=False), log=lambda _: None)
    rows = {r["kind"]: r for r in payload["rows"]}
    # the ONNX export of the teacher answers as torch does, on every dev text
    assert rows["teacher-onnx"]["accuracy"] == rows["teacher-torch"]["accuracy"]
    assert rows["teacher-torch"]["gflops_per_text"] > 0
