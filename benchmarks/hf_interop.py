"""transformers.js against edgekd's JS runtime on the same `pack --target hf` folder (issue 42), in one run.

The bundle is packed for the Hugging Face tools into a work folder; then, on the first N texts of a labelled file,
batch-1 latency (median per text over 3 passes after a warm-up, the two sides alternated twice, the better pass
of each kept) of transformers.js (`pipeline('text-classification')`; for pairs its tokenizer and
`AutoModelForSequenceClassification`, as its pipeline takes no pairs) and of edgekd's JS runtime: in Node
(js/scripts/hf-latency.mjs) and in Chromium (the demo page's transformers.js variant, /hf; single texts only);
how often the two give the same answer; the bytes of the folder against the full bundle. Writes OUT.json and
OUT.md.

    python benchmarks/hf_interop.py bundles/sst2-quick-int8 --data ../shared/data/sst2/dev.tsv \
        --out benchmarks/results/hf_interop [--texts 300]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import runtime
from edgekd.data import read_bundle_data
from edgekd.pack import pack
from runtime.files import atomic_write_text
from runtime.manifest import bundle_size

JS = ROOT / "js"


def node(job: dict) -> dict:
    out = subprocess.run(["node", "scripts/hf-latency.mjs", "-"], cwd=JS, capture_output=True, text=True,
                         input=json.dumps(job), timeout=3600)
    if out.returncode:
        raise SystemExit(f"hf-latency.mjs failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def chromium(folder: Path, texts: list[str]) -> dict:
    from edgekd.apps.demo import drive_page

    out = drive_page(folder, "scripts/drive-hf.mjs",
                     lambda base: {"url": f"{base}/hf", "texts": texts, "latencyTexts": texts})
    if out.returncode:
        raise SystemExit(f"drive-hf.mjs failed:\n{out.stderr[-3000:]}")
    got = json.loads(out.stdout)
    answers = got["answers"]
    same = sum(t["label"] == e["label"] for t, e in zip(answers["transformers"], answers["edgekd"]))
    return {"transformers_js": {"p50_ms": got["latencyMs"]["transformers"]},
            "edgekd_js": {"p50_ms": got["latencyMs"]["edgekd"]}, "agree": same, "items": len(texts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default="benchmarks/results/hf_interop")
    parser.add_argument("--texts", type=int, default=300)
    args = parser.parse_args()
    bundle = Path(args.bundle)
    model = runtime.load(bundle)
    data = read_bundle_data(model, args.data)
    items = [list(t) if isinstance(t, tuple) else t for t in model.items(data.texts)[:args.texts]]
    with tempfile.TemporaryDirectory() as tmp:
        folder = pack(bundle, Path(tmp) / f"{bundle.name}-hf", "hf")
        key = "pairs" if model.manifest.text_pair else "texts"
        result = {"bundle": bundle.name, "data": Path(args.data).name, "items": len(items),
                  "precision": model.manifest.precision, "default_speed": model.manifest.default_speed,
                  "machine": f"{platform.machine()}, {platform.processor() or platform.system()}",
                  "bytes": {"bundle": bundle_size(bundle), "hf_folder": bundle_size(folder)},
                  "node": node({"folder": str(folder), key: items, "rounds": 3})}
        result["chromium"] = chromium(folder, items) if key == "texts" else \
            {"skipped": "transformers.js' text-classification pipeline takes no text pairs"}
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    rows = [f"| {where} | {r['transformers_js']['p50_ms']:.2f} | {r['edgekd_js']['p50_ms']:.2f} | "
            f"{r['transformers_js']['p50_ms'] / r['edgekd_js']['p50_ms']:.2f} | {r['agree']}/{r['items']} |"
            for where, r in (("Node (onnxruntime-node)", result["node"]), ("Chromium (wasm)", result["chromium"]))
            if "skipped" not in r]
    md = [f"### transformers.js against edgekd's JS runtime on one `pack --target hf` folder ({bundle.name}, "
          f"{result['precision']}, default speed {result['default_speed']:g}, {len(items)} texts of "
          f"{result['data']})", "",
          "| where | transformers.js p50 ms (batch 1) | edgekd JS p50 ms | ratio | same answer |", "|---|---|---|---|---|",
          *rows, "", f"Folder {result['bytes']['hf_folder'] / 1e6:.2f} MB (the full bundle: "
          f"{result['bytes']['bundle'] / 1e6:.2f} MB). {result['chromium'].get('skipped', '')}".rstrip()]
    atomic_write_text(out.with_suffix(".md"), "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
