"""edgekd: distill BERT-family classifiers into compact early-exit students.

This package is the training side (torch, transformers). Importing it stays
light: heavy modules load inside the functions that need them.
"""

from __future__ import annotations

__version__ = "0.1.0"
