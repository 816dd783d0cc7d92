"""The systems `edgekd bench` compares, and the run that compares them.

- teacher in PyTorch (transformers, eager attention)
- teacher as one ONNX graph
- the student as one full ONNX graph (no exits)
- the student in PyTorch with FastBERT-style per-sample exit at batch 1 (how peers run)
- the edgekd runtime at several speeds: the compiled graph (model.onnx, engine "graph") and the
  staged bundle (one session per layer, engine "staged")
- the same compiled graph in Node (onnxruntime-node) and in Chromium (onnxruntime-web, wasm),
  measured by the JS package's own bench code, when node / chromium are here
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

import runtime
from edgekd.bench import System, add_ratios, evaluate, layer_gflops, machine, markdown, rows_json, write_results
from edgekd.data import read_labelled
from runtime.exits import REPORT_SPEEDS, normalized_entropy
from runtime.manifest import bundle_size
from runtime.tokenize import TextEncoder

# torch, transformers and exporters are imported only when a run folder (--teacher) is given,
# so `edgekd bench BUNDLE` alone runs where only the runtime is installed.

DEFAULT_SPEEDS = list(REPORT_SPEEDS)


def staged_system(model: runtime.EdgeModel, speed: float, size: int | None = None, suffix: str = "",
                  kind: str = "edgekd") -> System:
    def predict(texts):
        results = model.classify(texts, speed=speed, batch_size=max(1, len(texts)))
        return np.array([r.label for r in results]), np.array([r.exit_layer for r in results])

    precision = "" if model.manifest.precision == "fp32" else f" {model.manifest.precision}"
    recipe = None if suffix else {"kind": "edgekd", "bundle": str(model.path), "engine": model.engine, "speed": speed}
    return System(f"edgekd{precision} {model.engine}, speed {speed:g}{suffix}", predict,
                  kind if not suffix else "edgekd-variant", speed, size, recipe=recipe)


def onnx_system(name: str, kind: str, path: Path, encoder: TextEncoder, labels: list[str], layers: int,
                threads: int | None = None) -> System:
    """One full graph with onnxruntime's default session options (what a user would do)."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = np.array(labels)

    def predict(texts):
        ids, mask = encoder(texts)
        logits = session.run(None, {"input_ids": ids, "mask": mask})[0]
        return names[logits.argmax(1)], np.full(len(texts), layers)

    return System(name, predict, kind, None, path.stat().st_size,
                  recipe={"kind": "onnx", "path": str(path), "layers": layers})


def teacher_torch_system(teacher, encoder: TextEncoder, labels: list[str]) -> System:
    import torch

    names = np.array(labels)
    layers = teacher.config.num_hidden_layers

    @torch.inference_mode()
    def predict(texts):
        ids, mask = (torch.from_numpy(a) for a in encoder(texts))
        logits = teacher(input_ids=ids, attention_mask=mask).logits
        return names[logits.argmax(1).numpy()], np.full(len(texts), layers)

    return System("teacher, PyTorch eager", predict, "teacher-torch")


def student_torch_exit_system(student, encoder: TextEncoder, labels: list[str], speed: float) -> System:
    """FastBERT-style: one text at a time, stop at the first confident layer."""
    import torch

    names = np.array(labels)

    @torch.inference_mode()
    def predict(texts):
        out_labels, out_layers = [], []
        for text in texts:
            ids, mask = (torch.from_numpy(a) for a in encoder([text]))
            hidden = student.embeddings(ids)
            for index, (layer, head) in enumerate(zip(student.layers, student.heads), start=1):
                hidden, _ = layer(hidden, mask)
                logits = head(hidden, mask)
                if index == len(student.layers) or normalized_entropy(logits.numpy())[0] < speed:
                    break
            out_labels.append(names[int(logits.argmax())])
            out_layers.append(index)
        return np.array(out_labels), np.array(out_layers)

    return System(f"student, PyTorch per-sample exit b1, speed {speed:g}", predict, "student-torch-exit", speed,
                  batched=False)


