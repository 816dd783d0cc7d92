"""Transfer sets for small labelled data: the text-KD augmentations of Tang et al. (2019) / TinyBERT.

From each labelled text, `factor` variants: every word is, with some probability, masked (the
tokenizer's mask token) or swapped for one of its nearest neighbours in the teacher's input
embedding space (whole-word tokens only, cosine); then, with probability `p_ngram`, a random
span of 1-5 words is kept. The teacher labels the variants with soft targets; the student
learns from them by distillation only (their gold label is unknown).

A pure function of (texts, factor, seed, neighbour table): the run folder caches it in `transfer/`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import torch

AUGMENT_BELOW = 20_000  # auto: augment labelled sets smaller than this
AUTO_ROWS = 40_000  # auto: aim at about this many transfer rows
AUTO_MAX_FACTOR = 10
WORD = re.compile(r"^[^\W\d_]+$")  # alphabetic whole words (no digits, no punctuation)


def auto_factor(rows: int) -> int:
    """The default factor for `rows` labelled rows: off at AUGMENT_BELOW rows and above."""
    if rows >= AUGMENT_BELOW or rows == 0:
        return 0
    return max(1, min(AUTO_MAX_FACTOR, -(-AUTO_ROWS // rows)))


@dataclass
class Augmenter:
    mask_token: str | None  # None: the tokenizer has no mask token; masking is skipped
    neighbours: dict[str, list[str]]  # word -> nearest whole-word tokens, closest first
    p_mask: float = 0.1
    p_swap: float = 0.1
    p_ngram: float = 0.25
    max_ngram: int = 5

    def variant(self, text: str, rng: random.Random) -> str:
        words = text.split()
        out = []
        for word in words:
            r = rng.random()
            if r < self.p_mask and self.mask_token is not None:
                out.append(self.mask_token)
            elif r < self.p_mask + self.p_swap and self.neighbours.get(word.lower()):
                out.append(rng.choice(self.neighbours[word.lower()]))
            else:
                out.append(word)
        if out and rng.random() < self.p_ngram:
            n = rng.randint(1, min(self.max_ngram, len(out)))
            start = rng.randint(0, len(out) - n)
            out = out[start : start + n]
        return " ".join(out)

    def transfer_set(self, texts: list, factor: int, seed: int, progress=None) -> list:
        """`factor` variants of every text, in text order (row i*factor + j is variant j of text i); a pair
        (text, text_pair) stays a pair, each side varied."""
        rng = random.Random(seed)
        out = []
        for text in texts:
            if isinstance(text, tuple):
                out += [(self.variant(text[0], rng), self.variant(text[1], rng)) for _ in range(factor)]
                continue
            out += [self.variant(text, rng) for _ in range(factor)]
            if progress is not None:
                progress(1)
        return out


def embedding_neighbours(words: set[str], vocab: dict[str, int], table: torch.Tensor, k: int = 5,
                         chunk: int = 1024) -> dict[str, list[str]]:
    """For each of `words` that is one whole-word token of `vocab`, its `k` nearest whole-word tokens by
    cosine similarity of the rows of `table` (the teacher's input embeddings)."""
    candidates = sorted(t for t in vocab if WORD.match(t) and vocab[t] < table.shape[0])
    if not candidates:
        return {}
    ids = torch.tensor([vocab[t] for t in candidates])
    with torch.no_grad():
        normed = torch.nn.functional.normalize(table.detach().float()[ids], dim=1)
    position = {t: i for i, t in enumerate(candidates)}
    queries = sorted(w for w in words if w in position)
    out: dict[str, list[str]] = {}
    for start in range(0, len(queries), chunk):
        batch = queries[start : start + chunk]
        rows = torch.tensor([position[w] for w in batch])
        scores = normed[rows] @ normed.T  # (b, candidates)
        scores[torch.arange(len(batch)), rows] = -2.0  # not itself
        top = scores.topk(min(k, len(candidates) - 1), dim=1).indices
        for word, row in zip(batch, top.tolist()):
            out[word] = [candidates[i] for i in row]
    return out
