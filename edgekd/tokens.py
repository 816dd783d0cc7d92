"""Token-classification data (issue 45): the files people have, read into sentences of words with a tag each,
and words aligned to the tokenizer's sub-tokens. Torch-free.

Formats:
- CoNLL columns: one token a line, the tag in the last column, a blank line between sentences, `-DOCSTART-`
  lines skipped (CoNLL-2003's `word POS chunk NER` and two-column `word tag` files alike);
- JSONL: one sentence an object with a token list (`tokens`) and a tag list (`ner_tags` or `tags`), tags as names
  or as ids (ids need the names: `--label-names`).
A `.conll` file, or a `.txt` file whose lines hold the same number (2-10) of whitespace-separated columns with
blank lines between sentences, is CoNLL (`is_conll`); prose, whose lines hold varying numbers of words, is not.

Alignment (`token_labels`): a sentence is the text its words make joined by spaces, tokenized as the runtime
tokenizes a user's text; a word's tag goes to its first sub-token, the others get IGNORE (left out of the loss
and of the answers); a sentence cut at max_length leaves its last word untagged.
"""

from __future__ import annotations

import json
import os
from bisect import bisect_right
from itertools import accumulate
from dataclasses import dataclass, field
from pathlib import Path

from edgekd.rows import DataError
from runtime.entities import split_tag, words_of

IGNORE = -100  # the label of a sub-token that is not a word's first, and of special tokens
TAG_KEYS = ("ner_tags", "tags")


@dataclass
class TokenDataset:
    """Sentences as word lists with one tag per word; `labels` the tag names in a fixed order (O first)."""

    words: list[list[str]]
    tags: list[list[str]]
    labels: list[str] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.words)


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def is_conll(path: str | os.PathLike) -> bool:
    """Whether `path` reads as CoNLL columns: a .conll file, or a .txt file whose first non-blank lines hold two
    or more whitespace-separated columns and which has a blank line between sentences."""
    path = Path(path)
    if path.suffix.lower() == ".conll":
        return True
    if path.suffix.lower() != ".txt":
        return False
    lines = _lines(path)[:2000]
    counts = [len(line.split()) for line in lines if line.strip() and not line.startswith("-DOCSTART-")]
    if not counts or not any(not line.strip() for line in lines):
        return False
    common = max(set(counts), key=counts.count)  # columns: the same count on (nearly) every line, unlike prose
    return 2 <= common <= 10 and counts.count(common) >= 0.95 * len(counts)


def _order(seen: list[str]) -> list[str]:
    """Tag names in a fixed order: O first, then by entity type, B before I."""
    def key(tag: str) -> tuple:
        return (tag != "O", tag[2:] if tag[1:2] == "-" else tag, tag[:1])
    return sorted(set(seen), key=key)


def read_conll(path: str | os.PathLike) -> TokenDataset:
    """Sentences of a CoNLL-columns file; a line with one column (a token without its tag) is refused naming
    its line number."""
    path = Path(path)
    words, tags, sentence, sentence_tags = [], [], [], []
    for number, line in enumerate(_lines(path), start=1):
        if line.startswith("-DOCSTART-"):
            continue
        if not line.strip():
            if sentence:
                words.append(sentence)
                tags.append(sentence_tags)
            sentence, sentence_tags = [], []
            continue
        columns = line.split()
        if len(columns) < 2:
            raise DataError(f"{path}: line {number} has one column ({line.strip()!r}); a CoNLL line holds a token "
                            "and its tag in the last column")
        sentence.append(columns[0])
        sentence_tags.append(columns[-1])
    if sentence:
        words.append(sentence)
        tags.append(sentence_tags)
    if not words:
        raise DataError(f"{path}: no sentence found")
    return TokenDataset(words, tags, _order([t for s in tags for t in s]), str(path))


