"""Text pairs through the bundle and the Python runtime: the tokenizer's own pair template and segment ids
(equal to transformers' for BERT- and RoBERTa-style tokenizers), token_type_ids really used by the student,
every graph of a pair bundle equal to torch, the compiled graph equal to the staged runtime, plain
onnxruntime reproducing the answers, and the refusals of items of the wrong shape."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import runtime
from edgekd.distill.evaluate import apply_exit_rule
from runtime.errors import InputError, InputTypeError
from runtime.tokenize import TextEncoder
from tests.conftest import TEXTS, make_student

PAIRS = [(a, b) for a, b in zip(TEXTS, TEXTS[5:] + TEXTS[:5])] + [("good", ""), ("", "bad film")]


@pytest.fixture(scope="module")
def pair_student():
    student = make_student(sharpen=60.0, seed=3)
    with torch.no_grad():  # distinct segment rows, so segment 1 changes the answer
        student.embeddings.segment.weight[1].normal_(0, 0.5)
    return student


@pytest.fixture(scope="module")
def pair_bundle(tmp_path_factory, pair_student, tokenizer_file):
    from exporters import export_student

    out = tmp_path_factory.mktemp("pairs") / "pair"
    export_student(pair_student, tokenizer_file, ["different", "same"], out, max_length=40, text_pair=True)
    return out


def torch_exits(student, encoder, items):
    ids, mask, types = (torch.from_numpy(a) for a in encoder.pairs(items))
    with torch.no_grad():
        return torch.stack(student(ids, mask, token_type_ids=types).exit_logits)


def test_the_manifest_and_the_graphs_take_token_type_ids(pair_bundle, bundle):
    import onnxruntime as ort

    manifest = runtime.read_manifest(pair_bundle)
    assert manifest.text_pair is True and manifest.schema_version == runtime.SCHEMA_VERSION
    for name in ("embed.onnx", "model.onnx"):
        inputs = {i.name for i in ort.InferenceSession(str(pair_bundle / name)).get_inputs()}
        assert "token_type_ids" in inputs, name
    single = {i.name for i in ort.InferenceSession(str(bundle / "model.onnx")).get_inputs()}
    assert single == {"input_ids", "attention_mask", "speed"}  # single-text bundles keep their inputs
    assert runtime.read_manifest(bundle).text_pair is False


@pytest.mark.parametrize("engine", ["graph", "staged"])
def test_pairs_answer_as_the_torch_student(pair_bundle, pair_student, engine):
    model = runtime.load(pair_bundle, engine=engine)
    exits = torch_exits(pair_student, model.encoder, PAIRS)
    for speed in (0.0, 0.3, 0.6):
        logits, layers = apply_exit_rule(exits, speed)
        got = model.classify(PAIRS, speed=speed, batch_size=7)
        assert [r.exit_layer for r in got] == layers.tolist()
        want = torch.softmax(logits, -1).numpy()
        assert np.allclose([list(r.probs.values()) for r in got], want, atol=1e-4)


def test_the_segments_are_used(pair_bundle):
    model = runtime.load(pair_bundle, engine="graph")
    pair = [("good film", "bad plot")]
    ids, mask, types = model.encoder.pairs(pair)
    assert types.tolist() == [[0, 0, 0, 0, 1, 1, 1]]  # [CLS] good film [SEP] bad plot [SEP]
    a = model.run_ids(ids, mask, 0.0, token_type_ids=types)[0]
    b = model.run_ids(ids, mask, 0.0, token_type_ids=np.zeros_like(types))[0]
    assert np.abs(a - b).max() > 1e-3


def test_compiled_equals_staged_on_pairs_at_every_speed(pair_bundle):
    from runtime.exits import SPEED_GRID

    graph, staged = runtime.load(pair_bundle, engine="graph"), runtime.load(pair_bundle, engine="staged")
    for batch in (1, 7, 32):
        items = (PAIRS * 3)[:batch]
        for speed in SPEED_GRID:
            a, b = graph.classify(items, speed=speed, batch_size=batch), staged.classify(items, speed=speed,
                                                                                          batch_size=batch)
            assert [(r.label, r.exit_layer) for r in a] == [(r.label, r.exit_layer) for r in b]
            assert np.allclose([list(r.probs.values()) for r in a], [list(r.probs.values()) for r in b], atol=1e-5)


def test_items_of_the_wrong_shape_are_refused_naming_the_index(pair_bundle, bundle):
    pairs, single = runtime.load(pair_bundle), runtime.load(bundle)
    with pytest.raises(InputError, match=r"texts\[1\] is a single string, but this bundle classifies text pairs"):
        pairs.classify([("a", "b"), "c"])
    with pytest.raises(InputError, match=r"texts\[0\] is a pair, but this bundle classifies single texts"):
        single.classify([("a", "b")])
    with pytest.raises(InputTypeError, match=r"texts\[0\] is a tuple of 3 items"):
        pairs.classify([("a", "b", "c")])
    with pytest.raises(InputTypeError, match=r"texts\[0\] is a dict with keys \['txt'\]"):
        pairs.classify([{"txt": "a"}])
    with pytest.raises(InputTypeError, match="texts must be a list"):
        pairs.classify(None)
    # every accepted spelling of a pair gives the same answer; an empty second text is a pair
    a = pairs.classify([("good", "bad"), ["good", "bad"], {"text": "good", "text_pair": "bad"}], speed=0.0)
    assert len({(r.label, round(r.probs["same"], 6)) for r in a}) == 1
    assert pairs.classify([("good", "")])[0].label in ("different", "same")


def test_plain_onnxruntime_reproduces_the_pair_answers(pair_bundle):
    want = runtime.load(pair_bundle, engine="graph").classify(PAIRS[:6], speed=0.3, batch_size=1)
    script = f"""
