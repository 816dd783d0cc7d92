"""Text -> padded token-id arrays with the bundle's own tokenizer (HF `tokenizers`).

An item is a text (`str`) or a pair `(text, text_pair)`: a pair is encoded by the tokenizer's own pair
template (`[CLS] a [SEP] b [SEP]` for BERT, `<s> a </s></s> b </s>` for RoBERTa), truncated longest-first
to max_length as transformers does, with the template's segment ids (`token_type_ids`)."""

from __future__ import annotations

import os
from functools import cached_property

import numpy as np
from tokenizers import Tokenizer

from runtime.errors import BundleError, InputError


# Characters per token taken before a long text is cut (and checked to still fill max_length tokens).
CHARS_PER_TOKEN = 20


def pad_to_widest(arrays: list[np.ndarray], axis: int = 1, fill=0) -> list[np.ndarray]:
    """`arrays` padded with `fill` along their token `axis` to the widest of them (a batch is as wide as its
    longest text): the per-token outputs of several batches, or rows of several widths, made stackable."""
    width = max(a.shape[axis] for a in arrays)

    def pad(a: np.ndarray) -> np.ndarray:
        widths = [(0, 0)] * a.ndim
        widths[axis] = (0, width - a.shape[axis])
        return np.pad(a, widths, constant_values=fill)

    return [pad(a) for a in arrays]


class TextEncoder:
    """Wraps a `tokenizers.Tokenizer`: truncation to `max_length`, right padding by us.

    The training side uses this same class, so ids seen in training and at run
    time come from one code path.
    """

    def __init__(self, tokenizer: Tokenizer, max_length: int):
        if max_length < 2:
            raise InputError(f"max_length must be at least 2, got {max_length}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.pad_id = self._pad_id()

    @classmethod
    def from_file(cls, path: str | os.PathLike, max_length: int) -> TextEncoder:
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise BundleError(f"cannot read tokenizer {path}: {exc}") from exc
        return cls(tokenizer, max_length)

    def _pad_id(self) -> int:
        for token in ("[PAD]", "<pad>", "<PAD>"):
            token_id = self.tokenizer.token_to_id(token)
            if token_id is not None:
                return token_id
        return 0

    @cached_property
    def special_ids(self) -> tuple[int, ...]:
        """The ids of the tokenizer's special tokens: those it declares special, those its templates add
        ([CLS], [SEP], <s>, ...: found by encoding a probe text and pair) and the padding id; not the unknown
        token, which stands for a word. No word, no tag. Found once per encoder (the rule reads them per batch)."""
        ids = {i for i, token in self.tokenizer.get_added_tokens_decoder().items() if token.special}
        for probe in (self.tokenizer.encode("a"), self.tokenizer.encode("a", "b")):
            ids |= {i for i, special in zip(probe.ids, probe.special_tokens_mask) if special}
        unknown = getattr(self.tokenizer.model, "unk_token", None)  # [UNK] stands for a word: it is one
        return tuple(sorted((ids | {self.pad_id}) - {self.tokenizer.token_to_id(unknown) if unknown else None}))

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def tokens(self, items: list) -> tuple[list[list[int]], list[list[int]]]:
        """Unpadded (ids, token_type_ids) per item (special tokens added, truncated). A very long text is cut
        first (a 12 MB text no longer takes seconds); the ids are the same as without the cut."""
        cut = [self._short(i) if isinstance(i, str) else (self._short(i[0]), self._short(i[1])) for i in items]
        encodings = self.tokenizer.encode_batch(cut)
        return [e.ids for e in encodings], [e.type_ids for e in encodings]

    def _short(self, text: str) -> str:
        """`text`, or for a very long one its head up to a word boundary, when that head alone still fills
        max_length tokens: the tokens of earlier words never depend on later ones, so the truncated encoding
        (and longest-first truncation of a pair) is unchanged. Otherwise (words the normalizer strips, or
        one [UNK] for a very long word) the whole text."""
        limit = self.max_length * CHARS_PER_TOKEN
        if len(text) <= limit:
            return text
        end = text.find(" ", limit)
        if end < 0:
            return text
        head = text[:end]
        filled = len(self.tokenizer.encode(head, add_special_tokens=False).ids) >= self.max_length
        return head if filled else text

    def encodings(self, texts: list[str]) -> list:
        """The `tokenizers.Encoding` of each single text (offsets into the text as given, the words), encoded as
        `tokens` encodes it (the ids are the same)."""
        return self.tokenizer.encode_batch([self._short(t) for t in texts])

    def token_ids(self, items: list) -> list[list[int]]:
        """Unpadded ids per item (special tokens added, truncated)."""
        return self.tokens(items)[0]

    def pad(self, ids: list[list[int]], types: list[list[int]] | None = None):
        """Right-pad to the longest row: (input_ids (B,T) int64, mask (B,T) int64), and token_type_ids (B,T)
        int64 (0 on padding) when `types` are given."""
        width = max((len(row) for row in ids), default=1) or 1
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        if types is None:
            return input_ids, mask
        token_type_ids = np.zeros((len(ids), width), dtype=np.int64)
        for i, row in enumerate(types):
            token_type_ids[i, : len(row)] = row
        return input_ids, mask, token_type_ids

    def __call__(self, items: list) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, mask) of single texts; `pairs` for items that are pairs."""
        return self.pad(self.token_ids(items))

    def pairs(self, items: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(input_ids, mask, token_type_ids) of items (pairs, or texts: segment 0 throughout)."""
        return self.pad(*self.tokens(items))
