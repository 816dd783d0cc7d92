"""Each loss against hand-computed values on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from edgekd.distill import losses


def test_identical_attention_gives_zero():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 5, 8) for _ in range(3))
    mask = torch.ones(2, 5, dtype=torch.long)
    loss, parts = losses.self_attention_distillation((q, k, v), (q, k, v), mask, heads=2)
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    assert float(parts["at"]) == pytest.approx(0.0, abs=1e-6) and float(parts["vr"]) == pytest.approx(0.0, abs=1e-6)


def test_attention_kl_equals_a_hand_computed_value():
    # One head, two tokens, width 1: scores are q_i * k_j (sqrt(1) = 1).
    q_t = torch.tensor([[[1.0], [0.0]]])
    k_t = torch.tensor([[[0.0], [2.0]]])
    q_s = torch.tensor([[[0.0], [0.0]]])  # uniform student attention
    k_s = torch.tensor([[[0.0], [0.0]]])
    mask = torch.ones(1, 2, dtype=torch.long)
    # teacher row 0: softmax([0, 2]); row 1: softmax([0, 0]) = uniform -> KL 0
    p = torch.softmax(torch.tensor([0.0, 2.0]), 0)
    row0 = float((p * (p.log() - math.log(0.5))).sum())
    want = (row0 + 0.0) / 2
    assert float(losses.attention_kl(q_t, k_t, q_s, k_s, mask, heads=1)) == pytest.approx(want, rel=1e-5)


def test_value_relation_kl_matches_definition():
    torch.manual_seed(1)
    v_t, v_s = torch.randn(1, 3, 4), torch.randn(1, 3, 6)
    mask = torch.ones(1, 3, dtype=torch.long)
    # heads=2: teacher dims 2 per head, student dims 3 per head
    want = 0.0
    for h in range(2):
        a = v_t[0, :, 2 * h : 2 * h + 2]
        b = v_s[0, :, 3 * h : 3 * h + 3]
        pt = torch.softmax(a @ a.T / math.sqrt(2), -1)
        ps = torch.softmax(b @ b.T / math.sqrt(3), -1)
        want += float((pt * (pt.log() - ps.log())).sum(-1).mean())
    assert float(losses.value_relation_kl(v_t, v_s, mask, heads=2)) == pytest.approx(want / 2, rel=1e-5)


def test_padding_does_not_change_relation_losses():
    torch.manual_seed(2)
    q_t, k_t, q_s, k_s = (torch.randn(1, 6, 8) for _ in range(4))
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    base = losses.attention_kl(q_t, k_t, q_s, k_s, mask, heads=2)
    for x in (q_t, k_t, q_s, k_s):
        x[:, 4:] = torch.randn(1, 2, 8) * 10
    assert float(losses.attention_kl(q_t, k_t, q_s, k_s, mask, heads=2)) == pytest.approx(float(base), rel=1e-5)
    short = losses.attention_kl(q_t[:, :4], k_t[:, :4], q_s[:, :4], k_s[:, :4], mask[:, :4], heads=2)
    assert float(short) == pytest.approx(float(base), rel=1e-5)


def test_relation_heads_must_divide_widths():
    with pytest.raises(ValueError, match="relation heads"):
        losses.split_relation_heads(torch.zeros(1, 2, 6), 4)
    assert losses.default_relation_heads(384, 256, 12, 8) == 8
    assert losses.default_relation_heads(384, 384, 12, 12) == 12


def test_soft_targets_scale_with_temperature_squared():
    s = torch.tensor([[1.0, -1.0, 0.5]])
    t = torch.tensor([[0.2, 1.0, -0.3]])
    for temperature in (1.0, 2.0, 4.0):
        pt = torch.softmax(t / temperature, -1)
        ls = torch.log_softmax(s / temperature, -1)
        want = temperature**2 * float((pt * (pt.log() - ls)).sum())
        assert float(losses.soft_target_kl(s, t, temperature)) == pytest.approx(want, rel=1e-5)
    assert float(losses.soft_target_kl(t, t, 3.0)) == pytest.approx(0.0, abs=1e-7)


def test_mse_and_mixing_weight():
    s, t = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])
    assert float(losses.logit_mse(s, t)) == pytest.approx(2.5)
    labels = torch.tensor([1])
    ce = float(F.cross_entropy(s, labels))
    loss, parts = losses.task_distillation(s, t, labels, kind="mse", weight=0.25)
    assert float(loss) == pytest.approx(0.75 * ce + 0.25 * 2.5, rel=1e-6)
    assert float(losses.task_distillation(s, t, labels, "soft", 2.0, weight=0.0)[0]) == pytest.approx(ce)
    assert set(losses.KD_LOSSES) == {k.value for k in losses.KDLoss}


def test_branch_self_distillation_ignores_the_trunk_and_detaches_it():
    trunk = torch.tensor([[2.0, 0.0]], requires_grad=True)
    head = torch.tensor([[0.0, 0.0]], requires_grad=True)
    loss = losses.branch_self_distillation([head, trunk])
    p = torch.softmax(torch.tensor([2.0, 0.0]), 0)
    assert float(loss.detach()) == pytest.approx(float((p * (p.log() - math.log(0.5))).sum()), rel=1e-5)
    loss.backward()
    assert trunk.grad is None and head.grad is not None
    assert float(losses.branch_self_distillation([trunk.detach(), trunk.detach()])) == pytest.approx(0.0, abs=1e-7)


def test_word_prediction_kl_by_hand_and_padding():
    torch.manual_seed(3)
    t_h, s_h = torch.randn(1, 3, 4), torch.randn(1, 3, 2)
    t_e, s_e = torch.randn(5, 4), torch.randn(5, 2)
    mask = torch.tensor([[1, 1, 0]])
    temperature = 15.0
    want = 0.0
    for pos in range(2):
        pt = torch.softmax(t_h[0, pos] @ t_e.T / temperature, -1)
        ps = torch.softmax(s_h[0, pos] @ s_e.T / temperature, -1)
        want += float((pt * (pt.log() - ps.log())).sum())
    got = losses.word_prediction_kl(t_h, t_e, s_h, s_e, mask, temperature)
    assert float(got) == pytest.approx(temperature**2 * want / 2, rel=1e-4)
    same = losses.word_prediction_kl(t_h, t_e, t_h, t_e, mask, temperature)
    assert float(same) == pytest.approx(0.0, abs=1e-6)


def test_mask_tokens_spares_padding_and_kept_ids():
    torch.manual_seed(0)
    ids = torch.tensor([[2, 7, 8, 9, 3, 0, 0]] * 200)
    mask = (ids != 0).long()
    out = losses.mask_tokens(ids, mask, mask_id=4, share=0.5, keep=[2, 3])
    assert (out[:, [0, 4, 5, 6]] == ids[:, [0, 4, 5, 6]]).all()
    share = float((out[:, 1:4] == 4).float().mean())
    assert 0.4 < share < 0.6


def test_qkv_relations_are_zero_for_a_student_that_copies_its_teacher_and_positive_otherwise():
    """Issue 41 (MiniLMv2's relations): Q-Q, K-K and V-V relation KL, across widths by regrouping."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 7, 24) for _ in range(3))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    same, parts = losses.qkv_relation_distillation((q, k, v), (q, k, v), mask, heads=4)
    assert float(same) == pytest.approx(0.0, abs=1e-6) and set(parts) == {"qq", "kk", "vv"}
    student = tuple(torch.randn(2, 7, 12) for _ in range(3))  # a narrower student: 4 heads of 3 against 6
    other, parts = losses.qkv_relation_distillation((q, k, v), student, mask, heads=4)
    assert float(other) > 0 and all(float(p) > 0 for p in parts.values())


def test_the_teacher_layer_the_relations_come_from_is_chosen_and_checked(tiny_data, tmp_path):
    import json

    from edgekd.config import ConfigError
    from edgekd.distill.stages import RunContext
    from edgekd.testing.fixtures import tiny_teacher
    from tests.conftest import tiny_config

    tiny_teacher_dir = tiny_teacher(tmp_path / "teacher", num_labels=2)  # with its task head: no teacher stage

    ids, mask = torch.tensor([[2, 5, 6, 7, 3]]), torch.ones(1, 5, dtype=torch.long)
    outputs = {}
    for layer in (0, 1):  # the tiny teacher has 2 layers: 0 = the last, 1 = the first
        cfg = tiny_config(tiny_teacher_dir, tiny_data, tmp_path / f"r{layer}", attention={"teacher_layer": layer})
        ctx = RunContext(cfg, log=lambda _: None)
        with torch.no_grad():
            outputs[layer] = ctx.teacher()(ids, mask).last_qkv[0]
        assert json.loads((tmp_path / f"r{layer}" / "config.json").read_text())["attention"]["teacher_layer"] == layer
    assert not torch.allclose(outputs[0], outputs[1])
    with pytest.raises(ConfigError, match="teacher_layer 5: the teacher has 2 layers"):
        RunContext(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "bad", attention={"teacher_layer": 5}),
                   log=lambda _: None).teacher()
    with pytest.raises(ConfigError, match="attention.relations 'qk' is not"):
        tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "bad2", attention={"relations": "qk"})