def run_bench(bundle: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike,
              run_dir: str | os.PathLike | None = None, speeds: list[float] | None = None,
              latency_texts: int = 200, limit: int | None = None, stem: str = "bench",
              thread_study: bool = True, also: list[str] | None = None, js: bool = True, log=print,
              competitors: bool = False, train: str | os.PathLike | None = None,
              profile: bool = False, large_batch: bool = False, rss: bool = False) -> dict:
    """Benchmark a bundle against its baselines on labelled `data`; write JSON + markdown (+ plots).

    competitors: also what a user would deploy instead (edgekd.competitors: the teacher the Optimum way,
    fastText, TF-IDF + LR, model2vec), trained on `train` (default: the run's train file).
    profile: onnxruntime's per-node profile of one batch through the compiled graph (<stem>_profile.json/.md).
    large_batch: throughput at batch 256 too. rss: each system's peak RSS, alone in a fresh process (edgekd.rss)."""
    speeds = list(DEFAULT_SPEEDS if speeds is None else speeds)
    model = runtime.load(bundle, warmup=True, engine="graph" if runtime.read_manifest(bundle).student != "transformer"
                         else "staged")
    graph = runtime.load(bundle, warmup=True, engine="graph") if model.manifest.graph and not model.full else None
    labels = model.labels
    dataset = read_labelled(data, label_names=labels, label_values=model.manifest.label_values)
    texts = dataset.texts[:limit] if limit else dataset.texts
    gold = np.array(dataset.labels[: len(texts)])
    encoder = model.encoder
    size = bundle_size(bundle)
    systems: list[System] = []
    tmp = Path(out) / ".graphs"
    tmp.mkdir(parents=True, exist_ok=True)
    student = teacher = None
    if run_dir is not None:
        from edgekd.students import load_student
        from exporters import export_full_graph

        run_dir = Path(run_dir)
        student = load_student(run_dir / "student")  # the run's recorded student type
        if (run_dir / "teacher").is_dir():
            from edgekd.teacher import load_teacher

            teacher = load_teacher(run_dir / "teacher", len(labels))
            teacher.config._attn_implementation = "eager"
            teacher.eval()
            systems.append(teacher_torch_system(teacher, encoder, labels))
            log("exporting the teacher as one ONNX graph")
            export_full_graph(teacher, tmp / "teacher.onnx", teacher.config.vocab_size, model.manifest.max_length,
                              atol=2e-4, name="teacher")
            systems.append(onnx_system("teacher, one ONNX graph", "teacher-onnx", tmp / "teacher.onnx", encoder, labels,
                                       teacher.config.num_hidden_layers))
            if competitors:
                from edgekd.competitors import teacher_optimum

                log("the teacher the Optimum way: fused by onnxruntime's transformer optimizer, dynamic int8")
                systems.append(teacher_optimum(tmp / "teacher.onnx", teacher.config.num_attention_heads,
                                               teacher.config.hidden_size, encoder, labels,
                                               teacher.config.num_hidden_layers, tmp))
        log("exporting the student as one ONNX graph")
        export_full_graph(student, tmp / "student.onnx", student.config.original_vocab_size or student.config.vocab_size,
                          model.manifest.max_length, name="student")
        systems.append(onnx_system("student, one ONNX graph", "student-onnx", tmp / "student.onnx", encoder, labels,
                                   student.config.num_layers))
        if hasattr(student, "heads"):  # an early-exit student (BiLSTM / TextCNN have no exits)
            calibrated = model.manifest.default_speed
            systems.append(student_torch_exit_system(student.eval(), encoder, labels, calibrated or 0.3))
    if competitors:
        systems += _competitors(run_dir, train, labels, model, tmp, log)
    systems += [staged_system(model, s, size) for s in speeds]
    if graph is not None:
        systems += [staged_system(graph, s, size, kind="edgekd-graph") for s in speeds]
    if thread_study and not model.full:
        for threading, label in (("nospin", "pools never spin"), ("spin", "pools spin when idle (ORT default)")):
            variant = runtime.load(bundle, warmup=True, threading=threading, engine="staged")
            systems.append(staged_system(variant, 0.0, size, f", {label}"))
    pairs = []  # (fp32 system, other-precision system) at the same speed
    for other in also or []:
        extra = runtime.load(other, warmup=True, engine=model.engine)
        extra_graph = runtime.load(other, warmup=True, engine="graph") if graph is not None else None
        extra_speeds = sorted({0.0, model.manifest.default_speed, extra.manifest.default_speed})
        for speed in extra_speeds:
            if speed not in speeds:
                speeds.append(speed)
                systems.append(staged_system(model, speed, size))
                if graph is not None:
                    systems.append(staged_system(graph, speed, size, kind="edgekd-graph"))
            paired = staged_system(extra, speed, bundle_size(other), kind="edgekd-" + extra.manifest.precision)
            systems.append(paired)
            pairs.append((f"edgekd {model.engine}, speed {speed:g}", paired.name))
            if extra_graph is not None:
                paired = staged_system(extra_graph, speed, bundle_size(other),
                                       kind=f"edgekd-graph-{extra.manifest.precision}")
                systems.append(paired)
                pairs.append((f"edgekd graph, speed {speed:g}", paired.name))
    if model.manifest.default_speed and model.manifest.default_speed not in speeds:
        speeds.append(model.manifest.default_speed)
        systems.append(staged_system(model, model.manifest.default_speed, size))
        if graph is not None:
            systems.append(staged_system(graph, model.manifest.default_speed, size, kind="edgekd-graph"))

    tokens = float(np.mean([len(i) for i in encoder.token_ids(texts[:latency_texts])]))

    def gflops(system: System, layers: float) -> float | None:
        if model.full and system.kind.startswith("edgekd"):
            return None  # the transformer-layer estimate does not apply to BiLSTM / TextCNN bundles
        if system.kind.startswith("teacher") and teacher is not None:
            from edgekd.families import family_of

            c, family = teacher.config, family_of(teacher.config)
            return family.num_layers(c) * layer_gflops(c.hidden_size, family.ffn_size(c), tokens)
        ffn = getattr(getattr(student, "config", None), "ffn_size", 4 * model.manifest.hidden_size)
        hidden = model.manifest.hidden_size
        return layers * layer_gflops(hidden, ffn, tokens)

    rows = evaluate(systems, texts, gold, labels, latency_texts=latency_texts, gflops=gflops, log=log,
                    large_batch=large_batch)
    if rss:
        _peak_rss(systems, rows, bundle, run_dir, texts[:256], log)
    if graph is not None and js:
        js_speeds = sorted({0.0, model.manifest.default_speed})
        for path, precision in [(Path(bundle), model.manifest.precision)] + \
                [(Path(o), runtime.read_manifest(o).precision) for o in also or []]:
            rows += js_rows(path, precision, texts, [labels[g] for g in gold], js_speeds, latency_texts, log)
    baselines = {"teacher_torch": "teacher, PyTorch eager", "teacher_onnx": "teacher, one ONNX graph",
                 "student_onnx": "student, one ONNX graph"}
    add_ratios(rows, baselines)
    keys = [k for k in ("b1_speedup_vs_teacher_torch", "b1_speedup_vs_teacher_onnx", "b1_speedup_vs_student_onnx",
                        "b32_throughput_vs_student_onnx") if any(k in r.ratios for r in rows)]
    title = f"{Path(bundle).name} on {Path(data).name} ({len(texts)} texts; batch-1 latency on {min(latency_texts, len(texts))})"
    table = markdown(rows, title, keys)
    payload = {"bundle": str(bundle), "data": str(data), "texts": len(texts), "machine": machine(),
               "manifest_default_speed": model.manifest.default_speed, "rows": rows_json(rows),
               "staged_overhead": staged_overhead(rows, model.num_layers + 1),
               "exit_efficiency": exit_efficiency(rows, model.num_layers),
               "stage_times_ms": _stage_times(model, texts[:latency_texts]),
               "js_vs_python": js_vs_python(rows),
               "precision_pairs": precision_pairs(rows, pairs)}
    for p in payload["precision_pairs"]:
        table += (f"\n{p['other']} vs {p['fp32']}: {p['b1_speedup']:.2f}x faster at batch 1, "
                  f"{p['b32_throughput_ratio']:.2f}x throughput at batch 32, accuracy {p['accuracy_change_points']:+.2f} points.\n")
    if payload["staged_overhead"]:
        o = payload["staged_overhead"]
        table += (f"\nStaged runtime at speed 0 vs the same student as one graph: {o['b1_ratio']:.3f}x at batch 1, "
                  f"{o['b32_ratio']:.3f}x at batch 32 (throughput); overhead per stage at batch 1: "
                  f"{o['per_stage_us_b1']:.0f} us.\n")
    for e in payload["exit_efficiency"]:
        table += (f"\nExit efficiency of {e['system']} ({e['average_layers']:.2f} of {model.num_layers} layers): "
                  f"{e['b1']:.2f} at batch 1, {e['b32']:.2f} at batch 32 "
                  "(full graph's latency x layers used / all layers, over this latency).\n")
    for j in payload["js_vs_python"]:
        table += f"\n{j['js']} vs {j['python']}: {j['b1_ratio']:.2f}x the batch-1 latency.\n"
    if profile and graph is not None:
        payload["profile"] = profile_graph(graph, texts, Path(out), stem, log)
        table += "\n" + payload["profile"]["markdown"]
    if competitors:
        payload["pareto"] = pareto(rows)
        table += "\n" + payload["pareto"]["markdown"]
        _pareto_plot(rows, Path(out), stem.replace("bench", "pareto") if "bench" in stem else f"{stem}_pareto")
    json_path, md_path = write_results(Path(out), stem, payload, table)
    _plots(rows, Path(out), stem)
    log(table)
    log(f"wrote {json_path} and {md_path}")
    return payload


