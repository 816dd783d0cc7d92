"""The transfer set of a small labelled set: the labelled texts augmented (masked words, embedding-neighbour swaps,
n-gram spans) plus any unlabelled text, soft-labelled by the teacher; seeded and cached in the run folder."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from edgekd.distill.augment import Augmenter, auto_factor, embedding_neighbours
from edgekd.distill.batches import TokenizedData
from edgekd.distill.evaluate import classifier_logits
from edgekd.distill.train import barrier
from edgekd.distill.vocab import MASK_TOKENS, first_token
from edgekd.run_folder import read_json, write_json
from runtime.exits import TOKENS
from runtime.files import atomic_folder

if TYPE_CHECKING:
    from edgekd.distill.stages.context import RunContext


@dataclass
class TransferSet:
    """The augmented transfer set: variants of the labelled texts, any --unlabeled text, and the teacher's
    logits on both (variants first)."""

    variants: list[str]
    unlabeled: list[str]
    logits: torch.Tensor

    @property
    def texts(self) -> list[str]:
        return self.variants + self.unlabeled


def augment_factor(ctx: RunContext) -> int:
    """data.augment, or for auto (-1) the factor the labelled set's size calls for (0 = off; always off for token
    classification, whose variants would need tags: prepare refuses data.augment > 0 there)."""
    if ctx.problem == TOKENS:
        return 0
    return auto_factor(len(ctx.train_set)) if ctx.cfg.data.augment < 0 else ctx.cfg.data.augment


def transfer_set(ctx: RunContext) -> TransferSet | None:
    """The transfer set, or None when augmentation is off.

    Built once (seeded, with a progress bar) and cached in transfer/; a resumed run reuses it unchanged."""
    factor = augment_factor(ctx)
    if factor == 0:
        return None
    if ctx.cache.get("transfer") is not None:
        return ctx.cache["transfer"]
    folder = ctx.run.transfer
    extra = ctx.unlabeled_set.texts if ctx.cfg.data.unlabeled else []
    meta = {"factor": factor, "seed": ctx.cfg.seed, "labelled_rows": len(ctx.train_set),
            "labelled_sha256": hashlib.sha256("\n".join(t if isinstance(t, str) else "\t".join(t)
                                                        for t in ctx.train_set.texts).encode()).hexdigest(),
            "unlabeled_rows": len(extra)}
    variants_file, logits_file, meta_file = ctx.run.transfer_files(folder)
    if read_json(meta_file, None) == meta and logits_file.is_file():
        variants = [v if isinstance(v, str) else tuple(v) for v in read_json(variants_file, [])]  # pairs
        logits = torch.load(logits_file, map_location="cpu", weights_only=True)
        ctx.log(f"transfer set: {len(variants)} variants ({factor}x) + {len(extra)} unlabelled rows, "
                f"reused from {folder}")
    else:
        ctx.log(f"transfer set: {factor}x the {len(ctx.train_set)} labelled rows (augmentation; data.augment "
                f"{ctx.cfg.data.augment}{' = auto' if ctx.cfg.data.augment < 0 else ''}, 0 turns it off)")
        teacher = ctx.teacher()
        vocab = ctx.encoder.tokenizer.get_vocab()
        words = {w.lower() for text in ctx.train_set.texts
                 for side in ((text,) if isinstance(text, str) else text) for w in side.split()}
        augmenter = Augmenter(first_token(ctx.encoder.tokenizer, MASK_TOKENS),
                              embedding_neighbours(words, vocab, teacher.word_embeddings))
        with tqdm(total=len(ctx.train_set), desc="transfer set", unit="text", disable=ctx.rank != 0) as bar:
            variants = augmenter.transfer_set(ctx.train_set.texts, factor, ctx.cfg.seed, bar.update)
        ctx.log(f"teacher logits on {len(variants) + len(extra)} transfer rows")
        data = TokenizedData(ctx.encoder, variants + extra)
        logits = classifier_logits(lambda i, m, t: teacher(i, m, t).logits, data, ctx.device,
                                   desc="teacher logits (transfer set)").cpu()
        if ctx.rank == 0:
            with atomic_folder(folder) as tmp:
                variants_file, logits_file, meta_file = ctx.run.transfer_files(tmp)
                write_json(variants_file, variants)
                torch.save(logits, logits_file)
                write_json(meta_file, meta)
        barrier()
    ctx.cache["transfer"] = TransferSet(variants, extra, logits)
    return ctx.cache["transfer"]


def unlabeled_data(ctx: RunContext) -> TokenizedData:
    """Text for the stages that need no labels (attention, branches): --unlabeled (or the train texts) + the
    transfer variants when the run has a transfer set."""
    transfer = transfer_set(ctx)
    if transfer is None:
        return ctx.unlabeled
    return TokenizedData(ctx.encoder, ctx.unlabeled_set.texts + transfer.variants)