@pytest.mark.slow
def test_an_attention_stage_on_qkv_relations_from_another_layer_trains_and_records_them(tiny_teacher_dir, tiny_data,
                                                                                        tmp_path):
    import json

    from edgekd.distill.pipeline import distill
    from tests.conftest import tiny_config

    run = distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "run", stages=["teacher", "attention"],
                              attention={"relations": "qkv", "teacher_layer": 1}), log=lambda _: None)
    record = json.loads((run / "metrics.json").read_text())["attention"]
    assert record["relations"] == "qkv" and record["teacher_layer"] == 1 and record["loss"] > 0
    assert len(record["first_losses"]) == 3


def test_hidden_state_matching_is_zero_for_a_copy_and_positive_otherwise():
    """Issue 41 (TinyBERT's hidden-state distillation through a learned projection)."""
    torch.manual_seed(0)
    states = [torch.randn(2, 5, 8) for _ in range(2)]
    mask = torch.ones(2, 5, dtype=torch.long)
    identity = torch.nn.Linear(8, 8, bias=False)
    with torch.no_grad():
        identity.weight.copy_(torch.eye(8))
    assert float(losses.hidden_state_mse(states, states, identity, mask)) == pytest.approx(0.0, abs=1e-7)
    narrow = [torch.randn(2, 5, 4) for _ in range(2)]
    assert float(losses.hidden_state_mse(states, narrow, torch.nn.Linear(4, 8), mask)) > 0


@pytest.mark.slow
def test_an_attention_stage_with_hidden_matching_trains_its_projection_and_exports_without_it(tiny_teacher_dir,
                                                                                           tiny_data, tmp_path):
    import json

    from safetensors.torch import load_file

    from edgekd.distill.export import export_run
    from edgekd.distill.pipeline import distill
    from tests.conftest import tiny_config

    run = distill(tiny_config(tiny_teacher_dir, tiny_data, tmp_path / "run", stages=["teacher", "attention"],
                              attention={"hidden_weight": 1.0}, student={"init": "teacher", "hidden": 32,
                                                                         "heads": 2}),
                  log=lambda _: None)
    record = json.loads((run / "metrics.json").read_text())["attention"]
    assert record["hidden_weight"] == 1.0 and record["teacher_layers_matched"] == [1, 2]
    saved = load_file(str(run / "stages" / "attention" / "student" / "model.safetensors"))
    assert not any(k.startswith("hidden_projection") for k in saved)  # a training aid only
    assert export_run(run, tmp_path / "bundle").path.is_dir()
    assert json.loads((run / "config.json").read_text())["attention"]["hidden_weight"] == 1.0
