"""Token classification's foundations (issue 45): both file formats read and refused as documented, words
aligned to sub-tokens with truncation that keeps words whole, BIO repaired as seqeval's lenient mode reads it,
and entities with character offsets into the text."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer

from edgekd.rows import DataError
from edgekd.testing.fixtures import tiny_tokenizer
from edgekd.tokens import IGNORE, align, is_conll, read_conll, read_token_jsonl, read_tokens
from runtime.entities import entities, repair

CONLL = """-DOCSTART- -X- -X- O

the DT B-NP O
film NN I-NP B-MISC
was VBD B-VP O

good JJ B-ADJP B-PER
fun NN I-NP I-PER
"""


def test_conll_columns_are_read_with_the_tag_in_the_last_column(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(CONLL)
    assert is_conll(path)
    data = read_tokens(path)
    assert data.words == [["the", "film", "was"], ["good", "fun"]]
    assert data.tags == [["O", "B-MISC", "O"], ["B-PER", "I-PER"]]
    assert data.labels == ["O", "B-MISC", "B-PER", "I-PER"]
    bad = tmp_path / "bad.conll"
    bad.write_text("the O\nfilm\n\n")
    with pytest.raises(DataError, match="line 2 has one column"):
        read_conll(bad)


def test_prose_is_not_taken_for_conll(tmp_path):
    prose = tmp_path / "notes.txt"
    prose.write_text("a gripping film about a family\n\nit was dull\nand far too long for what it says\n")
    assert not is_conll(prose)
    with pytest.raises(DataError, match="not a token-classification file"):
        read_tokens(prose)


def test_jsonl_tags_as_names_or_as_ids_with_their_names(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"tokens": ["good", "fun"], "ner_tags": [1, 2]}) + "\n")
    names = ["O", "B-PER", "I-PER"]
    assert read_token_jsonl(path, names).tags == [["B-PER", "I-PER"]]
    with pytest.raises(DataError, match="--label-names"):
        read_token_jsonl(path)
    path.write_text(json.dumps({"tokens": ["good"], "tags": ["O", "B-PER"]}) + "\n")
    with pytest.raises(DataError, match="1 tokens and 2 tags"):
        read_token_jsonl(path)


def test_a_word_tag_goes_to_its_first_sub_token_and_truncation_keeps_words_whole(tmp_path):
    tokenizer = Tokenizer.from_file(str(tiny_tokenizer(tmp_path / "t.json")))
    labels = ["O", "B-MISC", "I-MISC"]
    ids, tags, kept = align(tokenizer, ["good", "films", "fun"], ["O", "B-MISC", "O"], labels, 16)
    pieces = [tokenizer.id_to_token(i) for i in ids]
    assert pieces == ["[CLS]", "good", "film", "##s", "fun", "[SEP]"] and kept == 3
    assert tags == [IGNORE, 0, 1, IGNORE, 0, IGNORE]
    # 5 tokens fit: [CLS] good film ##s [SEP] would cut "films" after "film", so it goes whole
    ids, tags, kept = align(tokenizer, ["good", "films", "fun"], ["O", "B-MISC", "O"], labels, 4)
    assert [tokenizer.id_to_token(i) for i in ids] == ["[CLS]", "good", "[SEP]"] and kept == 1
    assert tags == [IGNORE, 0, IGNORE]
    with pytest.raises(DataError, match="not among the labels"):
        align(tokenizer, ["good"], ["B-LOC"], labels, 8)


def test_bio_is_repaired_as_seqevals_lenient_mode_reads_it():
    assert repair(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"]) == \
        ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG"]


def test_entities_carry_offsets_into_the_text_and_the_mean_score():
    text = "Zoë met Zoë in São Paulo, again."
    spans = [(0, 3), (4, 7), (8, 11), (12, 14), (15, 18), (19, 24), (24, 25), (26, 31), (31, 32)]
    tags = ["B-PER", "O", "I-PER", "O", "B-LOC", "I-LOC", "O", "O", "O"]
    scores = [0.9, 0.99, 0.7, 0.99, 0.8, 0.6, 0.99, 0.99, 0.99]
    got = [e.to_dict() for e in entities(text, spans, tags, scores)]
    assert got == [
        {"entity_group": "PER", "score": 0.9, "word": "Zoë", "start": 0, "end": 3},
        {"entity_group": "PER", "score": 0.7, "word": "Zoë", "start": 8, "end": 11},  # an I- after O starts one
        {"entity_group": "LOC", "score": pytest.approx(0.7), "word": "São Paulo", "start": 15, "end": 24},
    ]
    assert all(text[e["start"]:e["end"]] == e["word"] for e in got)
    with pytest.raises(ValueError, match="one each per word"):
        entities(text, spans[:2], tags, scores)


def test_a_sentence_leaves_when_every_real_token_is_sure():
    import math

    import numpy as np

    from runtime.exits import decide_tokens, token_uncertainty

    sure, unsure = [8.0, 0.0, 0.0], [0.0, 0.0, 0.0]  # a one-hot-ish token; a uniform one (u = 1)
    p = np.exp(sure) / np.exp(sure).sum()
    u_sure = float(-(p * np.log(p)).sum() / math.log(3))
    mask = np.array([[1, 1, 0]])  # the third token is padding: its uncertainty does not count
    layer1 = np.array([[sure, unsure, unsure]])
    layer2 = np.array([[sure, sure, unsure]])
    assert token_uncertainty(layer1, mask)[0] == pytest.approx(1.0, abs=1e-6)
    assert token_uncertainty(layer2, mask)[0] == pytest.approx(u_sure, abs=1e-6)
    exits = np.stack([layer1, layer2, layer2])  # (L, B, T, C)
    _, layer, u = decide_tokens(exits, mask, speed=0.5)
    assert layer.tolist() == [2] and u[0] == pytest.approx(u_sure, abs=1e-6)  # layer 1 has an unsure token
    _, layer, _ = decide_tokens(exits, mask, speed=0.0)
    assert layer.tolist() == [3]  # speed 0 runs every layer


def test_words_keep_their_offsets_into_the_original_text(tmp_path):
    from runtime.entities import words_of

    tokenizer = Tokenizer.from_file(str(tiny_tokenizer(tmp_path / "t.json")))
    text = "Zoë saw  GOODLY films, in São Paulo!"
    spans, first = words_of(tokenizer.encode(text))
    assert [text[a:b] for a, b in spans] == ["Zoë", "saw", "GOODLY", "films", ",", "in", "São", "Paulo", "!"]
    encoding = tokenizer.encode(text)
    assert all(encoding.word_ids[i] != encoding.word_ids[i - 1] for i in first)  # each a word's first piece
    assert [encoding.tokens[i] for i in first][2:4] == ["good", "film"]  # goodly = good ##ly, films = film ##s
