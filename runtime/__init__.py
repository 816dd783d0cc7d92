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

# The rest loads on first use (PEP 562), so `import runtime.errors` or `runtime.exits` (the CLI's help, the config)
# does not pay for onnxruntime.
_LAZY = {"SCHEMA_VERSION": "runtime.manifest", "Manifest": "runtime.manifest", "read_manifest": "runtime.manifest",
         "normalized_entropy": "runtime.exits", "EdgeModel": "runtime.model", "Prediction": "runtime.model",
         "load": "runtime.model"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")


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
