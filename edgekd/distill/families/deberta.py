"""DeBERTa-v2 / v3: disentangled attention (content and relative-position terms).

Its layers have no BERT-shaped counterpart, so the student starts at random (or from
--student-init) and learns from the content queries, keys and values of the last layer."""

from edgekd.distill.families.base import Embeddings, Family, QKVCapture


class Deberta(Family):
    names = ("deberta-v2",)
    copies_layers = False
    why_not = ("DeBERTa's attention adds relative-position terms (c2p, p2c) that a BERT-shaped student layer "
               "cannot hold")

    def qkv_modules(self, layer):
        attention = layer.attention.self
        return attention.query_proj, attention.key_proj, attention.value_proj

    def capture(self, model, layer: int = -1):
        # query_proj / key_proj also project the relative-position embeddings after the tokens: keep the first call
        return QKVCapture(self.qkv_modules(self.layers(model)[layer]), first=True)

    def embeddings(self, model):  # used only for the word table (PCA, vocabulary maps)
        e = model.base_model.embeddings
        return Embeddings(e.word_embeddings.weight, None, None, e.LayerNorm.weight, e.LayerNorm.bias)

    def projection(self, model):
        return getattr(model.base_model.embeddings, "embed_proj", None)
