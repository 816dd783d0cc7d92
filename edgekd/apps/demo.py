"""`edgekd demo BUNDLE`: a static page that runs the bundle in the browser (onnxruntime-web).

The server only hands out files: the page and the JS runtime from `js/`, the
browser builds of onnxruntime-web and the tokenizer from `js/node_modules`, and
the bundle's own files (the manifest and what it lists). No inference happens
on the server. Cross-origin isolation headers let onnxruntime-web use threads.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from runtime.errors import BundleError, EdgeKDError
from runtime.manifest import MANIFEST_FILE, read_manifest, verify_bundle

JS_DIR = Path(__file__).resolve().parents[2] / "js"
# node_modules folders the page may load (browser builds only)
SERVED_MODULES = ("onnxruntime-web/dist/", "@huggingface/tokenizers/dist/",
                  # the transformers.js variant (/hf, for a `pack --target hf` folder) and the onnxruntime-web it
                  # ships with (its wasm files)
                  "@huggingface/transformers/dist/", "@huggingface/transformers/node_modules/onnxruntime-web/dist/")
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".json": "application/json", ".onnx": "application/octet-stream", ".css": "text/css",
         ".html": "text/html; charset=utf-8", ".map": "application/json"}


class DemoHandler(SimpleHTTPRequestHandler):
    """Serves a fixed set of roots; anything else is 404."""

    def __init__(self, *args, js_dir: Path, bundle: Path, bundle_files: set[str], **kwargs):
        self.js_dir, self.bundle, self.bundle_files = js_dir, bundle, bundle_files
        super().__init__(*args, directory=str(js_dir), **kwargs)

    def translate_path(self, path: str) -> str:
        route = unquote(urlsplit(path).path)
        if route in ("/", "/index.html"):
            return str(self.js_dir / "demo" / "index.html")
        if route in ("/hf", "/hf.html"):  # the same folder in transformers.js, beside edgekd's runtime
            return str(self.js_dir / "demo" / "hf.html")
        if route.startswith("/bundle/"):
            name = route[len("/bundle/"):]
            return str(self.bundle / name) if name in self.bundle_files else ""
        for prefix, root in (("/demo/", self.js_dir / "demo"), ("/src/", self.js_dir / "src")):
            if route.startswith(prefix):
                return _inside(root, route[len(prefix):])
        if route.startswith("/node_modules/"):
            rest = route[len("/node_modules/"):]
            if any(rest.startswith(m) for m in SERVED_MODULES):
                return _inside(self.js_dir / "node_modules", rest)
        return ""

    def send_head(self):
        if not self.translate_path(self.path):
            self.send_error(HTTPStatus.NOT_FOUND, "not part of the demo")
            return None
        return super().send_head()

    def guess_type(self, path) -> str:
        return TYPES.get(Path(str(path)).suffix, "application/octet-stream")

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # quiet: one line per error only
        if args and str(args[1] if len(args) > 1 else "").startswith(("4", "5")):
            super().log_message(format, *args)


def _inside(root: Path, rest: str) -> str:
    path = (root / rest).resolve()
    return str(path) if path.is_file() and root.resolve() in path.parents else ""


def demo_server(bundle: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
                js_dir: str | os.PathLike | None = None) -> ThreadingHTTPServer:
    """A server for the demo page of `bundle` (not started: call serve_forever, or use a thread)."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    verify_bundle(bundle, manifest)
    if manifest.graph is None:
        raise BundleError(f"{bundle} has no compiled graph (model.onnx); re-export it with `edgekd export`")
    js = Path(js_dir) if js_dir else JS_DIR
    for need in ("demo/index.html", "src/browser.js", "node_modules/onnxruntime-web/dist",
                 "node_modules/@huggingface/tokenizers/dist"):
        if not (js / need).exists():
            raise EdgeKDError(f"{js / need} is missing: the demo serves the JS runtime from {js}; run `npm ci` in "
                              f"{js} (scripts/setup.sh does), or point --js-dir at a checkout's js/ folder")
    files = {MANIFEST_FILE, manifest.tokenizer} | {s.file for s in manifest.parts} | set(manifest.files or {})
    handler = partial(DemoHandler, js_dir=js, bundle=bundle, bundle_files=files)
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise EdgeKDError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from exc


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def drive_page(bundle: str | os.PathLike, script: str, job, timeout: float = 3600) -> subprocess.CompletedProcess:
    """Serve `bundle`'s demo page on a free port, run the Node driver `js/<script>` with the job `job(base)` made
    for the page's base URL (`http://127.0.0.1:PORT`) on its standard input (never the command line: a bench's
    texts pass the kernel's limit for one argument), and stop the server; the driver's finished process."""
    server = demo_server(bundle, port=0)
    serve_in_thread(server)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        return subprocess.run(["node", script, "-"], cwd=JS_DIR, capture_output=True, text=True,
                              input=json.dumps(job(base)), timeout=timeout)
    finally:
        server.shutdown()
        server.server_close()
