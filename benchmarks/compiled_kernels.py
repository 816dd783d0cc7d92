"""model.onnx as a bundle has it against model.onnx composed again from the same layer graphs by this edgekd's
compiler (issue 40: before and after), side by side in one run.

The bundle is copied; the copy's model.onnx is rebuilt from its layer graphs (exporters.bundle.add_compiled_graph,
checked against the staged graphs at every grid speed as export checks it). For each graph, at speed 0 and at
the bundle's default speed: kernels per text and per layer and milliseconds by group (onnxruntime's profiler,
batch 1, one thread: runtime.timing.kernel_profile), and batch-1 p50 through edgekd's runtime (graph engine,
one thread; the two graphs alternated over 6 rounds, the best round's median kept), with the answers compared.
Writes OUT.json and OUT.md.

    python benchmarks/compiled_kernels.py BUNDLE --data dev.tsv --out benchmarks/results/compiled_kernels_stsb
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import runtime  # noqa: E402
from edgekd.data import read_bundle_data  # noqa: E402
from exporters.bundle import add_compiled_graph  # noqa: E402
from runtime.files import atomic_write_text  # noqa: E402
from runtime.manifest import read_manifest, sha256_file, write_manifest  # noqa: E402
from runtime.timing import kernel_profile  # noqa: E402


def recompiled(bundle: Path, work: Path) -> Path:
    """A copy of `bundle` whose model.onnx this compiler composed again from its layer graphs."""
    copy = work / f"{bundle.name}-recompiled"
    shutil.copytree(bundle, copy)
    manifest = read_manifest(copy)
    form = manifest.graph.form
    manifest.parts = [p for p in manifest.parts if p.kind != "compiled"]
    manifest.compiled_check = add_compiled_graph(copy, manifest)
    manifest.graph.form = form
    manifest.graph.sha256 = sha256_file(copy / manifest.graph.file)
    write_manifest(copy, manifest)
    return copy


def p50s(models: dict, items: list, speed: float, rounds: int = 6) -> dict[str, float]:
    best = {name: float("inf") for name in models}
    for r in range(rounds):
        for name in (list(models) if r % 2 == 0 else list(models)[::-1]):
            model = models[name]
            took = []
            for item in items:
                start = time.perf_counter()
                model.classify([item], speed=speed, batch_size=1)
                took.append(time.perf_counter() - start)
            best[name] = min(best[name], statistics.median(took) * 1e3)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default="benchmarks/results/compiled_kernels")
    parser.add_argument("--texts", type=int, default=200)
    args = parser.parse_args()
    bundle = Path(args.bundle)
    with tempfile.TemporaryDirectory() as tmp:
        after_path = recompiled(bundle, Path(tmp))
        models = {"before": runtime.load(bundle, engine="graph", threads=1),
                  "after": runtime.load(after_path, engine="graph", threads=1)}
        data = read_bundle_data(models["before"], args.data)
        items = models["before"].items(data.texts)[:args.texts]
        default = models["before"].manifest.default_speed
        result = {"bundle": bundle.name, "data": Path(args.data).name, "texts": len(items),
                  "precision": models["before"].manifest.precision, "form": models["before"].manifest.graph.form,
                  "num_layers": models["before"].num_layers, "default_speed": default, "speeds": {}}
        for speed in sorted({0.0, default}):
            out = {name: kernel_profile(model, items[:50], speed=speed) for name, model in models.items()}
            got = {name: model.outputs(items, speed=speed) for name, model in models.items()}
            latency = p50s(models, items[:100], speed)
            result["speeds"][f"{speed:g}"] = {
                name: {**out[name], "p50_ms": round(latency[name], 4)} for name in models}
            result["speeds"][f"{speed:g}"]["same_exits"] = bool((got["before"][1] == got["after"][1]).all())
            result["speeds"][f"{speed:g}"]["max_logit_diff"] = float(np.abs(got["before"][0] - got["after"][0]).max())
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    lines = [f"### model.onnx before and after the compiler of issue 40 ({bundle.name}, {result['precision']}, "
             f"{result['form']} layers, {result['num_layers']} layers; {len(items)} texts of {result['data']}; "
             "batch 1, one thread)", "",
             "| speed | graph | kernels per text | per layer | ms by profiler | p50 ms (edgekd classify) | same exits |",
             "|---|---|---|---|---|---|---|"]
    for speed, rows in result["speeds"].items():
        for name in ("before", "after"):
            r = rows[name]
            lines.append(f"| {speed} | {name} | {r['kernels_per_text']:.1f} | {r['kernels_per_layer']:.1f} | "
                         f"{r['ms_per_text']:.3f} | {r['p50_ms']:.3f} | {rows['same_exits']} |")
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
