"""BERT: the reference layout (and the default every other adaptor departs from)."""

from edgekd.distill.families.base import Family


class Bert(Family):
    names = ("bert",)
