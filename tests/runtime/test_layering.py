"""The layers hold: runtime/ imports only the standard library, numpy, onnxruntime and tokenizers;
exporters/ never imports the training side; the torch side of edgekd is one folder, edgekd/distill/, and
every other module of edgekd imports without torch, transformers, onnx or exporters (reaching into
edgekd/distill/ only inside the functions that train or export); edgekd/apps/ (what runs a bundle for
users) imports the runtime, the standard library and its serving libraries, never torch, transformers,
exporters or the training modules. Checked on the source of every file, by importing every module with
torch blocked, and by running the commands with torch blocked."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtime"
APPS = ROOT / "edgekd" / "apps"
TORCH_SIDE = ROOT / "edgekd" / "distill"
# what a torch-free module of edgekd may not import at its top level (only inside a function that needs it)
HEAVY = {"torch", "transformers", "onnx", "exporters", "safetensors", "edgekd.distill"}
ALLOWED_THIRD_PARTY = {"numpy", "onnxruntime", "tokenizers"}
# edgekd/apps: its serving libraries; of edgekd itself only the apps and the torch-free file readers
APPS_THIRD_PARTY = ALLOWED_THIRD_PARTY | {"starlette", "uvicorn", "prometheus_client", "tqdm", "ray"}
APPS_EDGEKD = {"edgekd.apps", "edgekd.data", "edgekd.rows", "edgekd.present", "edgekd.guarantee"}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, inside functions too (absolute names)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def imported_roots(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)}


def third_party(roots: set[str], own: set[str]) -> set[str]:
    return {r for r in roots if r not in sys.stdlib_module_names and r not in own}


def test_runtime_imports_only_numpy_onnxruntime_tokenizers():
    files = sorted(RUNTIME.glob("*.py"))
    assert files
    for path in files:
        roots = imported_roots(path)
        assert not roots & {"edgekd", "exporters"}, f"runtime/{path.name} imports {roots & {'edgekd', 'exporters'}}"
        extra = third_party(roots, {"runtime"}) - ALLOWED_THIRD_PARTY
        assert not extra, f"runtime/{path.name} imports {extra}; the runtime may use only {ALLOWED_THIRD_PARTY}"


def test_apps_import_the_runtime_and_their_own_libraries_only():
    files = sorted(APPS.glob("*.py"))
    assert {p.name for p in files} >= {"serve.py", "demo.py", "ray.py", "predict_file.py", "batching.py"}
    for path in files:
        modules = imported_modules(path)
        extra = third_party({m.split(".")[0] for m in modules}, {"runtime", "edgekd"}) - APPS_THIRD_PARTY
        assert not extra, f"edgekd/apps/{path.name} imports {extra}"
        training = {m for m in modules if m.split(".")[0] == "edgekd" and m != "edgekd"
                    and not any(m == a or m.startswith(a + ".") for a in APPS_EDGEKD)}
        assert not training, f"edgekd/apps/{path.name} imports training modules {training}"
        assert "exporters" not in {m.split(".")[0] for m in modules}, f"edgekd/apps/{path.name} imports exporters"


def torch_free_modules() -> list[Path]:
    """Every module of edgekd outside its torch side (edgekd/distill/)."""
    return [p for p in sorted((ROOT / "edgekd").rglob("*.py")) if TORCH_SIDE not in p.parents]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path) -> set[str]:
    """Modules imported by the statements at the top of a file (not inside functions or classes)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_torch_side_is_one_folder():
    """Outside edgekd/distill/, no module of edgekd imports torch, transformers, onnx, exporters or the torch
    side at its top level; and edgekd/distill/ holds the modules that do."""
    files = torch_free_modules()
    assert {module_name(p) for p in files} >= {"edgekd.cli", "edgekd.config", "edgekd.data", "edgekd.metrics",
                                                 "edgekd.card", "edgekd.calibrate", "edgekd.pack",
                                                 "edgekd.run_folder", "edgekd.bench.run", "edgekd.apps.serve"}
    for path in files:
        heavy = {m for m in top_level_imports(path) if any(m == h or m.startswith(h + ".") for h in HEAVY)}
        assert not heavy, f"{path.relative_to(ROOT)} imports {heavy} at its top level: import it inside the " \
                          "function that trains or exports, or move the module into edgekd/distill/"
    torch_side = {module_name(p) for p in TORCH_SIDE.rglob("*.py")}
    assert torch_side >= {"edgekd.distill.model", "edgekd.distill.losses", "edgekd.distill.train",
                          "edgekd.distill.pipeline", "edgekd.distill.export", "edgekd.distill.stages.context",
                          "edgekd.distill.families.base"}


