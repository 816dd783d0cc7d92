"""ELECTRA: BERT's layers; embeddings may be narrower than the hidden size, with a projection."""

from edgekd.distill.families.base import Family


class Electra(Family):
    names = ("electra",)

    def projection(self, model):
        return getattr(model.base_model, "embeddings_project", None)
