"""The web bundle's graph, chosen by timing the candidates in Chromium (issue 40, section 3).

WASM's int8 kernels gain far less over fp32 than native ones do, so what is fastest in a browser is measured
there, not assumed. From a full bundle the candidates are:
- as-exported: its model.onnx (fp32, or int8 dynamic for an int8 bundle);
- int8-weights (fp32 bundles): the same graph with its weight matrices stored int8 and turned back into fp32 by
  nodes onnxruntime folds at load (exporters/weights.py): fp32 compute, about a quarter of the bytes;
- int8-dynamic (fp32 bundles of a transformer student): its layer graphs quantized as `export --quantize int8
  --int8 dynamic-per-channel` does, compiled again.
Each is packed as a web bundle and timed at batch 1 in Chromium (the demo page, `js/scripts/drive-demo.mjs`), its
answers compared with the full bundle's on the given texts (Python's onnxruntime: the same graph); the fastest
of those giving the same answer on >= 99% of the texts (as export's int8 choice judges; exit-layer agreement is
recorded beside it) is kept, and among those within 3% of it the
smallest. The record (candidates with ms, bytes and agreement, the choice and why) goes into the web bundle's
manifest (`web`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import runtime
from runtime.errors import EdgeKDError
from runtime.manifest import Part, read_manifest, sha256_file, write_manifest

MIN_AGREEMENT = 0.99
CLOSE = 1.03  # within 3% of the fastest: the fewer bytes win
LATENCY_TEXTS = 60


def candidates(bundle: Path, work: Path, log=print) -> dict[str, Path]:
    """The candidate graphs of `bundle` (written under `work`): name -> model.onnx path."""
    from exporters.weights import int8_weights

    manifest = read_manifest(bundle)
    out = {"as-exported": bundle / manifest.graph.file}
    if manifest.precision != "fp32":
        return out
    int8_weights(out["as-exported"], work / "int8-weights.onnx")
    out["int8-weights"] = work / "int8-weights.onnx"
    if manifest.student == "transformer" and manifest.layer_parts:
        import onnx

        from exporters.compile import compile_early_exit
        from exporters.quantize import quantize_int8

        parts = []
        for part in manifest.staged:
            quantized = work / f"dyn-{part.file}"
            try:
                quantize_int8(bundle / part.file, quantized, "dynamic-per-channel")
            except Exception as exc:  # onnxruntime's quantizer raises bare errors on graphs it cannot read
                log(f"web candidate int8-dynamic left out: onnxruntime's quantizer failed on {part.file} ({exc})")
                return out
            parts.append(onnx.load(str(quantized)))
        onnx.save(compile_early_exit(parts[0], parts[1:], len(manifest.labels), rule=manifest.rule()),
                  str(work / "int8-dynamic.onnx"))
        out["int8-dynamic"] = work / "int8-dynamic.onnx"
    return out


def web_bundle(bundle: Path, graph: Path, out: Path, precision: str) -> Path:
    """A web bundle at `out` holding `graph` as its model.onnx (no card: pack writes the chosen one's)."""
    manifest = read_manifest(bundle)
    out.mkdir(parents=True)
    shutil.copyfile(bundle / manifest.tokenizer, out / manifest.tokenizer)
    shutil.copyfile(graph, out / manifest.graph.file)
    file = manifest.graph.file
    manifest.parts = [Part(index=0, name="model", file=file, sha256=sha256_file(out / file), kind="compiled",
                           form=manifest.graph.form)]
    manifest.target, manifest.precision = "web", precision
    manifest.card = manifest.card_sha256 = None
    write_manifest(out, manifest)
    return out


def browser_ms(folder: Path, items: list, speed: float) -> float:
    """Batch-1 milliseconds per text of the bundle at `folder` in Chromium (the demo page, wasm)."""
    from edgekd.apps.demo import drive_page

    first = items[0] if isinstance(items[0], str) else items[0][0]
    done = drive_page(folder, "scripts/drive-demo.mjs", lambda base: {
        "url": f"{base}/?device=wasm", "text": first, "speed": speed, "latencyTexts": items, "latencySpeed": speed},
        timeout=1800)
    if done.returncode:
        raise EdgeKDError(f"Chromium could not time {folder.name}: {done.stderr.strip()[-400:]}")
    return float(json.loads(done.stdout)["latencyMs"])


def choose(bundle: Path, texts: list, work: Path, log=print) -> tuple[Path, str, dict]:
    """Time every candidate of `bundle` in Chromium on `texts` at its default speed; returns (the chosen graph,
    its precision, the record for the web bundle's manifest)."""
    from edgekd.bench.js import missing

    why_not = missing("browser")
    if why_not:
        raise EdgeKDError(f"choosing the web graph times it in Chromium: {why_not}")
    full = runtime.load(bundle, engine="graph")
    items = full.items(texts)
    speed = full.manifest.default_speed
    want = full.outputs(items, speed=speed)
    rule = full.manifest.rule()
    record: dict = {"speed": speed, "texts": len(items), "latency_texts": min(len(items), LATENCY_TEXTS),
                    "candidates": {}}
    folders = {}
    for name, graph in candidates(bundle, work, log).items():
        precision = "int8" if name == "int8-dynamic" else full.manifest.precision
        folder = folders[name] = web_bundle(bundle, graph, work / name, precision)
        got = runtime.load(folder).outputs(items, speed=speed)
        same = float(rule.agree(got[0], want[0]).mean())  # the answer, as export's int8 choice judges it
        exits = float((got[1] == want[1]).mean())
        ms = browser_ms(folder, items[:LATENCY_TEXTS], speed)
        record["candidates"][name] = {"ms": round(ms, 4), "bytes": graph.stat().st_size,
                                      "agreement": round(same, 5), "exit_agreement": round(exits, 5),
                                      "precision": precision}
        log(f"web candidate {name}: {ms:.3f} ms per text in Chromium at batch 1, {graph.stat().st_size / 1e6:.2f} MB, "
            f"the same answer on {same:.2%} of {len(items)} texts (exit layer on {exits:.2%})")
    good = {n: c for n, c in record["candidates"].items() if c["agreement"] >= MIN_AGREEMENT}
    if not good:
        good = {"as-exported": record["candidates"]["as-exported"]}
    fastest = min(c["ms"] for c in good.values())
    chosen = min((n for n, c in good.items() if c["ms"] <= CLOSE * fastest), key=lambda n: good[n]["bytes"])
    c = good[chosen]
    record.update(chosen=chosen, why=f"fastest in Chromium of those agreeing with the full bundle on >= "
                  f"{MIN_AGREEMENT:.0%} (or within {CLOSE - 1:.0%} of it and smaller): {c['ms']:.3f} ms, "
                  f"{c['bytes'] / 1e6:.2f} MB")
    log(f"web graph: {chosen} ({record['why']})")
    return folders[chosen] / read_manifest(folders[chosen]).graph.file, c["precision"], record
