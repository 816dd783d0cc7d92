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


def test_exporters_never_import_the_training_side():
    files = sorted((RUNTIME.parent / "exporters").glob("*.py"))
    assert files
    for path in files:
        assert "edgekd" not in imported_roots(path), f"exporters/{path.name} imports edgekd"


BLOCK_TORCH = """
import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'transformers', 'exporters', 'onnx'}:
            raise ImportError(f'{name} is not installed here (blocked by the test)')
        return None
sys.meta_path.insert(0, _Blocked())
from edgekd.cli import main
sys.argv = ['edgekd'] + sys.argv[1:]
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
    loaded = [m for m in ('torch', 'transformers', 'exporters', 'onnx') if m in sys.modules]
    print('LOADED', loaded)
    raise
"""


def test_bundle_commands_run_without_torch(bundle, tmp_path):
    """predict, inspect, calibrate and bench of a bundle alone: only the runtime's dependencies."""
    import subprocess
    import sys

    from tests.conftest import TEXTS

    data = tmp_path / "dev.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\t{'positive' if i % 2 else 'negative'}\n"
                                                  for i, t in enumerate(TEXTS[:12])))
    work = tmp_path / "b"
    import shutil

    shutil.copytree(bundle, work)
    commands = [
        ["predict", str(work), "a superb film", "--json"],
        ["inspect", str(work)],
        ["calibrate", str(work), "--data", str(data), "--max-drop", "5"],
        ["bench", str(work), "--data", str(data), "--out", str(tmp_path / "r"), "--latency-texts", "3",
         "--no-js", "--speeds", "0,0.5"],
    ]
    for args in commands:
        out = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *args], capture_output=True, text=True,
                             cwd=tmp_path)
        assert out.returncode == 0, (args[0], out.stderr[-2000:])
        assert "LOADED []" in out.stdout, (args[0], out.stdout[-500:])
