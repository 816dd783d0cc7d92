"""The teacher as edgekd reads it: class names mapped to the data, remote code refused, tokenizers checked."""

from __future__ import annotations

import json

import pytest


def _teacher_with_head(folder, names, auto_map=False):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from edgekd.testing.fixtures import SPECIALS, WORDS, tiny_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tiny_tokenizer(folder / "tokenizer.json")
    config = BertConfig(vocab_size=len(SPECIALS) + len(WORDS) + 2, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=len(names), id2label=dict(enumerate(names)),
                        label2id={n: i for i, n in enumerate(names)})
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(folder), safe_serialization=True)
    if auto_map:
        data = json.loads((folder / "config.json").read_text())
        data["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
        (folder / "config.json").write_text(json.dumps(data))
    return folder


def test_a_head_with_other_class_names_is_mapped_by_name_or_refused(tmp_path, tiny_data):
    import torch

    from edgekd.distill.teacher import TeacherError, load_teacher

    teacher = _teacher_with_head(tmp_path / "t", ["positive", "negative"])  # the reverse of the data's order
    model = load_teacher(teacher, 2, labels=["negative", "positive"])
    plain = load_teacher(teacher, 2)
    ids = torch.tensor([[2, 5, 6, 3]])
    with torch.no_grad():
        a, b = model.eval()(input_ids=ids).logits, plain.eval()(input_ids=ids).logits
    assert torch.allclose(a, b.flip(-1)), "output k of the mapped head is the label k of the data"
    with pytest.raises(TeacherError, match="cannot be matched by name"):
        load_teacher(teacher, 2, labels=["sports", "politics"])
    placeholder = _teacher_with_head(tmp_path / "p", ["LABEL_0", "LABEL_1"])
    with torch.no_grad():
        same = load_teacher(placeholder, 2, labels=["negative", "positive"]).eval()(input_ids=ids).logits
        raw = load_teacher(placeholder, 2).eval()(input_ids=ids).logits
    assert torch.equal(same, raw), "LABEL_k placeholders are mapped by index"


def test_remote_code_and_stray_weights_are_refused_up_front(tmp_path):
    from edgekd.distill.teacher import TeacherError, check_teacher

    evil = _teacher_with_head(tmp_path / "evil", ["a", "b"], auto_map=True)
    with pytest.raises(TeacherError, match="remote code"):
        check_teacher(evil, True, "teacher")
    stray = _teacher_with_head(tmp_path / "stray", ["a", "b"])
    (stray / "model.safetensors").rename(stray / "other-model.safetensors")
    with pytest.raises(TeacherError, match="other-model.safetensors"):
        check_teacher(stray, True, "teacher")


def test_factorised_embeddings_with_init_teacher_are_accepted(tmp_path):
    """Issue 16 superseded the refusal: ELECTRA with embedding size != hidden size is supported (its projection
    comes along; tests/edgekd/test_families.py checks the copy is exact)."""
    from transformers import ElectraConfig, ElectraModel

    from edgekd.distill.teacher import check_teacher

    ElectraModel(ElectraConfig(vocab_size=60, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=2, intermediate_size=64)).save_pretrained(
        str(tmp_path / "e"), safe_serialization=True)
    check_teacher(tmp_path / "e", True, "teacher")
    check_teacher(tmp_path / "e", True, "random")


def test_a_tokenizer_that_is_not_the_teachers_is_refused_or_warned(tiny_teacher_dir, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    from edgekd.distill.teacher import TeacherError, check_tokenizer
    from runtime.tokenize import TextEncoder

    big = Tokenizer(models.WordLevel({f"w{i}": i for i in range(500)} | {"[UNK]": 500}, unk_token="[UNK]"))
    big.pre_tokenizer = pre_tokenizers.Whitespace()
    big.save(str(tmp_path / "big.json"))
    with pytest.raises(TeacherError, match="wrong folder"):
        check_tokenizer(TextEncoder.from_file(tmp_path / "big.json", 16), tiny_teacher_dir, True, ["w1 w2"])
    encoder = TextEncoder.from_file(tiny_teacher_dir / "tokenizer.json", 16)
    with pytest.warns(UserWarning, match="unknown to the teacher's tokenizer"):
        share = check_tokenizer(encoder, tiny_teacher_dir, True, ["das ist ein ganz anderer satz"])
    assert share > 0.5
    assert check_tokenizer(encoder, tiny_teacher_dir, True, ["a good film"]) == 0.0


def test_a_missing_teacher_folder_or_an_offline_hub_id_names_the_fix(tmp_path):
    from edgekd.distill.teacher import TeacherError, teacher_config

    with pytest.raises(TeacherError, match=r"the teacher folder .*/nowhere/teacher does not exist"):
        teacher_config(str(tmp_path / "nowhere" / "teacher"), offline=True)
    with pytest.raises(TeacherError, match=r"'someone/some-model' is not a local folder; to download it from the "
                                           r"hub pass --online"):
        teacher_config("someone/some-model", offline=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TeacherError, match="has no config.json"):
        teacher_config(str(tmp_path / "empty"), offline=True)
