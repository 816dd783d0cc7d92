"""`edgekd serve`: endpoints, bad input, limits, cross-request batching, 503 under overload, SIGTERM drain."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.testclient import TestClient

import runtime
from edgekd.apps.serve import Limits, Server
from tests.conftest import TEXTS


@pytest.fixture
def served(bundle):
    server = Server(bundle, warmup=False)
    with TestClient(server.app) as client:
        yield server, client


def test_endpoints(served, bundle):
    server, client = served
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").status_code == 200
    info = client.get("/v1/model").json()
    assert info["labels"] == ["negative", "positive"] and info["layers"] == 3 and len(info["manifest_sha256"]) == 64
    r = client.post("/v1/classify", json={"texts": TEXTS[:5], "speed": 0.6})
    assert r.status_code == 200
    got = r.json()["predictions"]
    want = runtime.load(bundle).classify(TEXTS[:5], speed=0.6)
    assert [(g["label"], g["exit_layer"]) for g in got] == [(w.label, w.exit_layer) for w in want]
    assert all(abs(g["probs"][k] - w.probs[k]) < 1e-5 for g, w in zip(got, want) for k in w.probs)
    metrics = client.get("/metrics").text
    assert 'edgekd_requests_total{endpoint="/v1/classify",status="200"} 1.0' in metrics
    assert "edgekd_exit_layer_bucket" in metrics and "edgekd_queue_texts" in metrics


@pytest.mark.parametrize("body,status,field", [
    (b"{not json", 400, "JSON"),
    (json.dumps([1, 2]).encode(), 422, "object"),
    (json.dumps({"texts": "ok"}).encode(), 422, "texts must be a list"),
    (json.dumps({"texts": ["ok", 3]}).encode(), 422, "texts[1]"),
    (json.dumps({"texts": ["ok"], "speed": "fast"}).encode(), 422, "speed"),
    (json.dumps({"texts": ["ok"], "speed": 2}).encode(), 422, "speed"),
    (json.dumps({"texts": ["ok"], "sped": 0.3}).encode(), 422, "sped"),
    (json.dumps({"texts": ["x" * 20_000]}).encode(), 422, "edgekd serve --max-chars"),
    (json.dumps({"texts": ["a"] * 300}).encode(), 422, "at most 256"),
])
def test_bad_requests_name_the_field(served, body, status, field):
    _, client = served
    r = client.post("/v1/classify", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and field in r.json()["error"]


def test_serve_agrees_with_classify_on_an_empty_list_and_says_when_it_stops(bundle, capfd):
    """Issue 43, item 14: {"texts": []} got 422 where classify([]) returns [], and the server stopped without a
    word."""
    server = Server(bundle, warmup=False)
    with TestClient(server.app) as client:
        r = client.post("/v1/classify", json={"texts": []})
        assert r.status_code == 200 and r.json()["predictions"] == [] and server.model.classify([]) == []
    err = capfd.readouterr().err
    assert "edgekd serve: stopping" in err and "edgekd serve: stopped" in err


def test_body_size_limit(bundle):
    server = Server(bundle, warmup=False, limits=Limits(max_body=1000))
    with TestClient(server.app) as client:
        r = client.post("/v1/classify", json={"texts": ["a" * 2000]})
        assert r.status_code == 413


def _slow(server, seconds):
    real = server.model.classify

    def slow(texts, **kwargs):
        time.sleep(seconds)
        return real(texts, **kwargs)

    server.model.classify = slow


def test_requests_that_arrive_while_busy_are_batched_together(bundle):
    server = Server(bundle, warmup=False)
    _slow(server, 0.2)
    with TestClient(server.app) as client:
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda t: client.post("/v1/classify", json={"texts": [t], "speed": 0.5}),
                                    TEXTS[:8]))
        assert all(r.status_code == 200 for r in replies)
        want = runtime.load(bundle).classify(TEXTS[:8], speed=0.5)
        assert [r.json()["predictions"][0]["exit_layer"] for r in replies] == [w.exit_layer for w in want]
        metrics = client.get("/metrics").text
    runs = float(next(l.split()[-1] for l in metrics.splitlines() if l.startswith("edgekd_batch_texts_count")))
    assert runs < 8, "eight concurrent requests took fewer model runs than requests"


def test_a_full_queue_answers_503_with_retry_after(bundle):
    server = Server(bundle, warmup=False, limits=Limits(max_queue=2))
    _slow(server, 0.3)
    with TestClient(server.app) as client:
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda t: client.post("/v1/classify", json={"texts": [t]}), TEXTS[:8]))
    codes = sorted(r.status_code for r in replies)
    assert 200 in codes and 503 in codes
    assert all(r.headers["retry-after"] == "1" for r in replies if r.status_code == 503)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sigterm_finishes_what_was_accepted_and_exits(bundle):
    import httpx

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edgekd.cli", "serve", str(bundle), "--port", str(port)],
                            stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60  # a loaded machine starts the server slowly
        while time.time() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        answers = []
        worker = threading.Thread(target=lambda: answers.append(
            httpx.post(f"{url}/v1/classify", json={"texts": [TEXTS[2] * 3] * 256, "speed": 0.0}, timeout=30)))
        worker.start()
        time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        worker.join(30)
        assert answers and answers[0].status_code == 200 and len(answers[0].json()["predictions"]) == 256
        # uvicorn re-raises the signal after its graceful shutdown, so the exit status is SIGTERM's
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_predict_file_survives_kill_9_and_resumes(bundle, tmp_path):
    """A real kill -9 in the middle of a long file: --resume finishes it, equal to one uninterrupted run."""
    src = tmp_path / "big.txt"
    src.write_text("\n".join(TEXTS * 400) + "\n")  # 14,400 rows
    out, whole = tmp_path / "out.jsonl", tmp_path / "whole.jsonl"
    cmd = [sys.executable, "-m", "edgekd.cli", "predict", str(bundle), "--file", str(src), "--speed", "0.5"]
    subprocess.run(cmd + ["--out", str(whole)], check=True, capture_output=True)
    proc = subprocess.Popen(cmd + ["--out", str(out)], stderr=subprocess.DEVNULL)
    while not out.exists() or out.stat().st_size < 200_000:
        time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed; make the file longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = out.read_text().count("\n")
    assert 0 < done < 14_400
    subprocess.run(cmd + ["--out", str(out), "--resume"], check=True, capture_output=True)
    assert out.read_text() == whole.read_text()


def test_unknown_paths_and_wrong_methods_answer_json(served):
    _, client = served
    r = client.get("/v2/classify")
    assert r.status_code == 404 and "no such endpoint /v2/classify" in r.json()["error"]
    r = client.get("/v1/classify")
    assert r.status_code == 405 and r.json() == {"error": "GET is not allowed on /v1/classify"}
    r = client.post("/v1/classify", json={"texts": ["ok"], "speed": 2})
    assert r.status_code == 422 and r.json()["error"].startswith("speed must lie in [0, 1]")


def test_a_port_in_use_is_refused_before_claiming_to_serve(bundle):
    from typer.testing import CliRunner

    from edgekd.cli import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", str(bundle), "--port", str(port)])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port} (in use); pick another --port" in result.output
    assert "serving" not in result.output


def test_an_api_key_guards_every_endpoint_but_the_probes(bundle):
    """Issue 44, section 3."""
    server = Server(bundle, warmup=False, api_key="s3cret")
    with TestClient(server.app) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            r = client.post("/v1/classify", json={"texts": ["a superb film"]}, headers=headers)
            assert r.status_code == 401 and r.json() == {"error": "missing or wrong API key (Authorization: "
                                                                   "Bearer <key>)"}
            assert client.get("/v1/model", headers=headers).status_code == 401
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
        ok = client.post("/v1/classify", json={"texts": ["a superb film"]}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1


@pytest.mark.slow
def test_serve_speaks_https_with_a_key_from_a_file(bundle, tmp_path):
    """Issue 44, section 3: --ssl-certfile / --ssl-keyfile with a certificate the test makes, and
    --api-key-file (whitespace stripped)."""
    import shutil
    import subprocess
    import sys

    import httpx

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed here (it makes the test's certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    (tmp_path / "key.txt").write_text("  s3cret\n")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edgekd.cli", "serve", str(bundle), "--port", str(port),
                             "--ssl-certfile", str(cert), "--ssl-keyfile", str(key),
                             "--api-key-file", str(tmp_path / "key.txt")], stderr=subprocess.PIPE, text=True)
    try:
        url = f"https://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"{url}/readyz", verify=False, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.post(f"{url}/v1/classify", json={"texts": ["ok"]}, verify=False).status_code == 401
        r = httpx.post(f"{url}/v1/classify", json={"texts": ["ok"]}, verify=False,
                       headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] in ("negative", "positive")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
