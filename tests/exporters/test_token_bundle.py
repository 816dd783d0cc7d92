"""A token-classification bundle (issue 45): per-token tags from every layer graph, the sentence rule compiled
into model.onnx (a sentence leaves when every token it reads is sure; padding and special tokens are not
read), the graph equal to the staged runtime at every speed, and entities with offsets into the text."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import runtime
from runtime.exits import SPEED_GRID, TOKENS, rule_mask
from runtime.task import Task

pytestmark = pytest.mark.slow  # a bundle exported and validated at every speed: seconds, not milliseconds

TAGS = ["O", "B-NEG", "I-NEG", "B-POS", "I-POS"]
TEXTS = ["good film", "the plot was very dull and the acting was awful", "truly great fun, really", "a",
         "bad bad bad movie with a boring cast and a messy story but great acting"]


@pytest.fixture(scope="module")
def token_bundle(tokenizer_file, tmp_path_factory):
    from exporters import export_student
    from tests.conftest import make_student

    student = make_student(hidden=32, layers=3, sharpen=4.0, num_labels=len(TAGS), problem=TOKENS)
    with torch.no_grad():  # later heads surer of O, so that sentences leave at every layer somewhere on the grid
        for i, head in enumerate(student.heads):
            head.classifier.bias[0] += 3.5 * i
    task = Task(TOKENS, TAGS, TAGS).with_rule()
    return export_student(student, tokenizer_file, TAGS, tmp_path_factory.mktemp("tok") / "b", max_length=40,
                          task=task).path


def test_the_compiled_token_graph_answers_as_the_staged_runtime_at_every_speed(token_bundle):
    from edgekd.testing.fixtures import tiny_sentiment

    staged = runtime.load(token_bundle, engine="staged")
    graph = runtime.load(token_bundle, engine="graph")
    texts = TEXTS + [t for t, _ in tiny_sentiment(30, 3)]
    ids, mask, _ = staged.encode(texts)
    exits = staged.trace_ids(ids, mask)  # (L, B, T, C)
    assert exits.shape[:2] == (3, len(texts)) and exits.shape[-1] == len(TAGS)
    tokens = rule_mask(ids, mask, staged.encoder.special_ids)
    layers_seen = set()
    for speed in list(SPEED_GRID) + [1.0]:
        a, la, ua = staged.run_ids(ids, mask, speed)
        b, lb, ub = graph.run_graph(ids, mask, speed)
        assert a.shape == b.shape == ids.shape + (len(TAGS),)
        assert (la == lb).all() and np.abs(a - b).max() < 1e-4 and np.abs(ua - ub).max() < 1e-5, speed
        assert (a[mask == 0] == 0).all()  # padding's tags are 0 in both engines
        want, want_layer, want_u = staged.rule.decide(exits, speed, tokens)  # the rule on every head at once
        assert (want_layer == la).all() and np.abs(want_u - ua).max() < 1e-5
        layers_seen |= set(la.tolist())
    assert layers_seen == {1, 2, 3}  # rows leave at every layer somewhere on the grid


def test_a_special_or_padded_token_does_not_hold_a_sentence_back(token_bundle):
    model = runtime.load(token_bundle, engine="staged")
    ids, mask, _ = model.encode(["good film", "good film and a long tail of words after it"])
    exits = model.trace_ids(ids, mask)
    tokens = rule_mask(ids, mask, model.encoder.special_ids)
    assert not tokens[:, 0].any() and tokens[0].sum() == 2  # [CLS] and [SEP] are not read, nor padding
    u = model.rule.trace(exits, tokens)
    everything = model.rule.trace(exits, mask.astype(bool))
    assert (u <= everything + 1e-7).all()


def test_classify_answers_entities_with_offsets_into_the_text(token_bundle):
    model = runtime.load(token_bundle)
    got = model.classify(TEXTS, speed=0.0, words=True)
    for text, answer in zip(TEXTS, got):
        assert answer.label is None and answer.probs is None and answer.exit_layer == 3
        for word in answer.words:
            assert text[word["start"]:word["end"]] == word["word"] and word["tag"] in TAGS
        for entity in answer.entities:
            assert text[entity["start"]:entity["end"]] == entity["word"]
            assert entity["entity_group"] in ("NEG", "POS") and 0 < entity["score"] <= 1
    assert [w["word"] for w in got[2].words] == ["truly", "great", "fun", ",", "really"]
    # the entities are the words' tags grouped: every B- starts one, I- of the same type continues it
    from runtime.entities import entity_spans

    for answer in got:
        spans = entity_spans([w["tag"] for w in answer.words])
        assert [(e["entity_group"], e["start"], e["end"]) for e in answer.entities] == \
            [(kind, answer.words[a]["start"], answer.words[b - 1]["end"]) for kind, a, b in spans]
    assert "words" not in model.classify(TEXTS[:1])[0].to_dict()
    assert set(model.classify(TEXTS[:1])[0].to_dict()) == {"entities", "exit_layer", "uncertainty"}


def test_words_are_refused_for_a_sequence_bundle():
    from pathlib import Path

    fixture = Path(__file__).resolve().parents[2] / "js" / "test" / "fixtures" / "fp32"
    with pytest.raises(runtime.InputError, match="words applies to token-classification bundles"):
        runtime.load(fixture).classify(["good film"], words=True)


def test_serve_and_predict_file_answer_the_entities_classify_answers(token_bundle, tmp_path):
    import csv
    import json

    from starlette.testclient import TestClient

    from edgekd.apps.predict_file import predict_file
    from edgekd.apps.serve import Server

    model = runtime.load(token_bundle)
    want = [p.to_dict() for p in model.classify(TEXTS, speed=0.5)]
    with TestClient(Server(token_bundle, warmup=False).app) as client:
        assert client.get("/v1/model").json()["problem"] == TOKENS
        got = client.post("/v1/classify", json={"texts": TEXTS, "speed": 0.5}).json()["predictions"]
    assert [(g["entities"], g["exit_layer"]) for g in got] == [(w["entities"], w["exit_layer"]) for w in want]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(TEXTS) + "\n")
    predict_file(model, source, tmp_path / "out.jsonl", speed=0.5, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["entities"] for r in rows] == [w["entities"] for w in want]
    predict_file(model, source, tmp_path / "out.csv", speed=0.5, progress=False)
    with open(tmp_path / "out.csv", newline="") as f:
        cells = [json.loads(r["entities"]) for r in csv.DictReader(f)]
    assert cells == [w["entities"] for w in want]


def test_the_shadow_check_counts_other_entities_as_a_disagreement(token_bundle):
    from edgekd.apps.shadow import Shadow

    model = runtime.load(token_bundle)
    early, full = model.classify(TEXTS, speed=0.95), model.classify(TEXTS, speed=0.0)
    shadow = Shadow.__new__(Shadow)  # the comparison alone: no queue, no server
    for a, b in zip(early, full):
        same = [(e["entity_group"], e["start"], e["end"]) for e in a.entities] == \
            [(e["entity_group"], e["start"], e["end"]) for e in b.entities]
        assert shadow.disagree(a, b) is (not same)
        assert shadow.disagree(b, b) is False


def test_ray_batches_carry_each_texts_entities(token_bundle):
    import json

    from edgekd.apps.ray import _Classifier

    actor = _Classifier(str(token_bundle), 0.5, "text", 8, None)  # what each Ray actor runs on a batch
    out = actor({"text": np.array(TEXTS), "id": np.arange(len(TEXTS))})
    want = runtime.load(token_bundle).classify(TEXTS, speed=0.5)
    assert [json.loads(cell) for cell in out["entities"]] == [w.entities for w in want]
    assert (out["id"] == np.arange(len(TEXTS))).all() and not any(k.startswith("prob_") for k in out)
