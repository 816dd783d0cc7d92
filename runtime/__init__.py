"""edgekd runtime: load a bundle and classify text with early exit.

Imports only numpy, onnxruntime, tokenizers and the standard library, so apps
can embed it without torch:

    import runtime
    model = runtime.load("bundle/", device="cpu")
    for p in model.classify(["a gripping film", "dull"], speed=0.3):
        print(p.label, p.exit_layer, p.uncertainty)
"""

from __future__ import annotations

from runtime.errors import BundleError, DeviceError, EdgeKDError, InputError, InputTypeError
from runtime.manifest import SCHEMA_VERSION, Manifest, read_manifest
from runtime.exits import normalized_entropy
from runtime.model import EdgeModel, Prediction, load

__all__ = [
    "SCHEMA_VERSION",
    "BundleError",
    "DeviceError",
    "EdgeKDError",
    "EdgeModel",
    "InputError",
    "InputTypeError",
    "Manifest",
    "Prediction",
    "load",
    "normalized_entropy",
    "read_manifest",
]
