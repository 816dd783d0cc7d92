"""`edgekd bench`: every system on the same texts, side by side, in one run that keeps what it measured.

The run plans its systems (one recipe each, built through edgekd.bench.registry), then measures in
phases: accuracy and layers, batch-1 latency in two rounds (order reversed in the second), throughput
at batch 32 in two rounds (and at batch 256), peak RSS, the Node and Chromium rows, the profile.
After every system's step the state (`<stem>.state.json`) is written atomically, so a kill or a
crash loses at most the step in progress, and `resume=True` measures only what is missing (with the
run's settings checked against the recorded ones). A system that fails is recorded with its
one-line reason and the others go on; the report is written with every system that finished, and
`BenchFailed` names what failed.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from edgekd.bench import js, report
from edgekd.bench.measure import (
    LARGE_BATCH,
    Row,
    answer_scores,
    System,
    best_round,
    latency_b1,
    layer_gflops,
    percentile,
    quality,
    throughput,
)
from edgekd.bench.options import BenchOptions
from edgekd.bench.plan import Unit, plan, precision_pairs_of, selected_groups
from edgekd.bench.registry import Context, build
from edgekd.bench.rss import measure_one
from edgekd.data import read_bundle_data
from edgekd.metrics import gold_array, main_metric
from runtime.errors import EdgeKDError
from runtime.exits import REPORT_SPEEDS, TOKENS
from runtime.files import atomic_write_text
from runtime.manifest import read_manifest
from runtime.timing import kernel_profile, layer_times, profile_graph

DEFAULT_SPEEDS = list(REPORT_SPEEDS)
STATE_VERSION = 1
PROGRESS_EVERY_S = 10.0  # a progress line at least this often inside a long step


class BenchFailed(EdgeKDError):
    """Some systems failed; the others were measured and written."""


class Progress:
    def __init__(self, log: Callable[[str], None]):
        self.log = log
        self.began = time.perf_counter()

    def elapsed(self) -> str:
        s = int(time.perf_counter() - self.began)
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"

    def step(self, phase: str, index: int, total: int, name: str, texts: int) -> None:
        self.log(f"[{self.elapsed()}] {phase} {index}/{total}: {name} ({texts} texts)")

    def ticker(self, name: str, total: int) -> Callable[[int], None]:
        last = [time.perf_counter()]

        def tick(done: int) -> None:
            if time.perf_counter() - last[0] >= PROGRESS_EVERY_S:
                last[0] = time.perf_counter()
                self.log(f"[{self.elapsed()}]   {name}: {min(done, total)}/{total} texts")

        return tick


class State:
    """What the run measured so far, written atomically after every step."""

    def __init__(self, path: Path, settings: dict):
        self.path = path
        self.data = {"version": STATE_VERSION, "settings": settings, "systems": {}, "js": {}, "failed": {}}

    @classmethod
    def resume(cls, path: Path, settings: dict, log) -> State:
        state = cls(path, settings)
        if not path.is_file():
            log(f"--resume: nothing recorded at {path}; measuring everything")
            return state
        recorded = json.loads(path.read_text(encoding="utf-8"))
        old = recorded.get("settings", {})
        differ = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if recorded.get("version") != STATE_VERSION or differ:
            raise EdgeKDError(f"--resume: {path} was measured with other settings ({', '.join(differ) or 'version'}"
                              "); rerun with the same ones, or without --resume to start over")
        state.data = recorded
        state.data["failed"] = {}  # systems that failed are tried again
        done = sum(1 for s in recorded["systems"].values() if "b32" in s or "b1" in s)
        log(f"--resume: {len(recorded['systems'])} systems recorded ({done} with timings) in {path}")
        return state

    def system(self, name: str) -> dict:
        return self.data["systems"].setdefault(name, {})

    def fail(self, name: str, exc: BaseException) -> None:
        self.data["failed"][name] = one_line(exc)
        self.save()

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data) + "\n")


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:300]


def run_bench(options: BenchOptions, log: Callable[[str], None] = print) -> dict:
    """Benchmark a bundle against its baselines on labelled data; write JSON + markdown + plots into
    options.folder(). Raises BenchFailed (after writing) when any system failed."""
    out = options.folder()
    groups = selected_groups(options)
    ctx = Context(options.bundle, options.run_dir, out / f".{options.stem}-work", options.train, log)
    labels = ctx.labels
    problem = ctx.problem
    # the file's shape is checked against the bundle before anything is measured or written
    dataset = read_bundle_data(ctx.manifest, options.data, **options.columns)
    out.mkdir(parents=True, exist_ok=True)
    texts = dataset.texts[: options.limit] if options.limit else dataset.texts
    if problem == TOKENS:  # each sentence's tags on the words the runtime reads
        from edgekd.tokens import word_gold

        gold = word_gold(ctx.encoder, texts, dataset.labels[: len(texts)], labels)
    else:
        gold = gold_array(dataset.labels[: len(texts)], problem, len(labels))
    speeds = list(DEFAULT_SPEEDS if options.speeds is None else options.speeds)
    settings = options.settings(len(texts), speeds)
    state_path = out / f"{options.stem}.state.json"
    state = State.resume(state_path, settings, log) if options.resume else State(state_path, settings)
    units = plan(options, ctx, speeds, groups)
    manifest = ctx.manifest
    has_graph = manifest.student == "transformer" and manifest.graph is not None
    js_units = [(runner, Path(b)) for runner in ("node", "browser") if runner in groups and has_graph
                for b in [options.bundle, *options.also]]
    progress = Progress(log)
    log(f"bench of {options.bundle} on {len(texts)} texts of {options.data}: {len(units)} systems in Python" +
        (f" and {len(js_units)} JS runtime runs" if js_units else "") +
        f" ({', '.join(sorted(groups))}); state in {state_path}")
    built: dict[str, System] = {}

    def system(unit: Unit) -> System | None:
        if unit.name in state.data["failed"]:
            return None
        if unit.name not in built:
            try:
                built[unit.name] = build(unit.recipe, ctx)
                state.system(unit.name).update(kind=built[unit.name].kind, size_bytes=built[unit.name].size_bytes)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                log(f"  {unit.name}: failed to build: {one_line(exc)}")
                state.fail(unit.name, exc)
                return None
        return built[unit.name]

    def each(phase: str, key: str, units_: list[Unit], sample: int, measure) -> None:
        todo = [u for u in units_ if key not in state.system(u.name) and u.name not in state.data["failed"]]
        for index, unit in enumerate(todo, start=1):
            s = system(unit)
            if s is None:
                continue
            progress.step(phase, index, len(todo), unit.name, sample)
            try:
                state.system(unit.name)[key] = measure(s, unit)
                state.save()
            except (KeyboardInterrupt, SystemExit):
                log(f"interrupted during {phase} of {unit.name}; what was measured is in {state_path}: "
                    "rerun with --resume to go on")
                raise
            except Exception as exc:
                log(f"  {unit.name}: failed: {one_line(exc)}")
                state.fail(unit.name, exc)

    index = {name: i for i, name in enumerate(labels)}
    each("accuracy", "quality", units, len(texts),
         lambda s, u: quality(s, texts, gold, index, tick=progress.ticker(u.name, len(texts)), problem=problem))
    sample = texts[: options.latency_texts]
    for r in range(2):
        order = units if r == 0 else units[::-1]
        each(f"batch-1 latency, round {r + 1}/2", f"b1_{r}", order, len(sample), lambda s, u: latency_b1(s, sample))
    batched = [u for u in units if u.recipe["kind"] != "student-torch-exit"]
    sizes = [32] + ([LARGE_BATCH] if options.large_batch else [])
    for size in sizes:
        for r in range(2):
            each(f"throughput at batch {size}, round {r + 1}/2", f"b{size}_{r}", batched, len(texts),
                 lambda s, u, size=size: throughput(s, texts, size))
    if options.rss:
        rss_units = [u for u in units if not u.recipe.get("variant")]
        each("peak RSS (each alone in a fresh process)", "rss", rss_units, 256,
             lambda s, u: measure_one(u.recipe, texts[:256]))

    js_speeds = sorted({0.0, manifest.default_speed})
    gold_names = [labels[g] for g in gold] if js_units and problem == "single-label" else []

    def js_scorer(got: list) -> tuple[str, dict]:
        """The metrics of a multi-label / regression / token bundle's JS answers (label-name lists; scores; word
        tags)."""
        if problem == "multi-label":
            got = np.array([[name in chosen for name in labels] for chosen in got], dtype=bool)
        metrics = answer_scores(problem, got if problem == TOKENS else np.asarray(got), gold, index)
        return main_metric(problem), metrics
    for index, (runner, bundle) in enumerate(js_units, start=1):
        name = f"{js.RUNNERS[runner]}: {bundle.name}"
        if name in state.data["js"]:
            continue
        progress.step("JS runtimes", index, len(js_units), name, len(texts))
        try:
            rows = js.js_rows(runner, bundle, read_manifest(bundle).precision, texts, gold_names, js_speeds,
                              options.latency_texts, js_scorer)
            state.data["js"][name] = [asdict(r) for r in rows]
            state.save()
        except js.RunnerMissing as exc:
            log(f"  {name} skipped: {exc}")
        except (KeyboardInterrupt, SystemExit):
            log(f"interrupted during {name}; what was measured is in {state_path}: rerun with --resume to go on")
            raise
        except Exception as exc:
            log(f"  {name}: failed: {one_line(exc)}")
            state.fail(name, exc)

    payload, table, written = _report(options, ctx, units, state, texts, out, progress, has_graph)
    failed = state.data["failed"]
    if failed:
        log(f"{len(failed)} of {len(units) + len(js_units)} systems and JS runs failed (the rest are written; "
            "`--resume` retries only these):")
        for name, reason in failed.items():
            log(f"  {name}: {reason}")
    else:
        state_path.unlink(missing_ok=True)
        shutil.rmtree(ctx.work, ignore_errors=True)  # exported / trained baselines: scratch
    log(table)
    log("wrote " + ", ".join(str(p) for p in written))
    if failed:
        raise BenchFailed(f"{len(failed)} system(s) failed: {'; '.join(map(repr, failed))}; the others are in "
                          f"{out / (options.stem + '.json')}")
    return payload


def _row(unit: Unit, system_state: dict, gflops) -> Row | None:
    """The report row of a system with every measurement done, else None."""
    s = system_state
    if "quality" not in s or "b1_0" not in s or "b1_1" not in s:
        return None
    batched = unit.recipe["kind"] != "student-torch-exit"
    if batched and ("b32_0" not in s or "b32_1" not in s):
        return None
    lat = best_round([s["b1_0"], s["b1_1"]])
    q = s["quality"]
    if isinstance(q, list):  # a state file from before problem types: [accuracy, layers, f1]
        q = {"metrics": {"accuracy": q[0], **({"f1": q[2]} if len(q) > 2 and q[2] is not None else {})},
             "layers": q[1]}
    metrics, layers = dict(q["metrics"]), q["layers"]
    metric = next(m for m in ("accuracy", "micro_f1", "entity_f1", "pearson") if m in metrics or m == "pearson")
    acc, f1 = metrics.pop("accuracy", None), metrics.pop("f1", None)
    b32 = [s["b32_0"], s["b32_1"]] if batched else []
    batches = [t for _, times in b32 for t in times]
    large = [s[k][0] for k in ("b256_0", "b256_1") if k in s]
    kind = s.get("kind") or unit.group
    return Row(name=unit.name, kind=kind, speed=unit.recipe.get("speed"), accuracy=acc, average_layers=layers,
               gflops_per_text=gflops(kind, layers), p50_ms_b1=1e3 * statistics.median(lat),
               p95_ms_b1=1e3 * percentile(lat, 95), throughput_b32=max(r for r, _ in b32) if b32 else None,
               p50_ms_b32=1e3 * statistics.median(batches) if batches else None,
               p95_ms_b32=1e3 * percentile(batches, 95) if batches else None,
               size_mb=s["size_bytes"] / 1e6 if s.get("size_bytes") else None,
               throughput_b256=max(large) if large else None,
               peak_rss_mb=s["rss"]["peak_rss_mb"] if s.get("rss") else None, f1=f1, metric=metric,
               metrics=metrics or None)


def _report(options: BenchOptions, ctx: Context, units: list[Unit], state: State, texts: list[str], out: Path,
            progress: Progress, has_graph: bool):
    manifest = ctx.manifest
    tokens = float(np.mean([len(i) for i in ctx.encoder.token_ids(texts[: options.latency_texts])]))

    def gflops(kind: str, layers: float) -> float | None:
        if manifest.student != "transformer" and kind.startswith("edgekd"):
            return None  # the transformer-layer estimate does not apply to BiLSTM / TextCNN bundles
        if kind.startswith("teacher"):
            shape = ctx.teacher_shape() if ctx.run is not None and ctx.run.teacher.is_dir() else None
            return shape and shape["layers"] * layer_gflops(shape["hidden"], shape["ffn"], tokens)
        ffn = ctx.student.config.ffn_size if ctx.run is not None and hasattr(ctx.student.config, "ffn_size") \
            else 4 * manifest.hidden_size
        return layers * layer_gflops(manifest.hidden_size, ffn, tokens)

    rows = []
    for unit in units:
        s = state.system(unit.name)
        if unit.name in state.data["failed"]:
            continue
        row = _row(unit, s, gflops)
        if row is not None:
            rows.append(row)
    for js_rows in state.data["js"].values():
        rows += [Row(**r) for r in js_rows]
    report.add_ratios(rows, {"teacher_torch": "teacher, PyTorch eager", "teacher_onnx": "teacher, one ONNX graph",
                             "student_onnx": "student, one ONNX graph"})
    keys = [k for k in ("b1_speedup_vs_teacher_torch", "b1_speedup_vs_teacher_onnx", "b1_speedup_vs_student_onnx",
                        "b32_throughput_vs_student_onnx") if any(k in r.ratios for r in rows)]
    bundle = Path(options.bundle)
    title = (f"{bundle.name} on {Path(options.data).name} ({len(texts)} texts; batch-1 latency on "
             f"{min(options.latency_texts, len(texts))})")
    failed = state.data["failed"]
    table = report.markdown(rows, title, keys, failed, metric=main_metric(ctx.problem))
    main = ctx.model(bundle, "staged" if manifest.student == "transformer" else "graph")
    payload = {"bundle": str(bundle), "data": str(options.data), "texts": len(texts), "machine": report.machine(),
               "manifest_default_speed": manifest.default_speed, "rows": [asdict(r) for r in rows],
               "failed": failed, "staged_overhead": report.staged_overhead(rows, main.num_layers + 1),
               "exit_efficiency": report.exit_efficiency(rows, main.num_layers),
               "stage_times_ms": None, "js_vs_python": report.js_vs_python(rows),
               "precision_pairs": report.precision_pairs(rows, precision_pairs_of(units))}
    if not main.full:
        front, layers = layer_times(main, texts[: options.latency_texts], repeats=2)
        payload["stage_times_ms"] = {"tokenize_embed": 1e3 * front, "layers": [1e3 * t for t in layers]}
    for p in payload["precision_pairs"]:
        table += (f"\n{p['other']} vs {p['fp32']}: {p['b1_speedup']:.2f}x faster at batch 1, "
                  f"{p['b32_throughput_ratio']:.2f}x throughput at batch 32, "
                  f"{main_metric(ctx.problem).replace('_', '-')} "
                  f"{p['accuracy_change_points']:+.2f} points.\n")
    if payload["staged_overhead"]:
        o = payload["staged_overhead"]
        table += (f"\nStaged runtime at speed 0 vs the same student as one graph: {o['b1_ratio']:.3f}x at batch 1, "
                  f"{o['b32_ratio']:.3f}x at batch 32 (throughput); overhead per stage at batch 1: "
                  f"{o['per_stage_us_b1']:.0f} us.\n")
    for e in payload["exit_efficiency"]:
        table += (f"\nExit efficiency of {e['system']} ({e['average_layers']:.2f} of {main.num_layers} layers): "
                  f"{e['b1']:.2f} at batch 1, {e['b32']:.2f} at batch 32 "
                  "(full graph's latency x layers used / all layers, over this latency).\n")
    for j in payload["js_vs_python"]:
        table += f"\n{j['js']} vs {j['python']}: {j['b1_ratio']:.2f}x the batch-1 latency.\n"
    if has_graph and ctx.work is not None:  # what each target's app downloads (edgekd pack)
        from edgekd.pack import sizes

        payload["bytes_per_target"] = {Path(b).name: sizes(b, ctx.work / "packs")
                                       for b in [options.bundle, *options.also]}
        mb = (lambda v: "-" if v is None else format(v / 1e6, ".2f"))  # noqa: E731 - one cell
        table += "\n| bundle | all (stage graphs + model.onnx) MB | web (model.onnx) MB | mobile (model.ort) MB | " \
                 "hf (transformers.js / Optimum folder) MB |\n|---|---|---|---|---|\n" + "".join(
                     f"| {name} | {mb(v['all'])} | {mb(v['web'])} | {mb(v['mobile'])} | {mb(v.get('hf'))} |\n"
                     for name, v in payload["bytes_per_target"].items())
        table += "(mobile: - where model.onnx is built from fused kernels: `export --graph-form portable` makes it)\n"
    stem = options.stem
    written = []
    if options.profile and has_graph:
        target = out / f"{stem}_profile.json"
        graph = ctx.model(bundle, "graph")
        progress.step("profile", 1, 1, "model.onnx", 32)
        ms_by_op = profile_graph(graph, texts[:32], target)
        payload["profile"] = report.profile_markdown(ms_by_op, min(32, len(texts)), manifest.default_speed,
                                                     target.name)
        table += "\n" + payload["profile"]["markdown"]
        written.append(target)
        # kernels per text at batch 1 (one thread, default options), at speed 0 and at the default speed
        sample = texts[: min(50, len(texts))]
        kernels = {f"{s:g}": kernel_profile(graph, sample, s) for s in sorted({0.0, manifest.default_speed})}
        payload["kernels"] = kernels
        payload["kernels_per_text"] = kernels["0"]["kernels_per_text"]
        payload["kernels_per_layer"] = kernels["0"]["kernels_per_layer"]
        table += (f"\nmodel.onnx at batch 1 (one thread): {payload['kernels_per_text']:.1f} kernels per text at speed "
                  f"0, {payload['kernels_per_layer']:.1f} per layer; by group at each speed in the JSON (`kernels`)\n")
    if options.competitors:
        payload["pareto"] = report.pareto(rows)
        table += "\n" + payload["pareto"]["markdown"]
        pareto_png = out / f"{stem.replace('bench', 'pareto') if 'bench' in stem else stem + '_pareto'}.png"
        report.plot_pareto(rows, pareto_png)
        written.append(pareto_png)
    json_path, md_path, png = out / f"{stem}.json", out / f"{stem}.md", out / f"{stem}.png"
    atomic_write_text(json_path, json.dumps(payload, indent=2) + "\n")
    atomic_write_text(md_path, table)
    report.plot_curves(rows, png)
    return payload, table, [json_path, md_path, png] + written