JS_DIR = Path(__file__).resolve().parents[1] / "js"


def js_rows(bundle: Path, precision: str, texts: list[str], gold: list[str], speeds: list[float],
            latency_texts: int, log=print) -> list:
    """The compiled graph in Node and in Chromium, measured by js/src/bench.js (skipped, with a line in
    the log, where node, js/node_modules or chromium are missing)."""
    import json
    import shutil
    import subprocess
    import tempfile

    from edgekd.bench import Row

    if shutil.which("node") is None or not (JS_DIR / "node_modules").is_dir():
        log("Node rows skipped: node or js/node_modules missing (scripts/setup.sh installs them)")
        return []
    tag = "" if precision == "fp32" else f" {precision}"
    suffix = "" if precision == "fp32" else f"-{precision}"
    job = {"bundle": str(Path(bundle).resolve()), "texts": texts, "gold": gold, "speeds": speeds,
           "latencyTexts": latency_texts}
    rows = []

    def add(result, runner, kind):
        for r in result:
            rows.append(Row(f"edgekd{tag} graph in {runner}, speed {r['speed']:g}", kind, r["speed"], r["accuracy"],
                            r["averageLayers"], None, r["p50MsB1"], r["p95MsB1"], r["throughputB32"], None, None,
                            None))

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(job, handle)
    try:
        log(f"Node (onnxruntime-node): {bundle.name}")
        out = subprocess.run(["node", "scripts/bench.mjs", handle.name], cwd=JS_DIR, capture_output=True, text=True)
        if out.returncode == 0:
            add(json.loads(out.stdout)["rows"], "Node", "edgekd-node" + suffix)
        else:
            log(f"Node rows failed: {out.stderr[-500:]}")
    finally:
        Path(handle.name).unlink(missing_ok=True)
    chromium = shutil.which("chromium")
    if chromium is None:
        log("browser rows skipped: no chromium here (scripts/setup.sh installs it)")
        return rows
    from edgekd.demo import demo_server, serve_in_thread

    server = demo_server(bundle, port=0)
    serve_in_thread(server)
    try:
        log(f"Chromium (onnxruntime-web, wasm): {bundle.name}")
        drive = {"url": f"http://127.0.0.1:{server.server_address[1]}/?device=wasm", "text": texts[0], "speed": 0.0,
                 "bench": {"texts": texts, "gold": gold, "speeds": speeds, "latencyTexts": latency_texts}}
        out = subprocess.run(["node", "scripts/drive-demo.mjs", json.dumps(drive)], cwd=JS_DIR, capture_output=True,
                             text=True)
        if out.returncode == 0:
            add(json.loads(out.stdout)["bench"], "Chromium (wasm)", "edgekd-browser" + suffix)
        else:
            log(f"browser rows failed: {out.stderr[-500:]}")
    finally:
        server.shutdown()
        server.server_close()
    return rows


