"""Tiny, offline stand-ins for tests and demos: a BERT teacher and a WordPiece tokenizer built from config."""

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


def tiny_teacher(folder: str | Path, hidden: int = 32, layers: int = 2, heads: int = 2, num_labels: int = 0,
                 seed: int = 0) -> Path:
    """A randomly initialised BertModel (no task head unless num_labels) + tokenizer in `folder`."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tiny_tokenizer(folder / "tokenizer.json")
    config = BertConfig(vocab_size=len(SPECIALS) + len(WORDS) + 2, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=hidden * 2, max_position_embeddings=128)
    torch.manual_seed(seed)
    if num_labels:
        config.num_labels = num_labels
        model = BertForSequenceClassification(config)
    else:
        model = BertModel(config)
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
