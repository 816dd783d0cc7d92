"""edgekd exporters: torch modules -> bundle folders the runtime reads.

Imports torch, onnx, onnxruntime and `runtime`, never the training side.
"""

from __future__ import annotations

from exporters.bundle import (
    ExportError,
    ExportResult,
    export_classifier,
    export_full_graph,
    export_student,
)
from exporters.validate import ExportValidationError
from runtime.manifest import bundle_size

__all__ = ["ExportError", "ExportResult", "ExportValidationError", "bundle_size", "export_classifier",
           "export_full_graph", "export_student"]
