"""Tags of words -> entities, the way the Hugging Face pipeline's aggregation_strategy="simple" gives them
(token classification, issue 45). Torch-free: every runtime and app groups tags here.

BIO as seqeval reads it in its default (lenient) mode: an entity starts at `B-X`, or at an `I-X` that does not
continue an entity of type X (after `O`, at the start, or after another type); it continues over `I-X`. `repair`
writes that reading back as tags (such an `I-X` becomes `B-X`), so what a model outputs and what is scored and
shown are the same entities.
"""

from __future__ import annotations

from dataclasses import dataclass


def split_tag(tag: str) -> tuple[str, str | None]:
    """("B" | "I" | "O", type or None); a tag without a BIO prefix is an entity type of its own ("I")."""
    if tag == "O":
        return "O", None
    if len(tag) > 2 and tag[1] == "-" and tag[0] in "BI":
        return tag[0], tag[2:]
    return "I", tag


def repair(tags: list[str]) -> list[str]:
    """The tags with every entity starting at a B- tag, as seqeval's lenient reading groups them."""
    out, open_type = [], None
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == "O":
            out.append("O")
            open_type = None
        elif prefix == "B" or kind != open_type:
            out.append(f"B-{kind}")
            open_type = kind
        else:
            out.append(f"I-{kind}")
    return out


@dataclass
class Entity:
    """One entity: its type, the mean of its words' scores, its text and character offsets (word ==
    text[start:end])."""

    entity_group: str
    score: float
    word: str
    start: int
    end: int

    def to_dict(self) -> dict:
        return {"entity_group": self.entity_group, "score": self.score, "word": self.word, "start": self.start,
                "end": self.end}


def entity_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """The entities of a tag sequence as (type, first word, last word + 1), read as `repair` reads them: what
    is scored (entity-level F1: a predicted entity counts when its type and both ends match a gold one)."""
    out: list[tuple[str, int, int]] = []
    for i, tag in enumerate(repair(tags)):
        prefix, kind = split_tag(tag)
        if prefix == "B":
            out.append((kind, i, i + 1))
        elif prefix == "I":
            out[-1] = (kind, out[-1][1], i + 1)
    return out


def entities(text: str, spans: list[tuple[int, int]], tags: list[str], scores: list[float]) -> list[Entity]:
    """The entities of one text from its words' character spans, tags and scores (the probability of each word's
    tag): consecutive words of one entity grouped after `repair`, score their mean."""
    if not len(spans) == len(tags) == len(scores):
        raise ValueError(f"{len(spans)} word spans, {len(tags)} tags and {len(scores)} scores: one each per word")
    out: list[Entity] = []
    group: list[int] = []
    kind = None

    def close() -> None:
        if group:
            start, end = spans[group[0]][0], spans[group[-1]][1]
            out.append(Entity(kind, float(sum(scores[i] for i in group) / len(group)), text[start:end], start, end))

    for i, tag in enumerate(repair(tags)):
        prefix, this = split_tag(tag)
        if prefix != "I":
            close()
            group, kind = ([i], this) if prefix == "B" else ([], None)
        else:
            group.append(i)
    close()
    return out


_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _ends_word(char: str) -> bool:
    """Whether `char` is not part of a word, as a BERT pre-tokenizer splits (and js/src/tokens.js wordSpans):
    whitespace, punctuation (Unicode P, every ASCII mark or symbol) and CJK characters stand apart."""
    import unicodedata

    code = ord(char)
    return char.isspace() or unicodedata.category(char).startswith("P") or \
        (33 <= code <= 126 and not char.isalnum()) or any(a <= code <= b for a, b in _CJK)


def words_of(encoding, text: str | None = None) -> tuple[list[tuple[int, int]], list[int]]:
    """A `tokenizers.Encoding`'s words: each word's character span in the original text (from its first
    sub-token's start to its last one's end) and the index of its first sub-token (where its tag is read).
    With the `text`, a last word that truncation cut (its first sub-token kept, so it is tagged) spans the
    whole word, as it does in the JavaScript runtime."""
    spans: list[tuple[int, int]] = []
    first: list[int] = []
    previous = None
    for index, (word, (start, end)) in enumerate(zip(encoding.word_ids, encoding.offsets)):
        if word is None:
            continue
        if word != previous:
            spans.append((start, end))
            first.append(index)
        else:
            spans[-1] = (spans[-1][0], end)
        previous = word
    if text is not None and spans:
        start, end = spans[-1]
        while end < len(text) and not _ends_word(text[end]):
            end += 1
        spans[-1] = (start, end)
    return spans, first


def tag_answers(encoder, texts: list[str], logits, labels: list[str], words: bool = False) -> list[dict]:
    """Each text's answer fields from its deciding head's tag logits (N, T, C) (runtime.model.Prediction):
    `entities` as dicts, and with `words` every word's {word, start, end, tag, score} (tags as `repair` reads
    them; score: the tag's probability at the word's first sub-token)."""
    import numpy as np

    from runtime.exits import softmax

    out = []
    for text, encoding, row in zip(texts, encoder.encodings(texts), np.asarray(logits)):
        spans, first = words_of(encoding, text)
        probs = softmax(row[first]) if first else np.zeros((0, len(labels)), np.float32)
        tags = repair([labels[int(i)] for i in probs.argmax(-1)])
        scores = [float(p) for p in probs.max(-1)] if first else []
        answer: dict = {"entities": [e.to_dict() for e in entities(text, spans, tags, scores)]}
        if words:
            answer["words"] = [{"word": text[a:b], "start": a, "end": b, "tag": t, "score": sc}
                               for (a, b), t, sc in zip(spans, tags, scores)]
        out.append(answer)
    return out
