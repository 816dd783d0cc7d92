"""The student model: save/load, exit heads, and initialisation from a BERT teacher."""

from __future__ import annotations

import pytest
import torch

from edgekd.distill.model import EarlyExitStudent, StudentConfig
from edgekd.distill.teacher import TeacherError, load_teacher
from edgekd.distill.student_init import init_student_from_teacher, uniform_layers
from tests.conftest import make_student


def test_save_and_load_round_trip(tmp_path):
    student = make_student(head_type="attention", sharpen=3.0)
    student.save(tmp_path / "s")
    assert (tmp_path / "s" / "model.safetensors").is_file()
    again = EarlyExitStudent.load(tmp_path / "s")
    ids = torch.randint(1, 40, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[2, 4:] = 0
    with torch.no_grad():
        for a, b in zip(student(ids, mask).exit_logits, again(ids, mask).exit_logits):
            assert torch.equal(a, b)


def test_one_exit_per_layer_and_padding_invariance():
    student = make_student(layers=4, head_type="mean")
    ids = torch.randint(1, 40, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], 1)
    mask = torch.tensor([[1] * 6 + [0] * 5])
    with torch.no_grad():
        short = student(ids, torch.ones(1, 6, dtype=torch.long)).exit_logits
        long = student(padded, mask).exit_logits
    assert len(short) == 4
    for a, b in zip(short, long):
        assert torch.allclose(a, b, atol=1e-5)


def test_invalid_config_lists_every_problem():
    with pytest.raises(ValueError) as info:
        EarlyExitStudent(StudentConfig(hidden_size=30, num_heads=4, head_type="max", num_labels=1))
    message = str(info.value)
    assert "divide" in message and "head_type" in message and "num_labels" in message


def test_uniform_layer_selection():
    assert uniform_layers(6, 4) == [0, 2, 3, 5]
    assert uniform_layers(12, 3) == [3, 7, 11]
    assert uniform_layers(4, 4) == [0, 1, 2, 3]


def test_full_width_init_reproduces_the_teacher(tiny_teacher_dir):
    teacher = load_teacher(tiny_teacher_dir, num_labels=2).eval()
    tc = teacher.config
    student = EarlyExitStudent(StudentConfig(vocab_size=tc.vocab_size, hidden_size=tc.hidden_size,
                                             num_layers=tc.num_hidden_layers, num_heads=tc.num_attention_heads,
                                             ffn_size=tc.intermediate_size, max_position=tc.max_position_embeddings,
                                             layer_norm_eps=tc.layer_norm_eps, dropout=0.0)).eval()
    init_student_from_teacher(student, teacher)
    ids = torch.randint(5, tc.vocab_size, (2, 7))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    with torch.no_grad():
        want = teacher.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        got = student(ids, mask).hidden
    assert torch.allclose(want[0], got[0], atol=1e-4)
    assert torch.allclose(want[1, :4], got[1, :4], atol=1e-4)


def test_narrow_init_selects_weights_and_refuses_impossible_shapes(tiny_teacher_dir):
    teacher = load_teacher(tiny_teacher_dir, num_labels=2)
    tc = teacher.config
    narrow = EarlyExitStudent(StudentConfig(vocab_size=tc.vocab_size, hidden_size=16, num_layers=1, num_heads=1,
                                            ffn_size=32, max_position=64))
    assert init_student_from_teacher(narrow, teacher) == [1]
    word = teacher.base_model.embeddings.word_embeddings.weight
    assert torch.equal(narrow.embeddings.word.weight, word[:, torch.linspace(0, 31, 16).round().long()])
    too_wide = EarlyExitStudent(StudentConfig(vocab_size=tc.vocab_size, hidden_size=64, num_layers=1, num_heads=4,
                                              ffn_size=32, max_position=64))
    with pytest.raises(TeacherError, match="hidden 64 > teacher 32"):
        init_student_from_teacher(too_wide, teacher)


def test_pickled_checkpoints_are_refused(tiny_teacher_dir, tmp_path):
    import shutil

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_teacher_dir, folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(TeacherError, match="no .safetensors weights"):
        load_teacher(folder, num_labels=2)


def test_student_config_refuses_unknown_keys_like_the_manifest(tmp_path):
    import json

    from edgekd.distill.model import StudentConfig
    from runtime.records import RecordError

    path = tmp_path / "student.json"
    StudentConfig(vocab_size=10, num_labels=2).save(path)
    assert StudentConfig.load(path).vocab_size == 10
    data = json.loads(path.read_text())
    data["hidden_sise"] = 64
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match="unknown key hidden_sise; known: .*hidden_size"):
        StudentConfig.load(path)