def read_token_jsonl(path: str | os.PathLike, label_names: list[str] | None = None) -> TokenDataset:
    """Sentences of a JSONL file with `tokens` and `ner_tags` / `tags` per line (tags as ids need
    `label_names`)."""
    path = Path(path)
    words, tags = [], []
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
        key = next((k for k in TAG_KEYS if k in row), None)
        if not isinstance(row, dict) or "tokens" not in row or key is None:
            raise DataError(f"{path}: line {number} needs `tokens` and one of {', '.join(TAG_KEYS)}")
        tokens, these = row["tokens"], row[key]
        if not isinstance(tokens, list) or not isinstance(these, list) or len(tokens) != len(these):
            raise DataError(f"{path}: line {number} has {len(tokens)} tokens and {len(these)} tags; one tag a token")
        if any(isinstance(t, int) for t in these):
            if not label_names:
                raise DataError(f"{path}: line {number} gives tags as ids; name them with --label-names "
                                "(e.g. O,B-PER,I-PER,...)")
            if any(not isinstance(t, int) or not 0 <= t < len(label_names) for t in these):
                raise DataError(f"{path}: line {number} has a tag id outside 0..{len(label_names) - 1}")
            these = [label_names[t] for t in these]
        words.append([str(t) for t in tokens])
        tags.append([str(t) for t in these])
    if not words:
        raise DataError(f"{path}: no sentence found")
    labels = list(label_names) if label_names else _order([t for s in tags for t in s])
    return TokenDataset(words, tags, labels, str(path))


def read_tokens(path: str | os.PathLike, label_names: list[str] | None = None) -> TokenDataset:
    """A token-classification file of either format (CoNLL columns, or JSONL)."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".json"):
        return read_token_jsonl(path, label_names)
    if is_conll(path):
        return read_conll(path)
    raise DataError(f"{path}: not a token-classification file; give CoNLL columns (.conll, or .txt with a token "
                    "and its tag a line and blank lines between sentences) or JSONL with tokens and ner_tags")


def continuation(tag: str) -> str:
    """The tag of a later piece of a word the tokenizer splits (`U.S.` is U . S .): I-X inside an entity, O
    outside; a tag without a BIO prefix stays as it is."""
    prefix, kind = split_tag(tag)
    return "O" if prefix == "O" else f"I-{kind}" if len(tag) > 2 and tag[1] == "-" else tag


def token_labels(encoder, data: TokenDataset, labels: list[str]) -> tuple[list[str], list[list[int]]]:
    """(texts, one label id per token) of `data` for training: each sentence's words joined by spaces (the
    text a user would give) and tokenized as the runtime tokenizes it (`encoder`: a runtime.tokenize.
    TextEncoder), so training and answers read the same words (runtime.entities.words_of: the tokenizer's
    pre-tokenized words, so `films,` is two). A word's tag goes to its first sub-token, the later pieces of a
    file word split in two or more (`U.S.`) take `continuation`, every other token IGNORE; a sentence cut at
    max_length leaves its last word untagged (it may be cut)."""
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted({t for tags in data.tags for t in tags} - set(index))
    if unknown:
        raise DataError(f"tags {unknown} are not among the labels {labels}")
    texts = [" ".join(words) for words in data.words]
    out = []
    for words, tags, encoding in zip(data.words, data.tags, encoder.tokenizer.encode_batch(texts)):
        starts = list(accumulate((len(w) + 1 for w in words[:-1]), initial=0))  # each file word's first char
        row, previous = [IGNORE] * len(encoding.ids), None
        spans, first = words_of(encoding)
        for (start, _), position in zip(spans, first):
            word = bisect_right(starts, start) - 1
            row[position] = index[tags[word] if word != previous else continuation(tags[word])]
            previous = word
        if encoding.overflowing and first:
            row[first[-1]] = IGNORE
        out.append(row)
    return texts, out


def tag_matrix(rows: list[list[int]], width: int):
    """Token tag ids (token_labels' second answer) in one (N, width) int64 array, IGNORE beyond each row."""
    import numpy as np

    gold = np.full((len(rows), width), IGNORE, dtype=np.int64)
    for i, row in enumerate(rows):
        gold[i, : len(row)] = row[:width]
    return gold


def word_gold(encoder, texts: list[str], tags: list[list[str]], labels: list[str]) -> list[list[str]]:
    """Each sentence's gold tags on the words the runtime reads (`token_labels`' tags in word order): what a
    system's word tags are scored against. `texts` are the sentences as TextDataset holds them (words joined by
    spaces), `tags` their file words' tags."""
    _, rows = token_labels(encoder, TokenDataset([t.split(" ") for t in texts], tags), labels)
    return [[labels[i] for i in row if i >= 0] for row in rows]
