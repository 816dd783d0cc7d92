"""Does a bundle answer the same everywhere it runs? Python (both engines), plain onnxruntime on model.onnx,
`edgekd serve` over HTTP, Node (onnxruntime-node) and Chromium (onnxruntime-web, wasm), on the same items
at the bundle's default speed; every runtime is compared with Python's graph engine.

For fp32 bundles the answers (class; label set; value within 1e-4; entities: type and span) and exit layers must
be identical on every row, probabilities (entity scores) within 1e-4. Prints one line per runtime; exits 1 when
one differs; --out writes the report as JSON.

    python scripts/answers_everywhere.py bundles/goemotions --data ../shared/data/goemotions/dev.tsv --limit 300
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TOLERANCE = 1e-4


def _from_js(row: dict) -> dict:
    return {("exit_layer" if k == "exitLayer" else k): v for k, v in row.items()}


def python_answers(bundle: Path, items: list, speed: float, engine: str) -> list[dict]:
    import runtime

    return [r.to_dict() for r in runtime.load(bundle, engine=engine).classify(items, speed=speed)]


def onnxruntime_answers(bundle: Path, items: list, speed: float) -> list[dict]:
    """model.onnx through plain onnxruntime, one item at a time; the runtime only turns logits into answers."""
    import onnxruntime as ort

    import runtime
    from runtime.manifest import part_inputs

    model = runtime.load(bundle, engine="graph")
    session = ort.InferenceSession(str(bundle / model.manifest.graph.file), providers=["CPUExecutionProvider"])
    names = part_inputs("compiled", model.manifest.text_pair)
    out = []
    for item in model.items(items):
        ids, mask, types = model.encode([item])
        feeds = [ids, mask, np.array(speed, dtype=np.float32)] + ([types] if model.manifest.text_pair else [])
        logits, layer, unc = session.run(None, dict(zip(names, feeds)))
        if model.problem == "token-classification":  # the entities from the tag logits, as classify reads them
            from runtime.entities import tag_answers

            answer = tag_answers(model.encoder, [item], logits, model.labels)[0]
            out.append({**answer, "exit_layer": int(layer[0]), "uncertainty": float(unc[0])})
        else:
            out.append(model.answer(logits[0], int(layer[0]), float(unc[0])).to_dict())
    return out


def serve_answers(bundle: Path, items: list, speed: float) -> list[dict]:
    from starlette.testclient import TestClient

    from edgekd.apps.serve import Server

    wire = [list(i) if isinstance(i, tuple) else i for i in items]
    with TestClient(Server(bundle, warmup=False).app) as client:
        out = []
        for start in range(0, len(wire), 64):
            reply = client.post("/v1/classify", json={"texts": wire[start:start + 64], "speed": speed})
            reply.raise_for_status()
            out += reply.json()["predictions"]
    return out


def node_answers(bundle: Path, items: list, speed: float) -> list[dict]:
    job = {"bundle": str(bundle.resolve()) + "/", "items": [list(i) if isinstance(i, tuple) else i for i in items],
           "speed": speed}
    done = subprocess.run(["node", "scripts/classify.mjs"], cwd=ROOT / "js", input=json.dumps(job), capture_output=True,
                          text=True, timeout=600)
    if done.returncode:
        raise RuntimeError(done.stderr[-800:])
    return [_from_js(r) for r in json.loads(done.stdout)["results"]]


def browser_answers(bundle: Path, items: list, speed: float) -> list[dict]:
    from edgekd.apps.demo import demo_server, serve_in_thread

    server = demo_server(bundle, port=0)
    serve_in_thread(server)
    try:
        wire = [list(i) if isinstance(i, tuple) else i for i in items]
        first = wire[0] if isinstance(wire[0], str) else wire[0][0]
        job = {"url": f"http://127.0.0.1:{server.server_address[1]}/?device=wasm", "text": first, "speed": speed,
               "batch": {"texts": wire, "speeds": [speed]}}
        done = subprocess.run(["node", "scripts/drive-demo.mjs", "-"], cwd=ROOT / "js", input=json.dumps(job),
                              capture_output=True, text=True, timeout=900)
        if done.returncode:
            raise RuntimeError(done.stderr[-800:])
        return [_from_js(r) for r in json.loads(done.stdout)["batch"][0]["results"]]
    finally:
        server.shutdown()
        server.server_close()


def same(a: dict, b: dict) -> tuple[bool, float]:
    """(the same answer and exit layer, the largest probability / value difference)."""
    diff = abs(a.get("score", 0.0) - b.get("score", 0.0))
    for k, p in (a.get("probs") or {}).items():
        diff = max(diff, abs(p - (b.get("probs") or {}).get(k, float("inf"))))
    for x, y in zip(a.get("entities") or [], b.get("entities") or []):  # token classification: entity scores
        diff = max(diff, abs(x["score"] - y["score"]))

    def spans(r: dict) -> list:
        return [(e["entity_group"], e["start"], e["end"]) for e in r.get("entities") or []]

    answer = a.get("label") == b.get("label") and a.get("labels") == b.get("labels") and spans(a) == spans(b) and \
        diff <= TOLERANCE
    return answer and a["exit_layer"] == b["exit_layer"], diff


def compare(bundle: Path, items: list, speed: float, runtimes: list[str]) -> dict:
    makers = {"python staged": lambda: python_answers(bundle, items, speed, "staged"),
              "onnxruntime (model.onnx)": lambda: onnxruntime_answers(bundle, items, speed),
              "serve (HTTP)": lambda: serve_answers(bundle, items, speed),
              "node": lambda: node_answers(bundle, items, speed),
              "chromium (wasm)": lambda: browser_answers(bundle, items, speed)}
    reference = python_answers(bundle, items, speed, "graph")
    report = {"bundle": str(bundle), "items": len(items), "speed": speed, "reference": "python graph", "runtimes": {}}
    for name in runtimes:
        try:
            got = makers[name]()
        except Exception as exc:  # a runtime that cannot run here is reported, not hidden
            report["runtimes"][name] = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]}"}
            continue
        checks = [same(w, g) for w, g in zip(reference, got)]
        report["runtimes"][name] = {"rows": len(got), "identical": sum(ok for ok, _ in checks),
                                    "max_prob_diff": max((d for _, d in checks), default=0.0),
                                    "differing": [{"row": i, "item": items[i], "python graph": reference[i],
                                                   name: got[i]} for i, (ok, _) in enumerate(checks) if not ok][:5]}
    report["passed"] = all("error" not in r and r["identical"] == len(items) for r in report["runtimes"].values())
    return report


def main() -> None:
    import runtime
    from edgekd.data import read_bundle_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--data", required=True)
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--speed", type=float, help="default: the bundle's")
    parser.add_argument("--out")
    args = parser.parse_args()
    model = runtime.load(args.bundle)
    items = read_bundle_data(model, args.data).texts[: args.limit]
    speed = model.manifest.default_speed if args.speed is None else args.speed
    runtimes = ["python staged", "onnxruntime (model.onnx)", "serve (HTTP)"]
    if shutil.which("node") and (ROOT / "js" / "node_modules").is_dir():
        runtimes += ["node"] + (["chromium (wasm)"] if shutil.which("chromium") else [])
    report = compare(args.bundle, items, speed, runtimes)
    print(f"{args.bundle} ({model.problem}, {model.manifest.precision}) at speed {speed:g} on {len(items)} items, "
          "against Python's graph engine:")
    for name, r in report["runtimes"].items():
        print(f"  {name:<26} " + (r["error"] if "error" in r else
                                  f"{r['identical']}/{r['rows']} identical, max prob diff {r['max_prob_diff']:.2e}"))
    if args.out:
        from runtime.files import atomic_write_text

        atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    sys.exit(0 if report["passed"] else 1)


if __name__ == "__main__":
    main()
