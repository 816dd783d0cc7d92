"""The systems one `edgekd bench` run measures, in the order of the report's rows: the groups the options enable
(and --systems / --skip choose), each system a named recipe (edgekd.bench.registry builds it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekd.bench.options import BenchOptions
from edgekd.bench.registry import GROUPS, Context
from runtime.errors import EdgeKDError
from runtime.exits import TOKENS
from runtime.manifest import read_manifest


@dataclass
class Unit:
    """One system of the plan: its row name, the group that selects it, and its recipe."""
    name: str
    group: str
    recipe: dict



def selected_groups(options: BenchOptions) -> set[str]:
    """The groups this run measures; unknown names are refused with the list."""
    enabled = {"edgekd-staged", "edgekd-graph"}
    if options.thread_study:
        enabled.add("edgekd-threads")
    if options.run_dir:
        enabled |= {"teacher-torch", "teacher-onnx", "student-onnx", "student-torch-exit"}
    if options.competitors:
        enabled |= {"fasttext", "tfidf-lr", "crf"} | ({"teacher-optimum", "model2vec"} if options.run_dir else set())
    if options.js:
        enabled |= {"node", "browser"}
    named = list(options.systems or []) + list(options.skip)
    unknown = [n for n in named if n not in GROUPS]
    if unknown:
        raise EdgeKDError(f"unknown system(s) {', '.join(unknown)}; the systems are: {', '.join(GROUPS)}")
    chosen = set(options.systems) if options.systems else enabled
    needs_run = {"teacher-torch", "teacher-onnx", "teacher-optimum", "student-onnx", "student-torch-exit", "model2vec"}
    if not options.run_dir and chosen & needs_run:
        raise EdgeKDError(f"{', '.join(sorted(chosen & needs_run))} need the run folder: give --run RUN_DIR")
    return chosen - set(options.skip)


def plan(options: BenchOptions, ctx: Context, speeds: list[float], groups: set[str]) -> list[Unit]:
    """Every system in the order of the report's rows."""
    units: list[Unit] = []

    def add(name: str, group: str, kind: str, **settings) -> None:
        if group in groups and name not in {u.name for u in units}:
            units.append(Unit(name, group, ctx.recipe(kind, **settings)))

    manifest = ctx.manifest
    transformer = manifest.student == "transformer"
    engine = "staged" if transformer else "graph"
    has_graph = transformer and manifest.graph is not None
    if ctx.run is not None:
        if ctx.run.teacher.is_dir():
            config = ctx.teacher_shape()
            add("teacher, PyTorch eager", "teacher-torch", "teacher-torch")
            add("teacher, one ONNX graph", "teacher-onnx", "teacher-onnx", layers=config["layers"])
            add("teacher, fused + dynamic int8 (Optimum way)", "teacher-optimum", "teacher-optimum", **config)
        add("student, one ONNX graph", "student-onnx", "student-onnx", layers=manifest.num_layers)
        if transformer:  # an early-exit student (BiLSTM / TextCNN have no exits)
            speed = manifest.default_speed or 0.3
            add(f"student, PyTorch per-sample exit b1, speed {speed:g}", "student-torch-exit", "student-torch-exit",
                speed=speed)
    problem = ctx.problem
    if problem == TOKENS:  # the classic tagger; the text classifiers below have no tags
        add("CRF on word features (sklearn-crfsuite)", "crf", "crf")
    elif problem != "regression":  # fastText has no regression
        add("fastText (supervised, bigrams" + (", one-vs-all)" if problem == "multi-label" else ")"), "fasttext",
            "fasttext")
    head = {"regression": "ridge regression", "multi-label": "one-vs-rest logistic regression"}.get(
        problem, "logistic regression")
    if problem != TOKENS:
        add(f"TF-IDF + {head}", "tfidf-lr", "tfidf-lr")
    if ctx.run is not None and ctx.run.teacher.is_dir() and problem != TOKENS:
        head = {"regression": "ridge", "multi-label": "one-vs-rest LR"}.get(problem, "LR")
        add(f"model2vec (distilled from the teacher, PCA 256) + {head}", "model2vec", "model2vec")

    def edgekd_units(bundle: Path, speed: float, precision: str) -> list[str]:
        tag = "" if precision == "fp32" else f" {precision}"
        names = [f"edgekd{tag} {engine}, speed {speed:g}"]
        add(names[0], "edgekd-staged" if engine == "staged" else "edgekd-graph", "edgekd",
            system_bundle=str(bundle), engine=engine, speed=speed)
        if has_graph:
            names.append(f"edgekd{tag} graph, speed {speed:g}")
            add(names[1], "edgekd-graph", "edgekd", system_bundle=str(bundle), engine="graph", speed=speed)
        return names

    for speed in speeds:
        add(f"edgekd {engine}, speed {speed:g}", "edgekd-staged" if engine == "staged" else "edgekd-graph", "edgekd",
            system_bundle=str(ctx.bundle), engine=engine, speed=speed)
    if has_graph:
        for speed in speeds:
            add(f"edgekd graph, speed {speed:g}", "edgekd-graph", "edgekd", system_bundle=str(ctx.bundle),
                engine="graph", speed=speed)
    if options.thread_study and transformer:
        for threading, label in (("nospin", "pools never spin"), ("spin", "pools spin when idle (ORT default)")):
            add(f"edgekd staged, speed 0, {label}", "edgekd-threads", "edgekd", system_bundle=str(ctx.bundle),
                engine="staged", speed=0.0, threading=threading, variant=f", {label}")
    for other in options.also:
        extra = read_manifest(other)
        for speed in sorted({0.0, manifest.default_speed, extra.default_speed}):
            edgekd_units(ctx.bundle, speed, "fp32")
            edgekd_units(Path(other), speed, extra.precision)
    if manifest.default_speed:
        edgekd_units(ctx.bundle, manifest.default_speed, "fp32")
    return _in_speed_order(units)


def _in_speed_order(units: list[Unit]) -> list[Unit]:
    """The edgekd rows of each bundle, engine and variant in the order of their speeds (the default speed's rows
    were added last), after every other row, which keeps its place."""
    others = [u for u in units if u.recipe["kind"] != "edgekd"]
    ours = [u for u in units if u.recipe["kind"] == "edgekd"]
    first_seen: dict[tuple, int] = {}
    for i, u in enumerate(ours):
        first_seen.setdefault((u.recipe["system_bundle"], u.recipe["engine"], u.recipe.get("variant", "")), i)

    def key(u: Unit):
        group = (u.recipe["system_bundle"], u.recipe["engine"], u.recipe.get("variant", ""))
        return first_seen[group], u.recipe["speed"]

    return others + sorted(ours, key=key)


def precision_pairs_of(units: list[Unit]) -> list[tuple[str, str]]:
    """(fp32 row, other-precision row) at the same speed and engine, for the --also bundles."""
    by_key = {}
    for u in units:
        r = u.recipe
        if r["kind"] == "edgekd" and not r.get("variant"):
            by_key.setdefault((r["engine"], r["speed"]), []).append(u)
    pairs = []
    for group in by_key.values():
        main = [u for u in group if u.recipe["system_bundle"] == u.recipe["bundle"]]
        pairs += [(main[0].name, u.name) for u in group if main and u is not main[0]]
    return pairs
