"""`edgekd serve BUNDLE`: the bundle behind HTTP (Starlette under uvicorn), torch-free.

    POST /v1/classify  {"texts": [...], "speed": 0.3}  -> {"predictions": [...], "model": {...}}
                       (a bundle of text pairs: "texts": [["text", "text_pair"], ...] or [{"text", "text_pair"}])
    GET  /v1/model     labels, layers, default speed, engine, sha256 of the manifest
    GET  /healthz      the process is alive
    GET  /readyz       200 once the model is loaded and warmed up
    GET  /metrics      Prometheus: requests, latency, batch sizes, exit layers, queue depth

Cross-request batching (edgekd.apps.batching): requests that arrive while the model is busy
go together into the next batch (up to `max_batch` texts), so batched early exit works
across users while each row still exits on its own. A full queue answers 503 with
Retry-After; bodies, texts per request and characters per text are capped.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import runtime
from edgekd.apps.batching import BatchQueue
from edgekd.apps.shadow import Shadow, ShadowMonitor
from edgekd.present import threshold_info
from runtime.errors import EdgeKDError, InputError, InputTypeError
from runtime.exits import check_speed
from runtime.manifest import MANIFEST_FILE, verify_bundle


@dataclass
class Limits:
    max_batch: int = 32  # texts the worker runs together (32 gave more requests/s than 64 or 16 here)
    max_queue: int = 1024  # texts waiting; beyond it requests get 503
    max_texts: int = 256  # texts in one request
    max_chars: int = 10_000  # characters in one text
    max_body: int = 4 << 20  # bytes in one request body


class _Metrics:
    def __init__(self, num_layers: int):
        self.registry = CollectorRegistry()
        self.requests = Counter("edgekd_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=self.registry)
        self.latency = Histogram("edgekd_request_seconds", "time to answer /v1/classify", registry=self.registry,
                                 buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5))
        self.batch = Histogram("edgekd_batch_texts", "texts per model run", registry=self.registry,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.exits = Histogram("edgekd_exit_layer", "layer each text left at", registry=self.registry,
                               buckets=tuple(range(1, num_layers + 1)))
        self.queue = Gauge("edgekd_queue_texts", "texts waiting for the model", registry=self.registry)
        self.serving_speed = Gauge("edgekd_serving_speed", "the speed used when a request gives none",
                                   registry=self.registry)
        self.shadow_checked = Counter("edgekd_shadow_checked", "texts run again at full depth (serve --shadow)",
                                      registry=self.registry)
        self.shadow_disagreements = Counter("edgekd_shadow_disagreements", "checked texts whose early answer "
                                            "differs from full depth's", registry=self.registry)
        self.shadow_bound = Gauge("edgekd_shadow_loss_upper_bound", "upper confidence bound on the disagreement "
                                  "rate over the recent checks", registry=self.registry)
        self.shadow_shed = Counter("edgekd_shadow_shed", "sampled texts not checked: the check queue was full",
                                   registry=self.registry)


OPEN_PATHS = ("/healthz", "/readyz")  # the probes a load balancer calls answer without the key


class _KeyCheck:
    """ASGI middleware: a request to anything but the probes needs `Authorization: Bearer <key>`, compared in
    constant time; a missing or wrong key gets the same JSON 401 (it does not say which)."""

    def __init__(self, app, server: Server):
        self.app, self.key = app, server.api_key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        if not (scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)):
            response = JSONResponse({"error": "missing or wrong API key (Authorization: Bearer <key>)"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)


class Server:
    """The model, its batching worker and the HTTP routes."""

    def __init__(self, bundle: str | Path, *, speed: float | None = None, engine: str = "auto",
                 limits: Limits | None = None, warmup: bool = True, threads: int | None = None,
                 api_key: str | None = None, shadow: float = 0.0, shadow_budget: float | None = None):
        self.bundle = Path(bundle)
        self.api_key = api_key or None  # every endpoint but the probes then needs Authorization: Bearer <key>
        self.limits = limits or Limits()
        self.model = runtime.load(self.bundle, engine=engine, warmup=warmup, threads=threads)
        self.speed = check_speed(self.model.manifest.default_speed if speed is None else speed)
        self.metrics = _Metrics(self.model.num_layers)
        self.metrics.serving_speed.set(self.speed)
        self.shadow = make_shadow(self, shadow, shadow_budget) if shadow else None
        self.manifest_sha256 = hashlib.sha256((self.bundle / MANIFEST_FILE).read_bytes()).hexdigest()
        self.queue = BatchQueue(lambda texts, speed: self.model.classify(texts, speed=speed,
                                                                         batch_size=max(1, len(texts))),
                                self.limits.max_batch, on_batch=self.metrics.batch.observe,
                                on_waiting=self.metrics.queue.set)
        self.ready = False
        self.app = Starlette(routes=[
            Route("/v1/classify", self.classify, methods=["POST"]),
            Route("/v1/model", self.info, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.prometheus, methods=["GET"]),
        ], lifespan=self._lifespan, exception_handlers={HTTPException: self._http_error},
            middleware=[Middleware(_KeyCheck, server=self)] if self.api_key else [])

    # ----------------------------------------------------------------- lifecycle
    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        self.queue.start()
        if self.shadow is not None:
            self.shadow.start()
        self.ready = True
        try:
            yield
        finally:
            self.ready = False
            sys.stderr.write(f"edgekd serve: stopping ({self.queue.waiting} texts still queued are answered "
                             "first)\n")
            await self.queue.stop()  # finish what was accepted before stopping
            if self.shadow is not None:
                await self.shadow.stop()
            sys.stderr.write("edgekd serve: stopped\n")

    async def _http_error(self, request: Request, exc: HTTPException) -> Response:
        """Unknown paths and wrong methods answer JSON like the rest of the API."""
        message = {404: f"no such endpoint {request.url.path}; the endpoints are /v1/classify (POST), /v1/model, "
                        "/healthz, /readyz, /metrics",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, exc.detail)
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    # -------------------------------------------------------------------- routes
    def _error(self, status: int, message: str, endpoint: str, **headers) -> JSONResponse:
        self.metrics.requests.labels(endpoint, str(status)).inc()
        return JSONResponse({"error": message}, status_code=status, headers=headers or None)

    async def classify(self, request: Request) -> Response:
        began = time.perf_counter()
        endpoint = "/v1/classify"
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limits.max_body):
            return self._error(413, f"the body is larger than {self.limits.max_body} bytes", endpoint)
        body = await request.body()
        if len(body) > self.limits.max_body:
            return self._error(413, f"the body is larger than {self.limits.max_body} bytes", endpoint)
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return self._error(400, f"the body is not valid JSON: {exc}", endpoint)
        problem, texts, speed = self._validate(payload)
        threshold = payload.get("threshold") if isinstance(payload, dict) else None
        if not problem and threshold is not None:
            try:
                self.model.threshold_values(threshold)  # multi-label only, a number in (0, 1)
            except InputError as exc:
                problem = str(exc)
        if problem:
            return self._error(422, problem, endpoint)
        if self.queue.waiting + len(texts) > self.limits.max_queue:
            return self._error(503, f"the queue is full ({self.queue.waiting} texts waiting); retry shortly", endpoint,
                               **{"Retry-After": "1"})
        try:
            results = await self.queue.submit(texts, speed) if texts else []  # [] as classify([]) answers
        except Exception as exc:
            return self._error(500, f"the model failed: {exc}", endpoint)
        for r in results:
            self.metrics.exits.observe(r.exit_layer)
        if self.shadow is not None:  # checked after the answer is sent, off the request path
            self.shadow.offer(texts, [copy.copy(r) for r in results], speed)
        self.metrics.requests.labels(endpoint, "200").inc()
        self.metrics.latency.observe(time.perf_counter() - began)
        if threshold is not None:  # the labels at this request's threshold, from the same probabilities
            for r in results:
                r.labels = [name for name, p in r.probs.items() if p >= threshold]
        return JSONResponse({
            "predictions": [r.to_dict() for r in results],
            "model": {"bundle": self.bundle.name, "speed": speed, "engine": self.model.engine},
        })

    def _validate(self, payload) -> tuple[str | None, list[str], float]:
        if not isinstance(payload, dict):
            return "the body must be a JSON object like {\"texts\": [\"...\"], \"speed\": 0.3}", [], 0.0
        unknown = sorted(set(payload) - {"texts", "speed", "threshold"})
        if unknown:
            return (f"unknown field(s) {', '.join(unknown)}; the fields are texts, speed and threshold "
                    "(multi-label bundles)"), [], 0.0
        texts = payload.get("texts")
        pair = self.model.manifest.text_pair
        shape = "[text, text_pair] pairs (or {\"text\": ..., \"text_pair\": ...})" if pair else "strings"
        if not isinstance(texts, list):
            return f"texts must be a list of {shape}", [], 0.0
        if len(texts) > self.limits.max_texts:
            return f"texts holds {len(texts)} items; at most {self.limits.max_texts} per request", [], 0.0
        try:
            texts = self.model.items(texts)  # refuses an item of the wrong shape, naming its index
        except (InputError, InputTypeError) as exc:
            return str(exc), [], 0.0
        for i, item in enumerate(texts):
            if sum(map(len, (item,) if isinstance(item, str) else item)) > self.limits.max_chars:
                return (f"texts[{i}] has more than {self.limits.max_chars} characters, the server's limit "
                        "(edgekd serve --max-chars)"), [], 0.0
        speed = payload.get("speed", self.speed)
        try:
            speed = check_speed(speed)
        except (TypeError, ValueError) as exc:
            return str(exc), [], 0.0
        return None, texts, speed

    async def info(self, request: Request) -> Response:
        self.metrics.requests.labels("/v1/model", "200").inc()
        m = self.model.manifest
        return JSONResponse({"bundle": self.bundle.name, "labels": self.model.labels, "problem": self.model.problem,
                             "layers": self.model.num_layers,
                             "default_speed": m.default_speed, "serving_speed": self.speed,
                             "engine": self.model.engine, "precision": m.precision,
                             "text_pair": m.text_pair, **threshold_info(m), **self.shadow_info(),
                             "manifest_sha256": self.manifest_sha256})

    def set_speed(self, speed: float) -> None:
        """The speed used when a request gives none (serve --shadow moves it)."""
        self.speed = speed
        self.metrics.serving_speed.set(speed)

    def shadow_info(self) -> dict:
        if self.shadow is None:
            return {}
        m = self.shadow.monitor
        return {"shadow": {"share": self.shadow.share, "checked": m.checked, "disagreements": m.disagreements,
                           "loss_upper_bound": m.bound, "budget": m.budget, "calibrated_speed": m.calibrated}}

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(self, request: Request) -> Response:
        if not self.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def prometheus(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def make_shadow(server: Server, share: float, budget: float | None) -> Shadow:
    """serve --shadow: the promise checked is the bundle's guarantee (budget, confidence) when it has one."""
    if not 0 < share <= 1:
        raise InputError(f"--shadow is a share of texts in (0, 1], got {share:g}")
    manifest = server.model.manifest
    promise = (manifest.calibration.guarantee if manifest.calibration else None) or {}
    budget = budget if budget is not None else promise.get("budget", 0.02)
    if not 0 < budget < 1:
        raise InputError(f"--shadow-budget is a share of texts in (0, 1), got {budget:g}")
    monitor = ShadowMonitor(server.speed, budget, promise.get("confidence", 0.95))
    tolerance = 0.1 * (manifest.target_scale or 1.0)
    return Shadow(server.model, share, monitor, server.metrics, server.set_speed, tolerance)


