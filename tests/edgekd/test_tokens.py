"""Token classification's foundations (issue 45): both file formats read and refused as documented, words
aligned to sub-tokens with truncation that keeps words whole, BIO repaired as seqeval's lenient mode reads it,
and entities with character offsets into the text."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers import Tokenizer

import runtime

from edgekd.rows import DataError
from edgekd.testing.fixtures import tiny_tokenizer
from edgekd.tokens import IGNORE, TokenDataset, is_conll, read_conll, read_token_jsonl, read_tokens, token_labels
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


def test_a_word_tag_goes_to_its_first_sub_token_as_the_runtime_tokenizes_the_sentence(tmp_path):
    from runtime.tokenize import TextEncoder

    encoder = TextEncoder.from_file(tiny_tokenizer(tmp_path / "t.json"), 16)
    labels = ["O", "B-MISC", "I-MISC"]
    data = TokenDataset([["good", "films", "fun"], ["films,fun", "good"]], [["O", "B-MISC", "O"], ["B-MISC", "O"]])
    texts, rows = token_labels(encoder, data, labels)
    assert texts == ["good films fun", "films,fun good"]
    assert [r for r in encoder.token_ids(texts)] == [e.ids for e in encoder.tokenizer.encode_batch(texts)]
    pieces = [encoder.tokenizer.id_to_token(i) for i in encoder.token_ids(texts)[0]]
    assert pieces == ["[CLS]", "good", "film", "##s", "fun", "[SEP]"]
    assert rows[0] == [IGNORE, 0, 1, IGNORE, 0, IGNORE]
    # the runtime reads `films,fun` as three words: the later two continue the file word's entity
    assert [encoder.tokenizer.id_to_token(i) for i in encoder.token_ids(texts)[1]][1:6] == \
        ["film", "##s", "[UNK]", "fun", "good"]  # the tiny vocabulary has no comma
    assert rows[1] == [IGNORE, 1, IGNORE, 2, 2, 0, IGNORE]
    # cut at max_length: the last word kept may be cut, so it is left untagged
    texts, rows = token_labels(TextEncoder.from_file(tmp_path / "t.json", 4), data, labels)
    assert rows[0] == [IGNORE, 0, IGNORE, IGNORE]
    with pytest.raises(DataError, match="not among the labels"):
        token_labels(encoder, TokenDataset([["good"]], [["B-LOC"]]), labels)


def test_entities_are_scored_when_type_and_both_ends_match():
    from edgekd.metrics import entity_f1, task_scores

    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG"]]
    assert entity_f1(gold, gold) == {"entity_f1": 1.0, "entity_precision": 1.0, "entity_recall": 1.0,
                                     "entity_f1_strict": 1.0}
    # one end wrong (PER cut short), one type wrong (LOC as ORG), one found; an I- after O starts an entity
    got = entity_f1([["B-PER", "O", "O", "B-ORG"], ["O", "I-ORG"]], gold)
    assert got["entity_precision"] == pytest.approx(1 / 3) and got["entity_recall"] == pytest.approx(1 / 3)
    # read strictly (seqeval's mode="strict"), the I-ORG after O is no entity: 0 of 2 found right, 3 wanted
    assert got["entity_f1_strict"] == 0.0
    assert entity_f1([["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG"]], [["B-PER", "I-PER", "O", "B-LOC"],
                     ["O", "I-ORG"]])["entity_f1_strict"] == pytest.approx(2 * 2 / (3 + 2))
    # from logits, read where gold holds a tag
    import numpy as np

    names = ["O", "B-PER", "I-PER"]
    logits = np.eye(3)[[[0, 1, 2, 0], [0, 1, 0, 0]]]  # (2, 4, 3)
    tags = np.array([[IGNORE, 1, 2, IGNORE], [IGNORE, 1, 2, IGNORE]])
    assert task_scores("token-classification", logits, tags, names=names)["entity_f1"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="tag names"):
        task_scores("token-classification", logits, tags)


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

    from runtime.exits import TOKENS, ExitRule, decide, rule_mask, token_uncertainty

    sure, unsure = [8.0, 0.0, 0.0], [0.0, 0.0, 0.0]  # a one-hot-ish token; a uniform one (u = 1)
    p = np.exp(sure) / np.exp(sure).sum()
    u_sure = float(-(p * np.log(p)).sum() / math.log(3))
    mask = np.array([[1, 1, 0]])  # the third token is padding: its uncertainty does not count
    layer1 = np.array([[sure, unsure, unsure]])
    layer2 = np.array([[sure, sure, unsure]])
    assert token_uncertainty(layer1, mask)[0] == pytest.approx(1.0, abs=1e-6)
    assert token_uncertainty(layer2, mask)[0] == pytest.approx(u_sure, abs=1e-6)
    exits = np.stack([layer1, layer2, layer2])  # (L, B, T, C)
    rule = ExitRule(TOKENS)
    logits, layer, u = decide(exits, 0.5, rule, mask)
    assert layer.tolist() == [2] and u[0] == pytest.approx(u_sure, abs=1e-6)  # layer 1 has an unsure token
    assert logits.shape == (1, 3, 3) and (logits == layer2[0]).all()
    _, layer, _ = rule.decide(exits, 0.0, mask)
    assert layer.tolist() == [3]  # speed 0 runs every layer
    with pytest.raises(runtime.InputError, match="needs the sentences' token mask"):
        rule.trace(exits)
    # special tokens are not read: [CLS] (id 1) unsure, the word sure -> the sentence is sure
    ids, attention = np.array([[1, 7, 2, 0]]), np.array([[1, 1, 1, 0]])
    assert rule_mask(ids, attention, [1, 2]).tolist() == [[False, True, False, False]]


def test_words_keep_their_offsets_into_the_original_text(tmp_path):
    from runtime.entities import words_of

    tokenizer = Tokenizer.from_file(str(tiny_tokenizer(tmp_path / "t.json")))
    text = "Zoë saw  GOODLY films, in São Paulo!"
    spans, first = words_of(tokenizer.encode(text))
    assert [text[a:b] for a, b in spans] == ["Zoë", "saw", "GOODLY", "films", ",", "in", "São", "Paulo", "!"]
    encoding = tokenizer.encode(text)
    assert all(encoding.word_ids[i] != encoding.word_ids[i - 1] for i in first)  # each a word's first piece
    assert [encoding.tokens[i] for i in first][2:4] == ["good", "film"]  # goodly = good ##ly, films = film ##s



@pytest.mark.parametrize("max_length", [4, 6, 16])
def test_a_word_cut_by_truncation_spans_the_whole_word(tmp_path, max_length):
    # a word whose first piece is kept is tagged; its entity spans the whole word (as the JS runtime, which finds
    # words the way BERT's pre-tokenizer does, gives it), not the pieces that fit
    from tokenizers.pre_tokenizers import BertPreTokenizer

    from runtime.entities import tag_answers, words_of
    from runtime.tokenize import TextEncoder

    encoder = TextEncoder.from_file(tiny_tokenizer(tmp_path / "t.json"), max_length)
    text = "saw goodly films, ok"  # [UNK] good ##ly film ##s , ok: 4 cuts goodly after good, 6 films after film
    encoding = encoder.encodings([text])[0]
    spans, first = words_of(encoding, text)
    words = [span for _, span in BertPreTokenizer().pre_tokenize_str(text)]
    assert spans == words[: len(spans)] and len(first) == len(spans)
    assert words_of(encoding)[0][:-1] == spans[:-1]  # only the last word can be cut
    logits = np.zeros((1, len(encoding.ids), 3), np.float32)
    logits[0, first, 1] = 5.0  # every word B-X
    answer = tag_answers(encoder, [text], logits, ["O", "B-X", "I-X"], words=True)[0]
    assert [w["word"] for w in answer["words"]] == [text[a:b] for a, b in words[: len(spans)]]
    assert [e["word"] for e in answer["entities"]] == [text[a:b] for a, b in words[: len(spans)]]


def test_token_outputs_agree_where_the_rule_reads():
    from runtime.exits import ExitRule

    rule = ExitRule("token-classification")
    a = np.eye(3)[[[0, 1, 2, 0]]]  # (1, 4, 3)
    b = a.copy()
    b[0, 3] = [0, 0, 9]  # a padding or special token's tag differs
    read = np.array([[True, True, True, False]])
    assert rule.agree(a, b, mask=read).tolist() == [True] and rule.agree(a, b).tolist() == [False]
    b[0, 1] = [9, 0, 0]  # a word's tag differs
    assert rule.agree(a, b, mask=read).tolist() == [False]