# the start of a script run in a subprocess: importing torch, transformers, exporters or onnx raises there
BLOCKER = """
import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'transformers', 'exporters', 'onnx'}:
            raise ImportError(f'{name} is not installed here (blocked by the test)')
        return None
sys.meta_path.insert(0, _Blocked())
"""

IMPORT_ALL = BLOCKER + """
import importlib
failed = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f'{name}: {type(exc).__name__}: {exc}')
print('FAILED', failed)
print('LOADED', [m for m in ('torch', 'transformers', 'exporters', 'onnx') if m in sys.modules])
"""


def test_every_torch_free_module_imports_without_torch():
    """Every module of edgekd outside edgekd/distill/ imports in a process where importing torch,
    transformers, onnx or exporters raises, and none of them gets loaded."""
    import subprocess

    names = [module_name(p) for p in torch_free_modules() if p.name != "__main__.py"]  # (that one runs the CLI)
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL, *names], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "FAILED []" in out.stdout, out.stdout[-3000:]
    assert "LOADED []" in out.stdout, out.stdout[-500:]


def test_exporters_never_import_the_training_side():
    files = sorted((RUNTIME.parent / "exporters").glob("*.py"))
    assert files
    for path in files:
        assert "edgekd" not in imported_roots(path), f"exporters/{path.name} imports edgekd"


BLOCK_TORCH = BLOCKER + """
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


@pytest.mark.slow
def test_bundle_commands_run_without_torch(bundle, tmp_path):
    """--help, predict, inspect, pack, calibrate and bench of a bundle alone: only the runtime's dependencies."""
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
        ["--help"],
        ["predict", "--help"],
        ["predict", str(work), "a superb film", "--json"],
        ["pack", str(work), "--target", "web", "--out", str(tmp_path / "web")],
        ["inspect", str(work)],
        ["calibrate", str(work), "--data", str(data), "--max-drop", "5"],
        ["bench", str(work), "--data", str(data), "--out", str(tmp_path / "r"), "--latency-texts", "3",
         "--no-js", "--speeds", "0,0.5"],
    ]
    texts = tmp_path / "texts.txt"
    texts.write_text("a superb film\nbad plot\n\n")
    commands.append(["predict", str(work), "--file", str(texts), "--out", str(tmp_path / "out.jsonl")])
    for args in commands:
        out = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *args], capture_output=True, text=True,
                             cwd=tmp_path)
        assert out.returncode == 0, (args[0], out.stderr[-2000:])
        assert "LOADED []" in out.stdout, (args[0], out.stdout[-500:])
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3


@pytest.mark.slow
def test_serve_runs_where_importing_torch_raises(bundle, tmp_path):
    """`edgekd serve` in a process whose import of torch, transformers, exporters or onnx raises: it serves."""
    import json
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    marker = tmp_path / "served"
    # the server dies of the signal uvicorn re-raises after its shutdown: the modules are reported from a
    # thread once the test has been answered (it touches `marker`)
    report = (f"import threading, time, os\ndef _report():\n    while not os.path.exists({str(marker)!r}):\n"
              "        time.sleep(0.05)\n    print('LOADED', [m for m in ('torch', 'transformers', 'exporters', "
              "'onnx') if m in sys.modules], flush=True)\nthreading.Thread(target=_report, daemon=True).start()\n")
    script = BLOCK_TORCH.replace("from edgekd.cli import main\n", report + "from edgekd.cli import main\n")
    proc = subprocess.Popen([sys.executable, "-c", script, "serve", str(bundle), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1][-2000:]
                assert time.time() < deadline, "serve did not become ready"
                time.sleep(0.2)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/classify", method="POST",
                                         data=json.dumps({"texts": ["a superb film"]}).encode(),
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert json.loads(r.read())["predictions"][0]["label"] in ("negative", "positive")
        marker.touch()
        time.sleep(0.5)
    finally:
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=30)
    assert "LOADED []" in stdout, (stdout[-500:], stderr[-2000:])


@pytest.mark.slow
def test_the_runtime_tests_pass_where_importing_torch_raises():
    """tests/runtime/ in a process whose import of torch, transformers, onnx or exporters raises
    (tests/runtime/conftest.py blocks them with EDGEKD_TEST_WITHOUT_TORCH=1)."""
    import os
    import subprocess

    if os.environ.get("EDGEKD_TEST_WITHOUT_TORCH") == "1":
        pytest.skip("this is the run without torch")
    env = {**os.environ, "EDGEKD_TEST_WITHOUT_TORCH": "1"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                          str(Path(__file__).parent)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and " failed" not in out.stdout