def _stage_times(model: runtime.EdgeModel, texts: list[str]) -> dict | None:
    """Where the time goes at batch 1 (EdgeModel.stage_times): tokenize + embed, then each layer."""
    if model.full:
        return None
    front, layers = model.stage_times(texts, repeats=2)
    return {"tokenize_embed": 1e3 * front, "layers": [1e3 * t for t in layers]}


def exit_efficiency(rows, num_layers: int) -> list[dict]:
    """For each compiled-graph row: (one plain full-depth graph's latency x layers used / all layers)
    / this latency, at batch 1 and at batch 32 (from throughput). 1.0 = early exit costs nothing beyond
    the layers it runs."""
    by = {r.name: r for r in rows}
    full = by.get("student, one ONNX graph")
    if full is None:
        return []
    out = []
    for r in rows:
        if r.kind != "edgekd-graph":
            continue
        share = r.average_layers / num_layers
        out.append({"system": r.name, "speed": r.speed, "average_layers": r.average_layers,
                    "b1": full.p50_ms_b1 * share / r.p50_ms_b1,
                    "b32": (r.throughput_b32 / full.throughput_b32) * share if r.throughput_b32 else None})
    return out


def js_vs_python(rows) -> list[dict]:
    """Node / browser batch-1 latency over Python's, same graph, same speed."""
    by = {r.name: r for r in rows}
    out = []
    for r in rows:
        if not r.kind.startswith(("edgekd-node", "edgekd-browser")):
            continue
        python = by.get(r.name.replace(" in Node", "").replace(" in Chromium (wasm)", ""))
        if python is not None:
            out.append({"js": r.name, "python": python.name, "b1_ratio": r.p50_ms_b1 / python.p50_ms_b1})
    return out


