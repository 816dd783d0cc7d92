"""The files the Hugging Face tools read beside an ONNX graph, written from an edgekd manifest (pack --target hf).

transformers.js (`pipeline('text-classification', DIR)`) and Optimum (`ORTModelForSequenceClassification
.from_pretrained(DIR)`) load a folder holding `config.json` (the family's `model_type`, the labels, the problem
type), the tokenizer (`tokenizer.json` with `tokenizer_config.json` and `special_tokens_map.json`) and the graph
under `onnx/` by the name each precision has there (`model.onnx`, `model_quantized.onnx`, `model_fp16.onnx`).
Everything here is read from the manifest and the bundle's tokenizer.json: torch-free.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtime.errors import EdgeKDError
from runtime.files import atomic_write_text
from runtime.manifest import Manifest, sha256_file

CONFIG_FILE = "config.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"
HF_FILES = (CONFIG_FILE, TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_FILE)

# precision -> (the graph's name under onnx/, the dtype transformers.js loads it by)
GRAPH_NAMES = {"fp32": ("model.onnx", "fp32"), "int8": ("model_quantized.onnx", "q8"),
               "fp16": ("model_fp16.onnx", "fp16")}
PROBLEM_TYPES = {"single-label": "single_label_classification", "multi-label": "multi_label_classification",
                 "regression": "regression"}
# teacher family (config.model_type) -> the class names transformers and transformers.js know it by
FAMILY_CLASSES = {"bert": "Bert", "distilbert": "DistilBert", "roberta": "Roberta", "xlm-roberta": "XLMRoberta",
                  "camembert": "Camembert", "albert": "Albert", "electra": "Electra", "deberta-v2": "DebertaV2",
                  "modernbert": "ModernBert"}
# the tokenizer model a folder without a recorded family most likely came from (bundles exported before
# edgekd recorded it): WordPiece is BERT's, byte-level BPE RoBERTa's, Unigram ALBERT's / XLM-R's
FAMILY_OF_TOKENIZER = {"WordPiece": "bert", "BPE": "roberta", "Unigram": "xlm-roberta"}
SPECIAL_SPELLINGS = {"cls_token": ("[CLS]", "<s>"), "sep_token": ("[SEP]", "</s>"), "pad_token": ("[PAD]", "<pad>"),
                     "unk_token": ("[UNK]", "<unk>"), "mask_token": ("[MASK]", "<mask>")}


def graph_name(precision: str) -> tuple[str, str]:
    """(path of the graph in the folder, transformers.js dtype) for a bundle of `precision`."""
    if precision not in GRAPH_NAMES:
        raise EdgeKDError(f"a bundle of precision {precision!r} has no name under onnx/ that transformers.js "
                          f"loads; known: {', '.join(GRAPH_NAMES)}")
    name, dtype = GRAPH_NAMES[precision]
    return f"onnx/{name}", dtype


def model_type(manifest: Manifest, tokenizer: dict) -> tuple[str, str]:
    """The teacher family's `model_type`, and where it came from (recorded at export, or guessed from the
    tokenizer's model for bundles exported before it was recorded)."""
    recorded = (manifest.source or {}).get("model_type")
    if recorded:
        return str(recorded), "recorded at export"
    kind = (tokenizer.get("model") or {}).get("type")
    guess = FAMILY_OF_TOKENIZER.get(kind, "bert")
    return guess, f"guessed from the tokenizer ({kind or 'unknown model'}); re-export to record the teacher's"


def special_tokens(tokenizer: dict) -> dict[str, str]:
    """The tokenizer's special tokens by role (cls_token, sep_token, pad_token, unk_token, mask_token) where it
    has them, from its added tokens."""
    added = {t.get("content") for t in tokenizer.get("added_tokens", []) if t.get("special")}
    vocab = (tokenizer.get("model") or {}).get("vocab")
    known = set(vocab) if isinstance(vocab, dict) else set()
    out = {}
    for role, spellings in SPECIAL_SPELLINGS.items():
        found = next((s for s in spellings if s in added), None) or next((s for s in spellings if s in known), None)
        if found:
            out[role] = found
    if tokenizer.get("model", {}).get("type") == "BPE" and "cls_token" in out:  # RoBERTa-style: <s> ... </s>
        out.update(bos_token=out["cls_token"], eos_token=out.get("sep_token", out["cls_token"]))
    return out


