"""BERT: the reference layout (and the default every other adaptor departs from)."""

from edgekd.families.base import Family


class Bert(Family):
    names = ("bert",)