def precision_pairs(rows, pairs) -> list[dict]:
    by = {r.name: r for r in rows}
    out = []
    for fp32, other in pairs:
        a, b = by.get(fp32), by.get(other)
        if a is None or b is None or a is b:
            continue
        out.append({"fp32": fp32, "other": other, "b1_speedup": a.p50_ms_b1 / b.p50_ms_b1,
                    "b32_throughput_ratio": (b.throughput_b32 or 0) / (a.throughput_b32 or 1),
                    "accuracy_change_points": 100 * (b.accuracy - a.accuracy)})
    return out


def staged_overhead(rows, stages: int) -> dict | None:
    """Staged runtime at speed 0 against the same student as one graph (batch 1 latency, batch 32 throughput)."""
    by = {r.name: r for r in rows}
    staged, full = by.get("edgekd staged, speed 0"), by.get("student, one ONNX graph")
    if staged is None or full is None:
        return None
    return {"b1_ratio": staged.p50_ms_b1 / full.p50_ms_b1,
            "b32_ratio": full.throughput_b32 / staged.throughput_b32 if staged.throughput_b32 else None,
            "per_stage_us_b1": 1e3 * (staged.p50_ms_b1 - full.p50_ms_b1) / stages}


CURVE_NAMES = {"edgekd": "edgekd staged", "edgekd-graph": "edgekd graph (model.onnx)",
               "edgekd-int8": "edgekd staged (int8)", "edgekd-graph-int8": "edgekd graph (int8)",
               "edgekd-fp16": "edgekd staged (fp16)", "edgekd-graph-fp16": "edgekd graph (fp16)",
               "edgekd-node": "graph in Node", "edgekd-browser": "graph in Chromium (wasm)",
               "edgekd-node-int8": "graph in Node (int8)", "edgekd-browser-int8": "graph in Chromium (int8)"}