def create_app(bundle: str | Path, **kwargs) -> Starlette:
    """An ASGI app serving `bundle` (for uvicorn, gunicorn -k uvicorn.workers.UvicornWorker, or tests)."""
    return Server(bundle, **kwargs).app


ENV = "EDGEKD_SERVE"  # JSON settings for app_from_env (so every uvicorn worker process builds the same app)


def app_from_env() -> Starlette:
    """The uvicorn factory: `uvicorn --factory edgekd.apps.serve:app_from_env` with EDGEKD_SERVE set."""
    import os

    settings = json.loads(os.environ[ENV])
    limits = Limits(**settings.pop("limits", {}))
    return create_app(settings.pop("bundle"), limits=limits, **settings)


def check_port(host: str, port: int) -> None:
    """Refuse, in one line, an address this process cannot listen on (before anything claims to serve)."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        why = "in use" if exc.errno in (98, 48, 10048) else exc.strerror
        raise EdgeKDError(f"cannot listen on {host}:{port} ({why}); pick another --port") from None


def serve(bundle: str | Path, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          speed: float | None = None, engine: str = "auto", limits: Limits | None = None,
          threads: int | None = None, api_key: str | None = None, ssl_certfile: str | None = None,
          ssl_keyfile: str | None = None, shadow: float = 0.0, shadow_budget: float | None = None) -> None:
    """Run the server until SIGTERM / Ctrl-C (then it stops accepting, answers what it took, and exits). With
    `api_key`, every endpoint but the probes needs it; with `ssl_certfile` / `ssl_keyfile`, it speaks HTTPS."""
    import os
    from dataclasses import asdict

    import uvicorn

    settings = dict(speed=speed, engine=engine, threads=threads, limits=limits or Limits(), api_key=api_key,
                    shadow=shadow, shadow_budget=shadow_budget)
    tls = {"ssl_certfile": ssl_certfile, "ssl_keyfile": ssl_keyfile} if ssl_certfile else {}
    if workers == 1:  # the bundle is loaded once, here, and served by this process
        uvicorn.run(Server(bundle, **settings).app, host=host, port=port, log_level="warning",
                    timeout_graceful_shutdown=30, **tls)
        return
    # several processes: each worker loads the bundle; the parent only checks its manifest and hashes, so a
    # bad bundle fails here, once, with edgekd's own message
    manifest = runtime.read_manifest(bundle)
    verify_bundle(bundle, manifest)
    os.environ[ENV] = json.dumps({"bundle": str(Path(bundle).resolve()), **settings,
                                  "limits": asdict(settings["limits"])})
    uvicorn.run("edgekd.apps.serve:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning", timeout_graceful_shutdown=30, **tls)