def _normalizer_flags(tokenizer: dict) -> dict[str, Any]:
    """A BERT normalizer's settings as tokenizer_config names them (transformers rebuilds the normalizer from
    these when they differ from tokenizer.json's, so they must be the same)."""
    norm = tokenizer.get("normalizer") or {}
    steps = norm.get("normalizers", [norm]) if norm.get("type") == "Sequence" else [norm]
    bert = next((s for s in steps if s.get("type") == "BertNormalizer"), None)
    if bert is None:
        return {}
    return {"do_lower_case": bool(bert.get("lowercase", True)), "strip_accents": bert.get("strip_accents"),
            "tokenize_chinese_chars": bool(bert.get("handle_chinese_chars", True))}


def config(manifest: Manifest, tokenizer: dict, family: str, specials: dict[str, str]) -> dict[str, Any]:
    """config.json: what transformers' AutoConfig and transformers.js read to pick the model class, the labels
    and the post-processing (softmax, sigmoid, none), with the student's real shape."""
    cls = FAMILY_CLASSES.get(family, "Bert")
    labels = list(manifest.labels)
    student = (manifest.source or {}).get("student") or {}
    vocab = (tokenizer.get("model") or {}).get("vocab")
    pad = specials.get("pad_token")
    pad_id = vocab.get(pad) if isinstance(vocab, dict) and pad else None
    _, dtype = graph_name(manifest.precision)
    tokens = manifest.problem == "token-classification"  # a token classifier: its own class, no problem_type
    out: dict[str, Any] = {
        "architectures": [f"{cls}For{'Token' if tokens else 'Sequence'}Classification"],
        "model_type": family,
        "num_labels": len(labels),
        "id2label": {str(i): name for i, name in enumerate(labels)},
        "label2id": {name: i for i, name in enumerate(labels)},
        **({} if tokens else {"problem_type": PROBLEM_TYPES[manifest.problem]}),
        "hidden_size": manifest.hidden_size,
        "num_hidden_layers": manifest.num_layers,
        "vocab_size": manifest.vocabulary.original_size,
        "max_position_embeddings": manifest.max_length,
        "type_vocab_size": 2,
        "transformers.js_config": {"dtype": dtype},
        "edgekd": {"default_speed": manifest.default_speed, "manifest": "manifest.json",
                   "note": "an early-exit student: the graph's `speed` input defaults to default_speed"},
    }
    if student.get("num_heads"):  # the shape the card records (bundles exported before it was: left out)
        out["num_attention_heads"] = int(student["num_heads"])
    if student.get("ffn_size"):
        out["intermediate_size"] = int(student["ffn_size"])
    if pad_id is not None:
        out["pad_token_id"] = pad_id
    return out


def tokenizer_config(manifest: Manifest, tokenizer: dict, family: str, specials: dict[str, str]) -> dict[str, Any]:
    """tokenizer_config.json: the tokenizer class, the truncation length, the normalizer's flags, the specials."""
    cls = FAMILY_CLASSES.get(family)
    return {"tokenizer_class": f"{cls}Tokenizer" if cls else "PreTrainedTokenizerFast",
            "model_max_length": manifest.max_length, "clean_up_tokenization_spaces": False,
            **_normalizer_flags(tokenizer), **specials}


def write_hf_files(folder: str | Path, manifest: Manifest) -> dict[str, str]:
    """Write config.json, tokenizer_config.json and special_tokens_map.json into `folder` (which holds the
    bundle's tokenizer); returns {file: sha256} for the manifest's `files`."""
    folder = Path(folder)
    tokenizer = json.loads((folder / manifest.tokenizer).read_text(encoding="utf-8"))
    family, _ = model_type(manifest, tokenizer)
    specials = special_tokens(tokenizer)
    contents = {CONFIG_FILE: config(manifest, tokenizer, family, specials),
                TOKENIZER_CONFIG_FILE: tokenizer_config(manifest, tokenizer, family, specials),
                SPECIAL_TOKENS_FILE: specials}
    out = {}
    for name, data in contents.items():
        path = atomic_write_text(folder / name, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        out[name] = sha256_file(path)
    return out
