"""DistilBERT: BERT's post-LN layers under other names; no segment embeddings."""

from edgekd.distill.families.base import ACTIVATIONS, Embeddings, Family


class DistilBert(Family):
    names = ("distilbert",)

    def ffn_size(self, config) -> int:
        return config.hidden_dim

    def layer_norm_eps(self, config) -> float:
        return 1e-12  # fixed in transformers' DistilBERT

    def activation(self, config):
        return ACTIVATIONS.get(str(config.activation))

    def layers(self, model):
        return list(model.base_model.transformer.layer)

    def qkv_modules(self, layer):
        return layer.attention.q_lin, layer.attention.k_lin, layer.attention.v_lin

    def layer_parts(self, layer):
        a = layer.attention
        return {"query": a.q_lin, "key": a.k_lin, "value": a.v_lin, "output": a.out_lin,
                "attention_norm": layer.sa_layer_norm, "ffn_in": layer.ffn.lin1, "ffn_out": layer.ffn.lin2,
                "ffn_norm": layer.output_layer_norm}

    def embeddings(self, model):
        e = model.base_model.embeddings
        return Embeddings(e.word_embeddings.weight, e.position_embeddings.weight, None, e.LayerNorm.weight,
                          e.LayerNorm.bias)
