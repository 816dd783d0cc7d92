"""Test fixtures: tiny, offline stand-ins for tests and demos (a teacher of any supported family, a WordPiece
tokenizer, a toy sentiment set), built from config; nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "good great fine nice superb lovely brilliant fun moving charming bad awful dull boring poor weak "
    "terrible bland messy tedious the a an film movie story plot acting cast is was very not quite "
    "and but of it this that with too so really truly rather"
).split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_tokenizer(path: str | Path) -> Path:
    """A WordPiece tokenizer over WORDS (+ '##s'), saved as tokenizer.json."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS + ["##s", "##ly"])}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    path = Path(path)
    tokenizer.save(str(path))
    return path


# every supported family, small and random, for tests and demos (ELECTRA and ALBERT with factorised embeddings)
TINY_FAMILIES = ("bert", "distilbert", "roberta", "xlm-roberta", "camembert", "albert", "electra", "deberta-v2",
                 "modernbert")


def tiny_config(family: str, hidden: int = 32, layers: int = 2, heads: int = 2):
    """A transformers config of `family` sized for tests, matching `tiny_tokenizer`'s ids."""
    from transformers import AutoConfig

    vocab = len(SPECIALS) + len(WORDS) + 2
    common = dict(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                  intermediate_size=hidden * 2, max_position_embeddings=128, pad_token_id=0)
    extra = {
        "distilbert": dict(dim=hidden, n_layers=layers, n_heads=heads, hidden_dim=hidden * 2),
        # RoBERTa-style position ids start at pad + 1: leave room for 128 positions after it
        "roberta": dict(max_position_embeddings=130), "xlm-roberta": dict(max_position_embeddings=130),
        "camembert": dict(max_position_embeddings=130),
        "albert": dict(embedding_size=hidden // 2), "electra": dict(embedding_size=hidden // 2),
        "deberta-v2": dict(relative_attention=True, pos_att_type=["p2c", "c2p"], position_biased_input=False,
                           max_relative_positions=-1, position_buckets=16, norm_rel_ebd="layer_norm",
                           share_att_key=True, type_vocab_size=0),
        "modernbert": dict(bos_token_id=2, eos_token_id=3, cls_token_id=2, sep_token_id=3, global_attn_every_n_layers=2,
                           local_attention=8),
    }.get(family, {})
    if family == "distilbert":
        common = {k: v for k, v in common.items() if k in ("vocab_size", "max_position_embeddings", "pad_token_id")}
    return AutoConfig.for_model(family, **{**common, **extra})


def tiny_teacher(folder: str | Path, hidden: int = 32, layers: int = 2, heads: int = 2, num_labels: int = 0,
                 seed: int = 0, family: str = "bert") -> Path:
    """A randomly initialised encoder of `family` (no task head unless num_labels) + tokenizer in `folder`."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tiny_tokenizer(folder / "tokenizer.json")
    config = tiny_config(family, hidden, layers, heads)
    torch.manual_seed(seed)
    if num_labels:
        config.num_labels = num_labels
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        model = AutoModel.from_config(config)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


def tiny_sentiment(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Synthetic (text, label) pairs whose label follows the polar words they hold."""
    import random

    rng = random.Random(seed)
    pos, neg = WORDS[:10], WORDS[10:20]
    filler = WORDS[20:]
    rows = []
    for _ in range(n):
        label = rng.choice(["negative", "positive"])
        words = [rng.choice(filler) for _ in range(rng.randint(1, 12))]
        for _ in range(rng.randint(1, 3)):
            words.insert(rng.randint(0, len(words)), rng.choice(pos if label == "positive" else neg))
        rows.append((" ".join(words), label))
    return rows


FILLER = [w for w in WORDS[20:] if w not in ("very", "really")]


def tiny_tagged(n: int, seed: int = 0) -> str:
    """Synthetic CoNLL-columns sentences (`word TAG` a line, a blank line between sentences): a positive word
    starts a POS entity, a negative one a NEG entity, and "very" / "really" after it continue it (I-); the
    filler is O."""
    import random

    rng = random.Random(seed)
    kinds = {"POS": WORDS[:10], "NEG": WORDS[10:20]}
    lines = []
    for _ in range(n):
        words: list[tuple[str, str]] = []
        for _ in range(rng.randint(1, 4)):
            words += [(rng.choice(FILLER), "O") for _ in range(rng.randint(0, 3))]
            kind = rng.choice(list(kinds))
            words += [(rng.choice(kinds[kind]), f"B-{kind}")]
            words += [(rng.choice(["very", "really"]), f"I-{kind}") for _ in range(rng.randint(0, 1))]
        lines += [f"{w} {t}" for w, t in words] + [""]
    return "\n".join(lines) + "\n"
