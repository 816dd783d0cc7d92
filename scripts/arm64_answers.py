"""What a bundle answers on this machine, as JSON: the runtime's two engines and plain onnxruntime on
model.onnx, at speed 0 and the bundle's default speed. Needs only numpy, onnxruntime, tokenizers and the
`runtime` package (no torch), so it runs inside the ARM64 root of scripts/arm64_check.sh as well as here.

    python scripts/arm64_answers.py BUNDLE TEXTS_FILE > answers.json      (TEXTS_FILE: one text a line;
                                                                          text<TAB>text_pair for pair bundles)
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def read_items(path: str, pair: bool) -> list:
    lines = [line for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]
    return [tuple((line.split("\t", 1) + [""])[:2]) for line in lines] if pair else lines


def main() -> None:
    import numpy as np
    import onnxruntime as ort

    import runtime
    from runtime.manifest import part_inputs

    bundle, texts_file = sys.argv[1], sys.argv[2]
    first = runtime.load(bundle)
    items = read_items(texts_file, first.manifest.text_pair)
    speeds = sorted({0.0, float(first.manifest.default_speed)})
    out = {"machine": platform.machine(), "onnxruntime": ort.__version__, "numpy": np.__version__,
           "precision": first.manifest.precision, "problem": first.problem, "scale": first.rule.scale,
           "speeds": speeds, "engines": {}}
    engines = [e for e, ok in (("graph", first.manifest.graph is not None), ("staged", bool(first.manifest.staged)))
               if ok]
    for engine in engines:
        model = runtime.load(bundle, engine=engine)
        out["engines"][engine] = {}
        for speed in speeds:
            logits, layers, uncertainty = model.outputs(items, speed=speed)
            out["engines"][engine][f"{speed:g}"] = {"logits": logits.tolist(), "exit_layer": layers.tolist(),
                                                    "uncertainty": uncertainty.tolist()}
    if first.manifest.graph is not None:  # plain onnxruntime, no edgekd code between the tokenizer and the graph
        session = ort.InferenceSession(str(Path(bundle) / first.manifest.graph.file),
                                       providers=["CPUExecutionProvider"])
        names = part_inputs("compiled", first.manifest.text_pair)
        out["engines"]["onnxruntime"] = {}
        for speed in speeds:
            rows = {"logits": [], "exit_layer": [], "uncertainty": []}
            for item in items:  # batch 1, as an app calls it
                ids, mask, types = first.encode([item])
                feeds = [ids, mask, np.array(speed, dtype=np.float32)] + ([types] if first.manifest.text_pair else [])
                logits, layer, unc = session.run(None, dict(zip(names, feeds)))
                rows["logits"].append(logits[0].tolist())
                rows["exit_layer"].append(int(layer[0]))
                rows["uncertainty"].append(float(unc[0]))
            out["engines"]["onnxruntime"][f"{speed:g}"] = rows
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
