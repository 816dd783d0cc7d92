"""model.onnx with `speed` given a default inside the graph: what transformers.js and Optimum run unchanged.

ONNX lets a graph input carry an initializer of the same name. onnxruntime then treats it as an *overridable
initializer*: the input leaves `get_inputs()` (so tools that feed every listed input feed only the tokenizer's
outputs) and can still be fed by name (Python's onnxruntime honours the feed; onnxruntime-node and -web 1.30
accept it and run the default). `edgekd pack --target hf` writes this form under onnx/; the bundle's own
model.onnx keeps `speed` a required input.
"""

from __future__ import annotations

import os
from pathlib import Path

SPEED = "speed"


def with_default_speed(src: str | os.PathLike, dst: str | os.PathLike, speed: float) -> Path:
    """Write `src` (a compiled model.onnx) to `dst` with an initializer `speed` = `speed` (float32 scalar) beside
    the input of that name; everything else is unchanged."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    if not any(i.name == SPEED for i in graph.input):
        raise ValueError(f"{src} has no input {SPEED!r}; it is not a compiled edgekd graph")
    kept = [t for t in graph.initializer if t.name != SPEED]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    graph.initializer.append(numpy_helper.from_array(np.array(speed, dtype=np.float32), SPEED))
    model.ir_version = max(model.ir_version, 4)  # an input with an initializer: IR 4 and later
    onnx.save(model, str(dst))
    return Path(dst)