import json, numpy as np, onnxruntime as ort
from tokenizers import Tokenizer
tok = Tokenizer.from_file({str(pair_bundle / 'tokenizer.json')!r})
tok.enable_truncation(40)
session = ort.InferenceSession({str(pair_bundle / 'model.onnx')!r})
out = []
for a, b in {PAIRS[:6]!r}:
    e = tok.encode(a, b)
    feeds = {{"input_ids": np.array([e.ids], np.int64), "attention_mask": np.ones((1, len(e.ids)), np.int64),
              "token_type_ids": np.array([e.type_ids], np.int64), "speed": np.array(0.3, np.float32)}}
    logits, layer, _ = session.run(None, feeds)
    out.append([int(logits[0].argmax()), int(layer[0])])
import sys
print(json.dumps(out), "torch" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    answers, torch_loaded = done.stdout.strip().rsplit(" ", 1)
    labels = ["different", "same"]
    assert [[labels[a], layer] for a, layer in json.loads(answers)] == [[r.label, r.exit_layer] for r in want]
    assert torch_loaded == "False"


@pytest.mark.parametrize("style", ["bert", "roberta"])
def test_pair_tokens_equal_transformers(tmp_path, style):
    """The pair template, longest-first truncation and token_type_ids are the tokenizer's own, as
    transformers' fast tokenizer gives them for the same tokenizer.json."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from edgekd.testing.fixtures import WORDS

    if style == "bert":
        specials = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
        vocab = {**specials, **{w: i + 4 for i, w in enumerate(WORDS)}}
        tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
        kwargs = dict(pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]")
    else:
        specials = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3}
        vocab = {**specials, **{w: i + 4 for i, w in enumerate(WORDS)}}
        tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        tok.post_processor = processors.RobertaProcessing(("</s>", 3), ("<s>", 2))
        kwargs = dict(pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    hf = PreTrainedTokenizerFast(tokenizer_file=str(path), **kwargs)
    ours = TextEncoder.from_file(path, 12)
    pairs = [("good film", "bad"), ("the plot was very dull and the acting was awful", "a superb moving story"),
             ("fun fun fun fun fun fun fun fun fun fun", "bad")]
    ids, types = ours.tokens(pairs)
    for (a, b), got_ids, got_types in zip(pairs, ids, types):
        want = hf(a, b, truncation="longest_first", max_length=12, return_token_type_ids=True)
        assert got_ids == want["input_ids"], (a, b)
        assert got_types == want["token_type_ids"], (a, b)
    # an empty second text stays a pair (transformers' call drops a falsy text_pair): the template's separators
    # are there, with nothing between them
    (ids,), (types,) = ours.tokens([("fun", "")])
    one = [vocab["fun"]]
    assert ids == ([2] + one + [3, 3] if style == "bert" else [2] + one + [3, 3, 3])
    assert types == ([0, 0, 0, 1] if style == "bert" else [0] * len(ids))


def flat_manifest(data: dict, version: int) -> None:
    """`data` (a schema-4 manifest) in the shape schema `version` (2 or 3) wrote: the task's fields at the top
    level, the graph list named `stages`, and for schema 2 none of the fields schema 3 added."""
    task = data.pop("task")
    data["stages"] = data.pop("parts")
    data["schema_version"] = version
    data["labels"] = task["labels"]
    data["label_values"] = task["label_values"]
    if version >= 3:
        data.update({k: task[k] for k in ("text_pair", "problem", "target_scale", "thresholds", "threshold_choice",
                                          "exit_rule")})


@pytest.mark.parametrize("version", [2, 3])
def test_a_schema_2_or_3_bundle_still_loads_and_answers_as_before(bundle_copy, version):
    from tests.runtime.test_bundle_checks import edit_manifest

    want = runtime.load(bundle_copy).classify(TEXTS, speed=0.3)
    edit_manifest(bundle_copy, lambda data: flat_manifest(data, version))
    model = runtime.load(bundle_copy)
    assert model.manifest.schema_version == version and model.manifest.text_pair is False
    assert model.labels == ["negative", "positive"] and model.problem == "single-label"
    assert model.classify(TEXTS, speed=0.3) == want


def test_serve_takes_pairs_and_refuses_the_wrong_shape_with_a_422(pair_bundle):
    from starlette.testclient import TestClient

    from edgekd.apps.serve import Server

    server = Server(pair_bundle, warmup=False)
    want = runtime.load(pair_bundle).classify(PAIRS[:4], speed=0.3)
    with TestClient(server.app) as client:
        body = {"texts": [list(p) for p in PAIRS[:2]] + [{"text": a, "text_pair": b} for a, b in PAIRS[2:4]],
                "speed": 0.3}
        r = client.post("/v1/classify", json=body)
        assert r.status_code == 200, r.text
        got = r.json()["predictions"]
        assert [(g["label"], g["exit_layer"]) for g in got] == [(w.label, w.exit_layer) for w in want]
        r = client.post("/v1/classify", json={"texts": [["a", "b"], "c"]})
        assert r.status_code == 422 and "texts[1] is a single string" in r.json()["error"]
        r = client.post("/v1/classify", json={"texts": [["a", "b", "c"]]})
        assert r.status_code == 422 and "texts[0] is a list of 3 items" in r.json()["error"]


@pytest.mark.slow
def test_ray_streams_pairs(pair_bundle):
    pytest.importorskip("ray")
    import ray

    from edgekd.ray import classify_dataset

    ray.init(num_cpus=1, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    try:
        rows = [{"q1": a, "q2": b} for a, b in PAIRS]
        out = classify_dataset(ray.data.from_items(rows), pair_bundle, text_column="q1", text_pair_column="q2",
                               speed=0.3).take_all()
    finally:
        ray.shutdown()
    want = runtime.load(pair_bundle).classify(PAIRS, speed=0.3)
    assert [(r["q1"], r["q2"], r["label"], r["exit_layer"]) for r in out] == \
        [(a, b, w.label, w.exit_layer) for (a, b), w in zip(PAIRS, want)]


def test_one_pair_or_a_tuple_of_texts(pair_bundle, bundle):
    pairs, single = runtime.load(pair_bundle), runtime.load(bundle)
    assert len(pairs.classify(("good", "bad"))) == 1  # one pair
    assert len(single.classify(("good", "bad"))) == 2  # a tuple of two texts, as before pairs existed
