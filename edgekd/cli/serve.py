"""`edgekd serve` (HTTP, edgekd.apps.serve) and `edgekd demo` (a page that runs the bundle in the browser)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.cli.app import app, err, friendly


@app.command()
@friendly
def serve(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    host: Annotated[str, typer.Option(
        help="Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes (each loads the bundle once).")] = 1,
    speed: Annotated[Optional[float], typer.Option(
        help="Speed when a request gives none (default: the bundle's).")] = None,
    engine: Annotated[str, typer.Option(help="graph | staged | auto.")] = "auto",
    max_batch: Annotated[int, typer.Option(help="Texts run together across requests.")] = 32,
    max_queue: Annotated[int, typer.Option(help="Texts that may wait; beyond, requests get 503 + Retry-After.")] = 1024,
    max_texts: Annotated[int, typer.Option(help="Texts in one request.")] = 256,
    max_chars: Annotated[int, typer.Option(help="Characters in one text.")] = 10_000,
    threads: Annotated[Optional[int], typer.Option(
        help="onnxruntime threads per worker (default: one per core).")] = None,
    api_key_file: Annotated[Optional[Path], typer.Option(
        help="A file holding the API key (surrounding whitespace stripped; or set EDGEKD_API_KEY): every endpoint "
             "but /healthz and /readyz then needs 'Authorization: Bearer <key>'.")] = None,
    ssl_certfile: Annotated[Optional[Path], typer.Option(help="Serve HTTPS with this certificate (PEM).")] = None,
    ssl_keyfile: Annotated[Optional[Path], typer.Option(help="The certificate's private key (PEM).")] = None,
    shadow: Annotated[float, typer.Option(
        help="Check this share of answered texts (e.g. 0.02) at full depth, after answering and off the request "
             "path; when the disagreement bound breaks the promised budget, serve one speed grid step slower, "
             "and return when it recovers (Prometheus: edgekd_shadow_*, edgekd_serving_speed).")] = 0.0,
    shadow_budget: Annotated[Optional[float], typer.Option(
        help="With --shadow: the share of texts allowed to disagree with full depth [default: the bundle's "
             "calibrated guarantee, else 0.02].")] = None,
) -> None:
    """Serve the bundle over HTTP: POST /v1/classify, GET /v1/model, /healthz, /readyz, /metrics.
    Requests that arrive while the model is busy are batched together; SIGTERM drains and exits."""
    from edgekd.apps.serve import Limits, serve as run_server
    from runtime.errors import InputError

    for name, value in (("max-batch", max_batch), ("max-queue", max_queue), ("max-texts", max_texts),
                        ("max-chars", max_chars), ("workers", workers)):
        if value < 1:
            raise typer.BadParameter(f"--{name} must be at least 1")
    from edgekd.apps.serve import check_port

    if not 0 <= shadow <= 1:
        raise InputError(f"--shadow is a share of texts in [0, 1], got {shadow:g}")
    key = api_key(api_key_file)
    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise InputError("give both --ssl-certfile and --ssl-keyfile for HTTPS")
    for flag, path in (("--ssl-certfile", ssl_certfile), ("--ssl-keyfile", ssl_keyfile)):
        if path is not None and not path.is_file():
            raise InputError(f"{flag} {path}: no such file")
    check_port(host, port)
    scheme = "https" if ssl_certfile else "http"
    err(f"serving {bundle} at {scheme}://{host}:{port}/v1/classify" + (" (API key required)" if key else "") +
        "  (Ctrl-C or SIGTERM stops it)")
    run_server(bundle, host, port, workers, speed, engine,
               Limits(max_batch=max_batch, max_queue=max_queue, max_texts=max_texts, max_chars=max_chars), threads,
               api_key=key, ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
               ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None, shadow=shadow, shadow_budget=shadow_budget)


def api_key(file: Path | None) -> str | None:
    """The API key: the file's content, surrounding whitespace stripped, else $EDGEKD_API_KEY, else none."""
    import os

    from runtime.errors import InputError

    if file is not None:
        try:
            key = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"--api-key-file {file}: cannot read it ({exc.strerror})") from None
        if not key:
            raise InputError(f"--api-key-file {file} is empty")
        return key
    return os.environ.get("EDGEKD_API_KEY", "").strip() or None


@app.command()
@friendly
def demo(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `edgekd export` (it runs model.onnx).")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on; 127.0.0.1 keeps it on this machine.")] = "127.0.0.1",
    js_dir: Annotated[Optional[Path], typer.Option(
        help="The js/ folder of an edgekd checkout (with node_modules).")] = None,
) -> None:
    """Serve a page that runs the bundle in the browser (onnxruntime-web): type a text, move the speed
    slider, see the label, its probability and the layer it left at. No inference on the server."""
    from edgekd.apps.demo import demo_server

    server = demo_server(bundle, host, port, js_dir)
    err(f"demo of {bundle} at http://{host}:{server.server_address[1]}/  (Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
