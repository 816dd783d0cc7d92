"""runtime/ never imports the training side or torch (checked on the source, every file)."""

from __future__ import annotations

import ast
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
ALLOWED_THIRD_PARTY = {"numpy", "onnxruntime", "tokenizers"}
BANNED = {"torch", "transformers", "edgekd", "exporters", "onnx"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_runtime_imports_only_numpy_onnxruntime_tokenizers():
    files = sorted(RUNTIME.glob("*.py"))
    assert files
    for path in files:
        bad = imported_roots(path) & BANNED
        assert not bad, f"{path.name} imports {bad}"
