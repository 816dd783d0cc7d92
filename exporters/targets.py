"""Which mobile execution providers could run a bundle's graphs: onnxruntime's own checker, as data.

ONNX Runtime Mobile places each node on NNAPI (Android) or CoreML (iOS / macOS) when the provider takes
its operator and shapes, and on the CPU provider otherwise, with copies between partitions.
`onnxruntime.tools.check_onnx_model_mobile_usability` answers this but only logs; this module calls the
helpers it calls (`mobile_helpers.usability_checker`) on the graph optimized to the level the ORT-format
conversion uses (basic), and keeps what they find: per provider the nodes it takes, the partitions, the
unsupported operators, the nodes lost to dynamic shapes, and onnxruntime's verdict (YES / MAYBE / NO),
also with the shapes fixed where that would help.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

PROVIDERS = {"NNAPI": None, "CoreML NeuralNetwork": "coreml_supported_neuralnetwork_ops.md",
             "CoreML MLProgram": "coreml_supported_mlprogram_ops.md"}


def _partitions(info) -> dict:
    return {"nodes": info.num_nodes, "supported_nodes": info.num_supported_nodes, "partitions": info.num_partitions,
            "unsupported_ops": sorted(info.unsupported_ops),
            "nodes_unsupported_for_dynamic_shapes": info.nodes_unsupported_due_to_dynamic_input,
            "nodes_in_subgraphs": info.num_nodes_in_subgraphs, "verdict": info.suitability().name}


def provider_report(path: str | Path) -> dict:
    """onnxruntime's mobile-usability findings for one graph: {provider: {...}} and a recommendation."""
    from onnxruntime.tools.mobile_helpers import usability_checker as uc
    from onnxruntime.tools.onnx_model_utils import ModelProtoWithShapeInfo, optimize_model

    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        optimized = Path(tmp) / path.name
        optimize_model(path, optimized, use_external_initializers=True)  # what ORT-format conversion does first
        model = ModelProtoWithShapeInfo(optimized).model_with_shape_info
        dynamic_inputs, _ = uc.check_shapes(model.graph)
        out: dict = {"dynamic_inputs": [i.name for i in dynamic_inputs], "providers": {}}
        for name, config in PROVIDERS.items():
            check = (lambda m, fixed: uc.check_nnapi_partitions(m, fixed)) if config is None else \
                (lambda m, fixed, config=config: uc.check_coreml_partitions(m, fixed, config))
            found = _partitions(check(model, True))
            if found["verdict"] != "YES" and dynamic_inputs:  # what fixing the input shapes would give
                found["with_fixed_shapes"] = _partitions(check(model, False))
            out["providers"][name] = found
    verdicts = [p.get("with_fixed_shapes", p)["verdict"] for p in out["providers"].values()] + \
        [p["verdict"] for p in out["providers"].values()]
    usable = any(v != "NO" for v in verdicts)
    out["recommendation"] = ("compare NNAPI / CoreML with the CPU provider on the device" if usable
                             else "the CPU provider (XNNPACK where available): no mobile provider would take "
                                  "enough of this graph in few enough partitions")
    return out


def bundle_targets(bundle: str | Path, manifest) -> dict:
    """The report for model.onnx and one graph of each part kind (embed, a layer: the layers are alike)."""
    bundle = Path(bundle)
    picked, seen = [], set()
    for part in manifest.parts:
        key = part.kind if part.kind != "compiled" else part.file
        if key not in seen:
            seen.add(key)
            picked.append(part)
    return {"precision": manifest.precision,
            "graphs": {part.file: provider_report(bundle / part.file) for part in picked}}
