"""GLMD vocabulary compression: keep the frequent tokens, map the rest to their nearest kept token.

1. Count token frequencies over the training and unlabelled text with the
   teacher's tokenizer.
2. Keep the top `keep` tokens (a fraction <= 1 or a count > 1) plus every
   special token. Ties among equally (often: never) seen tokens go to whole
   words before '##' pieces, then to lower ids.
3. Map each dropped token to the kept token with the largest inner product
   (or cosine) in the teacher's input-embedding matrix.
4. Slice the student's embedding rows; the remap (original id -> kept row)
   lives in the model as a buffer and in the bundle's embed graph, so the
   tokenizer is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from runtime.tokenize import TextEncoder


@dataclass
class VocabMap:
    kept: np.ndarray  # (K,) original ids kept, ascending
    remap: np.ndarray  # (V,) original id -> row in the kept table

    @property
    def original_size(self) -> int:
        return len(self.remap)

    @property
    def kept_size(self) -> int:
        return len(self.kept)


def token_counts(encoder: TextEncoder, texts: list[str]) -> np.ndarray:
    """(V,) occurrences of each token id in `texts` (special tokens included)."""
    counts = np.zeros(encoder.vocab_size, dtype=np.int64)
    for start in range(0, len(texts), 4096):
        for ids in encoder.token_ids(texts[start : start + 4096]):
            np.add.at(counts, ids, 1)
    return counts


CONVENTIONAL_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>", "<pad>", "<unk>", "<mask>")
MASK_TOKENS = ("[MASK]", "<mask>")  # BERT's and RoBERTa's spelling of the mask token


def first_token(tokenizer, names) -> str | None:
    """The first of `names` the tokenizer knows (e.g. its mask token out of MASK_TOKENS), or None."""
    return next((name for name in names if tokenizer.token_to_id(name) is not None), None)


def special_ids(encoder: TextEncoder) -> list[int]:
    """Ids of the tokenizer's special tokens: those it declares, plus the conventional
    BERT/RoBERTa names when present ([PAD], [UNK], [CLS], [SEP], [MASK], <s>, ...)."""
    decoder = encoder.tokenizer.get_added_tokens_decoder()
    ids = {i for i, token in decoder.items() if getattr(token, "special", True)}
    ids |= {i for i in map(encoder.tokenizer.token_to_id, CONVENTIONAL_SPECIALS) if i is not None}
    ids.add(encoder.pad_id)
    return sorted(ids)


def keep_count(vocab_size: int, keep: float | None = None, size: int | None = None) -> int:
    """How many tokens to keep: a fraction `keep` in (0, 1] of the vocabulary, or `size` tokens (exactly one)."""
    if (keep is None) == (size is None):
        raise ValueError("give exactly one of vocab keep (a fraction) or vocab size (a count)")
    if keep is not None:
        if not 0 < keep <= 1:
            raise ValueError(f"vocab keep is a fraction in (0, 1], got {keep}; for a count of tokens use vocab size")
        return min(vocab_size, round(keep * vocab_size))
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"vocab size is a whole number of tokens >= 1, got {size!r}")
    return min(vocab_size, size)


def choose_kept(counts: np.ndarray, count: int, specials: list[int], pieces: np.ndarray | None = None) -> np.ndarray:
    """Original ids to keep: the specials, then the most frequent tokens, `count` in all (at least the specials).

    `pieces` (V,) bool marks '##' continuation pieces, which lose ties to whole words.
    """
    vocab = len(counts)
    total = max(count, len(specials))
    pieces = np.zeros(vocab, dtype=bool) if pieces is None else pieces
    order = np.lexsort((np.arange(vocab), pieces, -counts))  # last key sorts first: count desc, words, id
    chosen = list(dict.fromkeys(list(specials) + [int(i) for i in order]))[:total]
    return np.array(sorted(chosen), dtype=np.int64)


def nearest_kept(embedding: torch.Tensor, kept: np.ndarray, metric: str = "dot", chunk: int = 4096) -> np.ndarray:
    """(V,) remap: kept ids to their own row, dropped ids to the kept row of largest dot/cosine."""
    if metric not in ("dot", "cosine"):
        raise ValueError(f"unknown metric {metric!r}; use dot or cosine")
    emb = embedding.detach().float()
    if metric == "cosine":
        emb = torch.nn.functional.normalize(emb, dim=-1)
    kept_t = torch.from_numpy(kept)
    table = emb[kept_t]  # (K,H)
    remap = np.empty(len(emb), dtype=np.int64)
    for start in range(0, len(emb), chunk):
        scores = emb[start : start + chunk] @ table.T  # (chunk,K)
        remap[start : start + chunk] = scores.argmax(-1).numpy()
    remap[kept] = np.arange(len(kept))
    return remap


def build_vocab_map(encoder: TextEncoder, texts: list[str], embedding: torch.Tensor, keep: float | None = None,
                    size: int | None = None, metric: str = "dot") -> VocabMap:
    """The one compression path (distill and export both call it): counts over `texts`, the top
    `keep` fraction or `size` tokens plus the specials kept, the rest mapped to their nearest kept
    token in `embedding` (the teacher's input embeddings)."""
    counts = token_counts(encoder, texts)
    vocab = encoder.tokenizer.get_vocab(with_added_tokens=True)
    pieces = np.zeros(encoder.vocab_size, dtype=bool)
    for token, i in vocab.items():
        if token.startswith("##") and i < len(pieces):
            pieces[i] = True
    kept = choose_kept(counts, keep_count(encoder.vocab_size, keep, size), special_ids(encoder), pieces)
    if embedding.shape[0] != encoder.vocab_size:
        raise ValueError(f"embedding has {embedding.shape[0]} rows but the tokenizer {encoder.vocab_size} ids")
    return VocabMap(kept, nearest_kept(embedding, kept, metric))


def remapped_share(encoder: TextEncoder, texts: list[str], vmap: VocabMap) -> float:
    """Share of the tokens in `texts` that are not kept (and so get remapped)."""
    counts = token_counts(encoder, texts)
    kept = np.zeros(len(counts), dtype=bool)
    kept[vmap.kept] = True
    return float(counts[~kept].sum() / max(1, counts.sum()))


def compress_student(student, vmap: VocabMap, rows: torch.Tensor | None = None):
    """A copy of `student` whose embedding table holds only the kept rows, with the remap inside.

    `rows` (K,H) replaces the sliced rows (e.g. the teacher's, at init)."""
    import dataclasses

    cfg = student.config
    if cfg.original_vocab_size:
        raise ValueError("the student's vocabulary is already compressed")
    if cfg.vocab_size != vmap.original_size:
        raise ValueError(f"the student has {cfg.vocab_size} tokens but the map was built for {vmap.original_size}")
    new_cfg = dataclasses.replace(cfg, vocab_size=vmap.kept_size, original_vocab_size=vmap.original_size)
    new = type(student)(new_cfg)
    state = {k: v for k, v in student.state_dict().items()}
    if rows is None:
        rows = state["embeddings.word.weight"][torch.from_numpy(vmap.kept)]
    state["embeddings.word.weight"] = rows
    state["embeddings.remap"] = torch.from_numpy(vmap.remap)
    new.load_state_dict(state)
    return new.to(next(student.parameters()).device).train(student.training)
