"""The demo page in a real Chromium: what it shows equals the Python runtime.

Needs Debian's `chromium` and js/node_modules (scripts/setup.sh installs both);
skips with a message where either is missing. The screenshot goes to a temporary folder; the committed
one in the README (benchmarks/results/demo_browser.png) is refreshed on purpose only, by
scripts/demo_screenshot.sh (EDGEKD_REFRESH_SCREENSHOT=1), so running the tests leaves the tree clean.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import runtime
from edgekd.apps.demo import demo_server, serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "js"
FIXTURES = JS / "test" / "fixtures"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOT = ROOT / "benchmarks" / "results" / "demo_browser.png"

pytestmark = pytest.mark.slow


def _skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (scripts/setup.sh does it)"
    if shutil.which("node") is None:
        return "node is not installed"
    if not (JS / "node_modules" / "playwright-core").is_dir():
        return "js/node_modules is missing: run `npm ci` in js/ (scripts/setup.sh does it)"
    return None


@pytest.fixture(scope="module")
def demo_url():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    server = demo_server(FIXTURES / "fp32", port=0)
    serve_in_thread(server)
    yield f"http://127.0.0.1:{server.server_address[1]}/?device=wasm"
    server.shutdown()
    server.server_close()


def drive(job: dict) -> dict:
    out = subprocess.run(["node", "scripts/drive-demo.mjs", "-"], cwd=JS, capture_output=True, text=True,
                         timeout=180, input=json.dumps(job))  # on stdin: never the command line
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_demo_page_shows_what_python_answers(demo_url, tmp_path):
    expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
    want = expected["bundles"]["fp32"]
    text, speed = "a superb, moving story with a brilliant cast", want["cases"][1]["speed"]
    shot = tmp_path / "demo.png"
    got = drive({"url": demo_url, "text": text, "speed": speed, "screenshot": str(shot),
                 "batch": {"texts": expected["texts"], "speeds": [c["speed"] for c in want["cases"]]}})
    assert got["shown"]["device"] == "wasm"
    python = runtime.load(FIXTURES / "fp32", engine="graph").classify([text], speed=speed)[0]
    shown = got["shown"]
    assert shown["label"] == python.label and shown["exitLayer"] == python.exit_layer
    assert all(abs(shown["probs"][k] - python.probs[k]) < 1e-4 for k in python.probs)
    # the whole fixture list, run inside the page, equals Python's committed answers
    for case, page in zip(want["cases"], got["batch"]):
        for w, g in zip(case["results"], page["results"]):
            assert (g["label"], g["exitLayer"]) == (w["label"], w["exitLayer"])
            assert all(abs(g["probs"][k] - w["probs"][k]) < 1e-4 for k in w["probs"])
    assert shot.stat().st_size > 10_000
    if os.environ.get("EDGEKD_REFRESH_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


def test_the_page_classifies_text_pairs_with_a_second_box():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
    want = expected["bundles"]["pair"]
    server = demo_server(FIXTURES / "pair", port=0)
    serve_in_thread(server)
    try:
        (a, b), speed = want["pairs"][1], want["cases"][1]["speed"]
        got = drive({"url": f"http://127.0.0.1:{server.server_address[1]}/?device=wasm", "text": a, "textPair": b,
                     "speed": speed, "batch": {"texts": want["pairs"], "speeds": [c["speed"] for c in want["cases"]]}})
    finally:
        server.shutdown()
        server.server_close()
    python = runtime.load(FIXTURES / "pair", engine="graph").classify([(a, b)], speed=speed)[0]
    shown = got["shown"]
    assert shown["pairBoxShown"] is True
    assert shown["label"] == python.label and shown["exitLayer"] == python.exit_layer
    for case, page in zip(want["cases"], got["batch"]):
        for w, g in zip(case["results"], page["results"]):
            assert (g["label"], g["exitLayer"]) == (w["label"], w["exitLayer"])
            assert all(abs(g["probs"][k] - w["probs"][k]) < 1e-4 for k in w["probs"])


@pytest.mark.parametrize("name", ["multi", "regression"])
def test_the_page_answers_multi_label_and_regression_bundles_as_python(name):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    want = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))["bundles"][name]
    texts = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))["texts"]
    server = demo_server(FIXTURES / name, port=0)
    serve_in_thread(server)
    try:
        got = drive({"url": f"http://127.0.0.1:{server.server_address[1]}/?device=wasm", "text": texts[3],
                     "speed": want["cases"][1]["speed"], "batch": {"texts": texts,
                                                                   "speeds": [c["speed"] for c in want["cases"]]}})
    finally:
        server.shutdown()
        server.server_close()
    python = runtime.load(FIXTURES / name, engine="graph").classify([texts[3]], speed=want["cases"][1]["speed"])[0]
    shown = got["shown"]["label"]
    assert shown == (f"score {python.score:.3f}" if name == "regression" else ", ".join(python.labels) or "(no label)")
    for case, page in zip(want["cases"], got["batch"]):
        for w, g in zip(case["results"], page["results"]):
            assert g.get("labels") == w.get("labels") and g["exitLayer"] == w["exitLayer"]
            assert abs(g.get("score", 0.0) - w.get("score", 0.0)) < 1e-4
            assert all(abs(g["probs"][k] - w["probs"][k]) < 1e-4 for k in w.get("probs", {}))


def test_the_page_marks_a_token_bundles_entities_in_the_text_as_python_finds_them():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
    want, texts = expected["bundles"]["tokens"], expected["texts"]
    server = demo_server(FIXTURES / "tokens", port=0)
    serve_in_thread(server)
    text = "a superb, moving story with a brilliant cast and an awful plot"
    try:
        got = drive({"url": f"http://127.0.0.1:{server.server_address[1]}/?device=wasm", "text": text, "speed": 0.0,
                     "batch": {"texts": texts, "speeds": [c["speed"] for c in want["cases"]], "words": True}})
    finally:
        server.shutdown()
        server.server_close()
    python = runtime.load(FIXTURES / "tokens", engine="graph").classify([text], speed=0.0)[0]
    assert python.entities and got["shown"]["marks"] == [{"type": e["entity_group"], "word": e["word"]}
                                                         for e in python.entities]
    for case, page in zip(want["cases"], got["batch"]):
        for text, w, g in zip(texts, case["results"], page["results"]):
            assert g["exitLayer"] == w["exitLayer"]
            assert [x["tag"] for x in g["words"]] == [x["tag"] for x in w["words"]]
            assert [(e["entity_group"], e["word"]) for e in g["entities"]] == \
                [(e["entity_group"], e["word"]) for e in w["entities"]]


def test_bench_rows_for_node_and_chromium():
    if _skip_reason():
        pytest.skip(_skip_reason())
    from edgekd.bench.js import js_rows

    expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
    texts = expected["texts"][:12]
    python = runtime.load(FIXTURES / "fp32", engine="graph").classify(texts, speed=0.5)
    gold = [p.label for p in python]  # Python's own labels as gold: JS must score 100%
    rows = [r for runner in ("node", "browser")
            for r in js_rows(runner, FIXTURES / "fp32", "fp32", texts, gold, [0.0, 0.5], latency_texts=4)]
    by = {r.name: r for r in rows}
    assert set(by) == {f"edgekd graph in {w}, speed {s:g}" for w in ("Node", "Chromium (wasm)") for s in (0.0, 0.5)}
    for runner in ("Node", "Chromium (wasm)"):
        row = by[f"edgekd graph in {runner}, speed 0.5"]
        assert row.accuracy == 1.0
        assert row.average_layers == pytest.approx(np.mean([p.exit_layer for p in python]))
        assert row.p50_ms_b1 > 0 and row.throughput_b32 > 0
        assert by[f"edgekd graph in {runner}, speed 0"].average_layers == 3


def test_transformers_js_in_chromium_answers_as_edgekd_on_an_hf_folder():
    """The demo page's transformers.js variant (/hf): pipeline('text-classification') in the browser on a
    `pack --target hf` folder gives the labels and probabilities of edgekd's browser runtime on the same folder,
    on every one of 300 texts, at the default speed held inside the graph."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))["hf"]
    server = demo_server(FIXTURES / "hf-fp32", port=0)
    serve_in_thread(server)
    try:
        out = subprocess.run(["node", "scripts/drive-hf.mjs", "-"], cwd=JS, capture_output=True, text=True,
                             timeout=240, input=json.dumps({"url": f"http://127.0.0.1:{server.server_address[1]}/hf",
                                                            "texts": expected["texts"]}))
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)["answers"]
    theirs, ours = got["transformers"], got["edgekd"]
    assert len(theirs) == len(ours) == len(expected["texts"])
    assert [t["label"] for t in theirs] == [o["label"] for o in ours]
    assert all(abs(t["score"] - o["probs"][o["label"]]) < 1e-3 for t, o in zip(theirs, ours))
    python = runtime.load(FIXTURES / "hf-fp32").classify(expected["texts"])
    assert [o["exitLayer"] for o in ours] == [p.exit_layer for p in python]
    assert len({p.exit_layer for p in python}) > 1  # early exit on at the folder's default speed