def _draw_curves(ax, curves: dict[str, list], x: str) -> None:
    """One accuracy curve per kind over its speeds (x = a Row field), each point labelled with its speed."""
    for kind, curve in curves.items():
        curve = sorted(curve, key=lambda r: r.speed)
        ax.plot([getattr(r, x) for r in curve], [100 * r.accuracy for r in curve], "o-", ms=4,
                label=CURVE_NAMES.get(kind, kind))
        for r in curve:
            ax.annotate(f"{r.speed:g}", (getattr(r, x), 100 * r.accuracy), fontsize=6, xytext=(2, 3),
                        textcoords="offset points")


def _plots(rows, out: Path, stem: str) -> None:
    """Accuracy against latency (batch 1) and against average layers: one curve per bundle
    precision over its speeds, one point per baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    curves = {}
    for r in rows:
        if r.kind.startswith("edgekd") and r.kind != "edgekd-variant":
            curves.setdefault(r.kind, []).append(r)
    points = [r for r in rows if not r.kind.startswith("edgekd")]
    for ax, x, label in ((axes[0], "p50_ms_b1", "p50 latency at batch 1 (ms, log scale)"),
                         (axes[1], "average_layers", "average layers used")):
        _draw_curves(ax, curves, x)
        for r in points:
            ax.plot(getattr(r, x), 100 * r.accuracy, "s", label=r.name)
        ax.set_xlabel(label)
        ax.set_ylabel("dev accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].set_xscale("log")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / f"{stem}.png", dpi=120)
    plt.close(fig)


def _competitors(run_dir, train, labels: list[str], model, work: Path, log) -> list[System]:
    """fastText, TF-IDF + LR and model2vec trained on the run's (or the given) train split."""
    from edgekd import competitors as c

    if train is None and run_dir is not None:
        train = json.loads((Path(run_dir) / "config.json").read_text())["data"]["train"]
    if train is None:
        raise ValueError("--competitors needs the training file: give --teacher RUN_DIR or --train PATH")
    rows = read_labelled(train, label_names=labels, label_values=model.manifest.label_values)
    log(f"competitors trained on {len(rows.texts)} rows of {train}")
    systems = [c.fasttext_system(rows.texts, rows.labels, labels, work),
               c.tfidf_system(rows.texts, rows.labels, labels, work)]
    backbone = Path(run_dir) / "teacher" if run_dir is not None and (Path(run_dir) / "teacher").is_dir() else None
    if backbone is not None:
        log("model2vec: distilling static embeddings from the teacher (a minute on 2 cores)")
        systems.append(c.model2vec_system(backbone, rows.texts, rows.labels, labels, work))
    return systems


def _peak_rss(systems: list[System], rows, bundle, run_dir, texts: list[str], log) -> None:
    """Fill each row's peak_rss_mb: its system alone in a fresh process (edgekd.rss); rows without a recipe
    (thread-setting variants, Node / browser) stay None."""
    from edgekd import rss

    recipes = {}
    for s in systems:
        recipe = dict(s.recipe) if s.recipe else None
        if recipe is None and s.kind in ("teacher-torch", "student-torch-exit") and run_dir is not None:
            recipe = {"kind": s.kind, "run": str(run_dir), "speed": s.speed}
        if recipe is not None:
            recipes[s.name] = {"bundle": str(bundle), **recipe}
    measured = rss.measure(recipes, texts, log)
    for row in rows:
        if measured.get(row.name):
            row.peak_rss_mb = measured[row.name]["peak_rss_mb"]


