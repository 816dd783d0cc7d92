"""Per-part graph choice by measurement: plain, or fused by onnxruntime's transformer optimizer.

Fusion (Attention, SkipLayerNormalization, BiasGelu, ...) wins on some devices (GPUs above all) and
loses on others (the 2-core CPU this was written on: a fused 4x256 layer is as fast at batch 1 and
slower at batch 32). So `auto` times both variants of every layer graph on this device at batch 1 and
batch 32, keeps the faster by their sum, and records the timings; `fused` keeps the fused graphs
wherever they pass the parity check; `none` leaves the plain ones.

Only the layer graphs are rewritten; model.onnx is composed from them after this step (export --graph-form
auto), or from the plain graphs before it, keeping to standard ONNX operators (--graph-form portable).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from exporters.measure import TIMING_SHAPES, cpu_session, layer_feeds, median_ms
from runtime.choose import fastest
from runtime.manifest import PART_OUTPUTS, Manifest

OPTIMIZE_MODES = ("none", "fused", "auto")


def fuse(path: Path, out: Path, num_heads: int, hidden: int) -> dict[str, int]:
    """onnxruntime's transformer optimizer (model type bert) over one part graph; returns the fused op counts."""
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(str(path), model_type="bert", num_heads=num_heads, hidden_size=hidden,
                                     opt_level=0)
    model.save_model_to_file(str(out))
    counts: dict[str, int] = {}
    for node in onnx.load(str(out)).graph.node:
        if node.domain == "com.microsoft":
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def choose_part_graphs(folder: Path, manifest: Manifest, mode: str, num_heads: int, atol: float = 1e-4,
                       repeats: int = 60, log=print) -> dict | None:
    """Apply `mode` to every layer graph of the bundle in `folder` (in place); the record for the manifest."""
    if mode not in OPTIMIZE_MODES:
        raise ValueError(f"optimize must be one of {', '.join(OPTIMIZE_MODES)}, got {mode!r}")
    if mode == "none" or manifest.student != "transformer":
        return None
    hidden = manifest.hidden_size
    feeds = {shape: layer_feeds(*shape, hidden, seed=shape[0]) for shape in TIMING_SHAPES}  # parity and timing alike
    record: dict = {"mode": mode, "shapes": [list(s) for s in TIMING_SHAPES], "parts": {}}
    fused_files = {}
    for part in manifest.staged:
        if part.kind != "layer":
            continue
        plain = folder / part.file
        fused = plain.with_name(plain.stem + ".fused.onnx")
        fused_files[part.name] = plain, fused
        entry: dict = {"fused_ops": fuse(plain, fused, num_heads, hidden)}
        a, b = cpu_session(plain), cpu_session(fused)
        diff = 0.0
        for feed in feeds.values():
            for x, y in zip(a.run(PART_OUTPUTS["layer"], feed), b.run(PART_OUTPUTS["layer"], feed)):
                diff = max(diff, float(np.abs(x - y).max()))
        entry["max_diff"] = diff
        if diff > atol * 10 or not entry["fused_ops"]:
            entry["chosen"], entry["why"] = "none", ("no fusion applied" if not entry["fused_ops"] else
                                                     f"fused graph differs by {diff:.2g}")
        elif mode == "fused":
            entry["chosen"], entry["why"] = "fused", "asked for"
        else:
            choice = fastest({name: (lambda session=session: {f"{b}x{t}": median_ms(session, feed, repeats)
                                                              for (b, t), feed in feeds.items()})
                              for name, session in (("none", a), ("fused", b))}, rounds=1, by="total")
            entry["ms"] = {name: list(times.values()) for name, times in choice.ms.items()}
        del a, b
        record["parts"][part.name] = entry
    # auto: one form for every layer, by the layers' summed time (the layers are alike: a choice per layer would
    # follow this machine's noise, and a mixed model.onnx computes its mask values again where the form changes)
    timed = [e for e in record["parts"].values() if "ms" in e]
    if timed:
        totals = {form: sum(sum(e["ms"][form]) for e in timed) for form in ("none", "fused")}
        joint = min(totals, key=totals.get)
        for e in timed:
            e["chosen"] = joint
            e["why"] = (f"one form for every layer, the faster here over all {len(timed)} layers and both batches: "
                        f"plain {totals['none']:.3f} ms, fused {totals['fused']:.3f} ms (this layer: plain "
                        f"{sum(e['ms']['none']):.3f}, fused {sum(e['ms']['fused']):.3f})")
    for name, entry in record["parts"].items():
        plain, fused = fused_files[name]
        if entry["chosen"] == "fused":
            fused.replace(plain)
        else:
            fused.unlink()
        form = {"none": "the plain graph", "fused": "the fused graph"}[entry["chosen"]]
        log(f"{name}: kept {form}: {entry['why']}")
    return record
