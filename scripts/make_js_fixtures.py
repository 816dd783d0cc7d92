"""Regenerate the JavaScript runtime's parity fixtures: js/test/fixtures/.

Seven tiny bundles (fp32, compressed vocabulary, int8, a bundle of text pairs, a multi-label, a
regression and a token-classification bundle) of tiny seeded students, and what the Python runtime answers for a fixed list of texts (of pairs, for the pair
bundle) at three speeds (expected.json). Beside them, `pack --target hf` folders of four of them (hf-fp32,
hf-int8, hf-pair, hf-multi), each with a middle speed as its default, and 300 seeded texts (and pairs) that
transformers.js runs on them against edgekd's JS runtime (js/test/interop.test.js). The Node and browser tests compare against these; a
Python test (tests/js/test_fixtures.py) checks that the committed answers still
match the Python runtime, so the two sides cannot drift.

    .venv/bin/python scripts/make_js_fixtures.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIXTURES = ROOT / "js" / "test" / "fixtures"
LABELS = ["negative", "positive"]
MULTI_LABELS = ["joy", "anger", "fear"]
TAGS = ["O", "B-NEG", "I-NEG", "B-POS", "I-POS"]  # the token-classification bundle's tags
TOKENS = "token-classification"
MAX_LENGTH = 24
TEXTS = [
    "good",
    "bad film",
    "the plot was very dull and the acting was awful",
    "a superb, moving story with a brilliant cast!",
    "not quite fine",
    "It Is A FILM",
    "boring " * 30,  # longer than max_length: truncated
    "charming and lovely but rather messy",
    "the cast is weak ; the story is tedious ; the plot is bland",
    "fun",
    "an awful , terrible , poor movie",
    "truly great",
    "",
    "   ",
    "café crème brûlée",  # accents stripped by the normalizer
    "影片很好 good",  # CJK characters are split one by one
    "emoji 😀 and symbols ™ ©",
    "films movies goodly",  # word pieces
    "tab\tseparated\nand newline",
    "ALL CAPS AWFUL",
    "u+2028\u2028line separator",
    "really really really really really good film",
    "dull",
    "great great great",
]
# pairs for the pair bundle: the truncation of either side or both (longest first), an empty second text
PAIRS = [
    ["good film", "bad plot"],
    ["a superb, moving story with a brilliant cast!", "the plot was very dull and the acting was awful"],
    ["boring " * 30, "fun"],
    ["fun", "awful " * 30],
    ["charming " * 15, "tedious " * 15],
    ["great great great", ""],
    ["", "dull"],
    ["It Is A FILM", "café crème brûlée"],
    ["truly great", "truly great"],
    ["not quite fine", "emoji 😀 and symbols ™ ©"],
]


def make_bundles(work: Path) -> dict[str, Path]:
    import torch

    from edgekd.distill.model import EarlyExitStudent, StudentConfig
    from edgekd.testing.fixtures import SPECIALS, WORDS, tiny_tokenizer
    from edgekd.distill.vocab import VocabMap, compress_student, nearest_kept
    from exporters import export_student
    from exporters.quantize import precision_rewrite
    from runtime.task import Task

    tokenizer = tiny_tokenizer(work / "tokenizer.json")
    torch.manual_seed(7)
    cfg = StudentConfig(vocab_size=len(SPECIALS) + len(WORDS) + 2, hidden_size=32, num_layers=3, num_heads=2,
                        ffn_size=64, num_labels=2, max_position=64, dropout=0.0)
    student = EarlyExitStudent(cfg).eval()
    with torch.no_grad():  # spread the heads' confidences so that middle speeds make rows exit
        for i, head in enumerate(student.heads):
            head.classifier.weight.mul_(60.0 * (1 + i))
            head.classifier.bias.normal_(0, 0.5)
    kept = np.array([0, 1, 2, 3, 4] + list(range(5, cfg.vocab_size, 2)))
    small = compress_student(student, VocabMap(kept, nearest_kept(student.embeddings.word.weight, kept))).eval()
    import copy

    pair = copy.deepcopy(student)
    with torch.no_grad():  # a distinct second segment, so the pair's token_type_ids matter
        pair.embeddings.segment.weight[1].normal_(0, 0.5)
    out = {}
    for name, model, post, text_pair in (("fp32", student, None, False), ("vocab", small, None, False),
                                         ("int8", student, precision_rewrite("int8"), False),
                                         ("pair", pair, None, True)):
        out[name] = work / name
        export_student(model, tokenizer, LABELS, out[name], max_length=MAX_LENGTH, rewrite=post, text_pair=text_pair)
    for problem, labels, sharpen, scale in (("multi-label", MULTI_LABELS, 200.0, None), ("regression", ["score"], 100.0, 1.0)):
        torch.manual_seed(11)
        typed = EarlyExitStudent(StudentConfig(**{**cfg.__dict__, "num_labels": len(labels), "problem": problem})).eval()
        with torch.no_grad():
            for i, head in enumerate(typed.heads):
                head.classifier.weight.mul_(sharpen * (1 + i))
                head.classifier.bias.normal_(0, 0.5)
        name = "multi" if problem == "multi-label" else "regression"
        out[name] = work / name
        export_student(typed, tokenizer, labels, out[name], max_length=MAX_LENGTH,
                       task=Task(problem, target_scale=scale))
    torch.manual_seed(13)
    tagger = EarlyExitStudent(StudentConfig(**{**cfg.__dict__, "num_labels": len(TAGS), "problem": TOKENS})).eval()
    with torch.no_grad():  # later heads surer of O, so that sentences leave at every layer somewhere
        for i, head in enumerate(tagger.heads):
            head.classifier.weight.mul_(8.0 * (1 + i))
            head.classifier.bias.normal_(0, 0.5)
            head.classifier.bias[0] += 1.0 * i  # (entities are still found at full depth: 14 in TEXTS)
    out["tokens"] = work / "tokens"
    export_student(tagger, tokenizer, TAGS, out["tokens"], max_length=MAX_LENGTH, task=Task(TOKENS, TAGS, TAGS))
    return out


HF_FOLDERS = ("fp32", "int8", "pair", "multi", "tokens")  # packed for transformers.js / Optimum as hf-<name>
HF_TEXTS = 300


def hf_texts(count: int = HF_TEXTS, seed: int = 3) -> tuple[list[str], list[list[str]]]:
    """`count` seeded texts of 1-14 of the tiny tokenizer's words (some capitalised, some with punctuation), and
    as many pairs of them."""
    from edgekd.testing.fixtures import WORDS

    rng = np.random.default_rng(seed)

    def text() -> str:
        words = [str(w) for w in rng.choice(WORDS + ["films", "goodly", "!", ","], size=int(rng.integers(1, 15)))]
        return " ".join(w.capitalize() if rng.random() < 0.1 else w for w in words)

    texts = [text() for _ in range(count)]
    return texts, [[text(), text()] for _ in range(count)]


def pack_hf(bundle: Path, speed: float, out: Path) -> None:
    """`bundle` packed for the Hugging Face tools with `speed` as its default (set on a copy first)."""
    from edgekd.pack import pack
    from runtime.manifest import read_manifest, write_manifest

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / bundle.name
        shutil.copytree(bundle, copy)
        manifest = read_manifest(copy)
        manifest.default_speed = speed
        write_manifest(copy, manifest)
        pack(copy, out, "hf")


def items_of(model) -> list:
    return [tuple(p) for p in PAIRS] if model.manifest.text_pair else TEXTS


def choose_speeds(bundle: Path, items: list | None = None) -> list[float]:
    """0, and two speeds far from every row's uncertainty at every layer (so tiny float
    differences between onnxruntime builds cannot flip an exit), with exits at several layers, on `items` (the
    fixture's texts or pairs by default)."""
    import runtime
    from runtime.exits import decide, rule_mask

    model = runtime.load(bundle, engine="staged")
    ids, mask, types = model.encode(items if items is not None else items_of(model))
    trace = model.trace_ids(ids, mask, types)
    tokens = rule_mask(ids, mask, model.encoder.special_ids) if model.rule.per_token else None
    u = model.rule.trace(trace, tokens).ravel()
    best = []
    for low, high in ((0.3, 0.7), (0.7, 0.98)):
        grid = np.round(np.arange(low, high, 0.005), 3)
        scored = [(float(np.abs(u - s).min()), len(set(decide(trace, s, model.rule, tokens)[1].tolist())), float(s))
                  for s in grid]
        best.append(max(scored, key=lambda t: (t[1] > 1, t[0]))[2])
    return [0.0] + best


def expected(bundle: Path, speeds: list[float]) -> dict:
    import runtime

    model = runtime.load(bundle, engine="graph")
    items = items_of(model)
    cases = []
    for speed in speeds:
        results = model.classify(items, speed=speed, words=model.problem == TOKENS)
        cases.append({"speed": speed, "results": [
            {("exitLayer" if k == "exit_layer" else k): v for k, v in r.to_dict().items()} for r in results]})
    ids, types = model.encoder.tokens(items)
    out = {"precision": model.manifest.precision, "problem": model.problem, "ids": ids, "cases": cases}
    if model.manifest.text_pair:
        out.update(pairs=PAIRS, types=types)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bundles = make_bundles(Path(tmp))
        texts, pairs = hf_texts()
        result = {"made_by": "scripts/make_js_fixtures.py", "max_length": MAX_LENGTH, "texts": TEXTS, "bundles": {},
                  "hf": {"texts": texts, "pairs": pairs, "folders": {}}}
        speeds = {name: choose_speeds(path) for name, path in bundles.items()}
        for name, path in bundles.items():
            result["bundles"][name] = expected(path, speeds[name])
        if FIXTURES.exists():
            shutil.rmtree(FIXTURES)
        FIXTURES.mkdir(parents=True)
        for name, path in bundles.items():
            shutil.copytree(path, FIXTURES / name)
        for name in HF_FOLDERS:  # a middle speed on the 300 items: some leave early, some run every layer
            speed = choose_speeds(bundles[name], [tuple(p) for p in pairs] if name == "pair" else texts)[1]
            pack_hf(bundles[name], speed, FIXTURES / f"hf-{name}")
            result["hf"]["folders"][f"hf-{name}"] = {"from": name, "default_speed": speed}
        (FIXTURES / "expected.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n",
                                                encoding="utf-8")
    sizes = {p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) for p in FIXTURES.iterdir()
             if p.is_dir()}
    print(f"wrote {FIXTURES} ({', '.join(f'{k} {v / 1e3:.0f} kB' for k, v in sizes.items())})")


if __name__ == "__main__":
    main()