def pareto(rows) -> dict:
    """Which systems no other system beats on both accuracy and batch-1 latency; for each edgekd
    compiled-graph point, any system that does ("dominated_by")."""
    points = [r for r in rows if r.kind not in ("edgekd-variant",) and r.p50_ms_b1]
    front = [r.name for r in points if not any(o.accuracy > r.accuracy and o.p50_ms_b1 < r.p50_ms_b1 for o in points)]
    edgekd = [r for r in points if r.kind.startswith("edgekd-graph")]
    others = [r for r in points if not r.kind.startswith("edgekd")]
    beaten = {r.name: [o.name for o in others if o.accuracy > r.accuracy and o.p50_ms_b1 < r.p50_ms_b1]
              for r in edgekd}
    lines = ["### Accuracy / batch-1 latency frontier", "",
             "| system | accuracy % | p50 ms b1 | on the frontier |", "|---|---|---|---|"]
    for r in sorted(points, key=lambda r: r.p50_ms_b1):
        lines.append(f"| {r.name} | {100 * r.accuracy:.2f} | {r.p50_ms_b1:.3f} | {'yes' if r.name in front else ''} |")
    lines.append("")
    worst = {k: v for k, v in beaten.items() if v}
    lines.append("No baseline is both more accurate and faster than any edgekd compiled-graph point." if not worst else
                 "edgekd points beaten on both axes: " + "; ".join(f"{k} by {', '.join(v)}" for k, v in worst.items()))
    return {"frontier": front, "edgekd_dominated_by": beaten, "markdown": "\n".join(lines) + "\n"}


def _pareto_plot(rows, out: Path, stem: str) -> None:
    """Accuracy against batch-1 latency (log scale): edgekd's compiled graph as curves over speeds
    (fp32 and int8), every other system as a point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    curves: dict[str, list] = {}
    for r in rows:
        if r.kind.startswith("edgekd-graph"):
            curves.setdefault(r.kind, []).append(r)
    _draw_curves(ax, curves, "p50_ms_b1")
    markers = iter("sD^vP*Xh<>")
    for r in rows:
        if not r.kind.startswith("edgekd") and r.kind != "student-torch-exit":
            ax.plot(r.p50_ms_b1, 100 * r.accuracy, next(markers, "s"), ms=7, label=r.name)
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency at batch 1 (ms, log scale)")
    ax.set_ylabel("dev accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / f"{stem}.png", dpi=120)
    plt.close(fig)


def profile_graph(model: runtime.EdgeModel, texts: list[str], out: Path, stem: str, log, batch: int = 32) -> dict:
    """onnxruntime's profile of one batch through the compiled graph at the bundle's speed: the raw
    Chrome-trace JSON beside the results, and the time per operator type."""
    import collections

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(out / f"{stem}_profile")
    path = Path(model.path) / model.manifest.graph.file
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ids, mask = model.encoder(texts[:batch])
    feed = {"input_ids": ids, "attention_mask": mask, "speed": np.array(model.manifest.default_speed, np.float32)}
    session.run(None, feed)
    trace = Path(session.end_profiling())
    target = out / f"{stem}_profile.json"
    os.replace(trace, target)
    events = json.loads(target.read_text())
    per_op: dict[str, float] = collections.defaultdict(float)
    for e in events:
        op = e.get("args", {}).get("op_name", "?")
        # an If's time holds its branch's nodes, which the profile also lists one by one: not counted twice
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and op not in ("If", "Loop"):
            per_op[op] += e.get("dur", 0) / 1e3
    total = sum(per_op.values()) or 1.0
    top = sorted(per_op.items(), key=lambda kv: -kv[1])[:12]
    lines = [f"### Where the time goes: one batch of {len(ids)} through model.onnx at speed "
             f"{model.manifest.default_speed:g} (onnxruntime profile, {target.name})", "",
             "| operator | ms | share |", "|---|---|---|"]
    lines += [f"| {op} | {ms:.3f} | {100 * ms / total:.1f}% |" for op, ms in top]
    log(f"profile written to {target}")
    return {"file": target.name, "ms_by_op": dict(top), "kernel_ms": total, "markdown": "\n".join(lines) + "\n"}
