"""ModernBERT: pre-LN layers, rotary positions, alternating local / global attention, fused Wqkv.

The student cannot copy these layers; the attention-relation objective reads the last
layer's queries and keys after the rotary transform (what its attention really compares)."""

from __future__ import annotations

from edgekd.distill.families.base import Family, QKVCapture


class _RotaryCapture(QKVCapture):
    """Splits the fused Wqkv output and applies the layer's rotary embedding to q and k."""

    def __init__(self, attention):
        self.captured = {}
        self.head_dim = attention.head_dim
        attention.Wqkv.register_forward_hook(self._qkv)
        attention.register_forward_pre_hook(self._positions, with_kwargs=True)

    def _positions(self, _module, args, kwargs):
        self.captured["rotary"] = kwargs.get("position_embeddings", args[1] if len(args) > 1 else None)

    def _qkv(self, _module, _inputs, output):
        self.captured["qkv"] = output

    def get(self):
        from transformers.models.modernbert.modeling_modernbert import apply_rotary_pos_emb

        qkv, rotary = self.captured.get("qkv"), self.captured.get("rotary")
        if qkv is None or rotary is None:
            return None
        batch, length = qkv.shape[:2]
        q, k, v = qkv.view(batch, length, 3, -1, self.head_dim).unbind(2)  # each (B,T,N,D)
        q, k = apply_rotary_pos_emb(q.transpose(1, 2), k.transpose(1, 2), *rotary, unsqueeze_dim=1)
        return q.transpose(1, 2).reshape(batch, length, -1), k.transpose(1, 2).reshape(batch, length, -1), \
            v.reshape(batch, length, -1)


class ModernBert(Family):
    names = ("modernbert",)
    copies_layers = False
    why_not = "ModernBERT's layers are pre-LN with rotary positions and gated local / global attention"

    def layers(self, model):
        return list(model.base_model.layers)

    def capture(self, model, layer: int = -1):
        return _RotaryCapture(self.layers(model)[layer].attn)

    def word_embeddings(self, model):
        return model.base_model.embeddings.tok_embeddings.weight

    def embeddings(self, model):
        raise NotImplementedError  # never copied (copies_layers is False)

    def projection(self, model):
        return None
