"""Teacher families: one small adaptor per file. To add a family, write a `Family` subclass
in a new file, list it in FAMILIES, and its name to `edgekd.testing.fixtures.TINY_FAMILIES` (with any config it
needs in `tiny_config`)
(the family tests then cover it)."""

from __future__ import annotations

from edgekd.distill.families.albert import Albert
from edgekd.distill.families.base import LAYER_PARTS, Embeddings, Family, QKVCapture, TeacherError
from edgekd.distill.families.bert import Bert
from edgekd.distill.families.deberta import Deberta
from edgekd.distill.families.distilbert import DistilBert
from edgekd.distill.families.electra import Electra
from edgekd.distill.families.modernbert import ModernBert
from edgekd.distill.families.roberta import Roberta

FAMILIES: tuple[Family, ...] = (Bert(), Roberta(), Electra(), DistilBert(), Albert(), Deberta(), ModernBert())
SUPPORTED = tuple(name for family in FAMILIES for name in family.names)
LAYER_COPYING = tuple(name for family in FAMILIES if family.copies_layers for name in family.names)


def family_of(config) -> Family:
    """The adaptor for a Hugging Face config (TeacherError when edgekd has none)."""
    for family in FAMILIES:
        if config.model_type in family.names:
            return family
    raise TeacherError(f"teacher family {config.model_type!r} is not supported; edgekd distils from "
                       f"{', '.join(SUPPORTED)} encoders")


__all__ = ["FAMILIES", "LAYER_COPYING", "LAYER_PARTS", "SUPPORTED", "Embeddings", "Family", "QKVCapture",
           "TeacherError", "family_of"]
