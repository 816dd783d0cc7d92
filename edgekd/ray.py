"""`import edgekd.ray; edgekd.ray.classify_dataset(...)`: the public name of edgekd.apps.ray."""

from edgekd.apps.ray import classify_dataset

__all__ = ["classify_dataset"]
