"""What the JS runtime can choose in Chromium (wasm), measured against Python on the same bundle and speed.

onnxruntime-web's wasm build is always SIMD + threads; what a page can choose is the thread count
(`ort.env.wasm.numThreads`: onnxruntime-web's default is half the logical cores, at most 4, so one thread on
a 2-core machine; threads need a cross-origin isolated page, which `edgekd demo` serves), running inference
in a proxy worker, and the graph (fp32 or int8). Each configuration runs in a fresh page, in rounds with the
order reversed every other round (a shared machine drifts); batch-1 latency is the best round's mean over
the texts. Python's runtime (graph engine, the bundle's calibrated threads) is timed in the same run.

    python benchmarks/browser_options.py bundles/sst2 [--also bundles/sst2-int8] --data ../shared/data/sst2/dev.tsv \
        --out benchmarks/results/browser_options
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {  # name -> demo page query (no threads: onnxruntime-web's own default; -1: every core)
    "onnxruntime-web default threads (edgekd's default)": "",
    "1 thread": "threads=1",
    "every core": "threads=-1",
    "every core, proxy worker": "threads=-1&proxy=1",
}


def page_latency(bundle: Path, query: str, texts: list, speed: float) -> tuple[float, dict]:
    """(mean ms per text at batch 1, the wasm settings the page reports), one fresh page."""
    from edgekd.apps.demo import drive_page

    first = texts[0] if isinstance(texts[0], str) else texts[0][0]
    out = drive_page(bundle, "scripts/drive-demo.mjs", lambda base: {
        "url": f"{base}/?device=wasm&{query}", "text": first, "speed": speed, "latencyTexts": texts,
        "latencySpeed": speed}, timeout=600)
    if out.returncode:
        raise RuntimeError(out.stderr[-800:])
    result = json.loads(out.stdout)
    return result["latencyMs"], result["shown"]["wasm"]


def python_latency(bundle: Path, texts: list, speed: float, rounds: int = 3) -> float:
    import runtime

    model = runtime.load(bundle, engine="graph", warmup=True)
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        for t in texts:
            model.classify([t], speed=speed, batch_size=1)
        best = min(best, 1e3 * (time.perf_counter() - began) / len(texts))
    return best


def study(bundles: list[Path], texts: list, rounds: int = 2) -> dict:
    import runtime

    out = {"texts": len(texts), "bundles": {}}
    for bundle in bundles:
        speed = runtime.load(bundle).manifest.default_speed
        times: dict[str, list[float]] = {name: [] for name in CONFIGS}
        settings = {}
        python = []
        for r in range(rounds):
            order = list(CONFIGS) if r % 2 == 0 else list(CONFIGS)[::-1]
            for name in order:
                ms, wasm = page_latency(bundle, CONFIGS[name], texts, speed)
                times[name].append(ms)
                settings[name] = wasm
            python.append(python_latency(bundle, texts, speed))
        py = min(python)
        out["bundles"][bundle.name] = {
            "speed": speed, "python_graph_ms": py,
            "configs": {name: {"ms": min(v), "x_python": min(v) / py, "wasm": settings[name]}
                        for name, v in times.items()}}
    return out


def markdown(result: dict, machine: str) -> str:
    lines = [f"### Chromium (onnxruntime-web, wasm) against Python, batch 1 ({result['texts']} texts; {machine})", "",
             "| bundle | configuration | threads | proxy | ms / text | x Python's graph engine |", "|---|---|---|---|---|---|"]
    for name, b in result["bundles"].items():
        lines.append(f"| {name} (speed {b['speed']:g}) | Python runtime, graph engine | - | - | {b['python_graph_ms']:.3f} | 1.00 |")
        for config, c in b["configs"].items():
            lines.append(f"| {name} | {config} | {c['wasm']['threads']} | {'yes' if c['wasm']['proxy'] else 'no'} | "
                         f"{c['ms']:.3f} | {c['x_python']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    import platform
    import os

    from edgekd.data import read_unlabelled
    from runtime.files import atomic_write_text

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--also", action="append", default=[])
    parser.add_argument("--data", required=True)
    parser.add_argument("--texts", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", help="stem: writes STEM.json and STEM.md")
    args = parser.parse_args()
    texts = read_unlabelled(args.data).texts[: args.texts]
    texts = [list(t) if isinstance(t, tuple) else t for t in texts]
    result = study([Path(args.bundle), *map(Path, args.also)], texts, args.rounds)
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    result["machine"] = machine
    table = markdown(result, machine)
    print(table)
    if args.out:
        atomic_write_text(f"{args.out}.json", json.dumps(result, indent=1) + "\n")
        atomic_write_text(f"{args.out}.md", table)


if __name__ == "__main__":
    main()
