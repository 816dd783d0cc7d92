"""ALBERT: factorised embeddings with a projection, and layers shared across depth (in groups).

Every student layer copies the shared layer its teacher depth uses, so the student starts
as ALBERT unrolled; the copies then train apart."""

from edgekd.distill.families.base import Family, TeacherError


class Albert(Family):
    names = ("albert",)

    def layers(self, model):
        config = model.config
        if config.inner_group_num != 1:
            raise TeacherError(f"ALBERT with inner_group_num {config.inner_group_num} (several layers per group) "
                               "cannot be unrolled layer by layer; use --init random")
        groups = model.base_model.encoder.albert_layer_groups
        per_group = config.num_hidden_layers // config.num_hidden_groups
        return [groups[i // per_group].albert_layers[0] for i in range(config.num_hidden_layers)]

    def qkv_modules(self, layer):
        return layer.attention.query, layer.attention.key, layer.attention.value

    def layer_parts(self, layer):
        a = layer.attention
        return {"query": a.query, "key": a.key, "value": a.value, "output": a.dense, "attention_norm": a.LayerNorm,
                "ffn_in": layer.ffn, "ffn_out": layer.ffn_output, "ffn_norm": layer.full_layer_layer_norm}

    def projection(self, model):
        return model.base_model.encoder.embedding_hidden_mapping_in
