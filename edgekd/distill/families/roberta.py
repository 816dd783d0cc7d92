"""RoBERTa, XLM-RoBERTa, CamemBERT: BERT's layers; position ids start after the padding id."""

from edgekd.distill.families.base import Family


class Roberta(Family):
    names = ("roberta", "xlm-roberta", "camembert")

    def position_offset(self, config) -> int:
        # position ids run padding_idx + 1, padding_idx + 2, ... over real tokens (right padding)
        return config.pad_token_id + 1
