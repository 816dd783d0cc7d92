"""The report of a bench run: tables, ratios inside the run, plots, the accuracy/latency frontier,
and the derived figures (staged overhead, exit efficiency, JS against Python, precision pairs).

Everything here reads finished `Row`s; nothing measures.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from edgekd.bench.measure import Row
from runtime.files import atomic_write


def add_ratios(rows: list[Row], baselines: dict[str, str]) -> None:
    """rows[i].ratios['speedup_vs_<key>'] = baseline p50 / row p50 (batch 1), and throughput ratios."""
    by_name = {r.name: r for r in rows}
    for key, name in baselines.items():
        base = by_name.get(name)
        if base is None:
            continue
        for r in rows:
            r.ratios[f"b1_speedup_vs_{key}"] = base.p50_ms_b1 / r.p50_ms_b1
            if r.throughput_b32 and base.throughput_b32:
                r.ratios[f"b32_throughput_vs_{key}"] = r.throughput_b32 / base.throughput_b32


def ratio_head(key: str) -> str:
    """A ratio's column header in words: b1_speedup_vs_teacher_torch -> "x faster than teacher torch (b1)"."""
    kind, _, base = key.partition("_vs_")
    base = base.replace("_", " ")
    return {"b1_speedup": f"x faster than {base} (b1)", "b32_throughput": f"x throughput of {base} (b32)"}.get(
        kind, key.replace("_", " "))


METRIC_HEADS = {"accuracy": "accuracy %", "micro_f1": "micro-F1 %", "pearson": "Pearson x 100",
                "entity_f1": "entity F1 %"}
SECOND_HEADS = {"micro_f1": "macro-F1 %", "pearson": "Spearman x 100", "entity_f1": "entity precision %"}


def markdown(rows: list[Row], title: str, ratio_keys: list[str], failed: dict[str, str] | None = None,
             metric: str = "accuracy") -> str:
    """The results table (the problem type's main metric first, its second beside F1); systems in `failed`
    (name -> one-line reason) get a row that says so."""
    head = ["system", "speed", METRIC_HEADS[metric], "avg layers", "GFLOPs/text", "p50 ms (b1)", "p95 ms (b1)",
            "p50 ms (b32)", "p95 ms (b32)", "texts/s (b32)", "size MB"]
    extra = [(label, key, spec) for label, key, spec in (("texts/s (b256)", "throughput_b256", ".0f"),
                                                          ("peak RSS MB", "peak_rss_mb", ".0f"),
                                                          ("F1 %", "f1_points", ".2f"),
                                                          (SECOND_HEADS.get(metric, ""), "second_points", ".2f"))
             if any(getattr(r, key, None) is not None for r in rows)]
    head += [label for label, _, _ in extra] + [ratio_head(k) for k in ratio_keys]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    for r in rows:
        cells = [r.name, fmt(r.speed, "g"), f"{100 * r.main:.2f}", f"{r.average_layers:.2f}",
                 fmt(r.gflops_per_text, ".3f"), f"{r.p50_ms_b1:.3f}", f"{r.p95_ms_b1:.3f}",
                 fmt(r.p50_ms_b32, ".2f"), fmt(r.p95_ms_b32, ".2f"), fmt(r.throughput_b32, ".0f"),
                 fmt(r.size_mb, ".1f")]
        cells += [fmt(getattr(r, key), spec) for _, key, spec in extra]
        cells += [fmt(r.ratios.get(k), ".2f") for k in ratio_keys]
        lines.append("| " + " | ".join(cells) + " |")
    for name, reason in (failed or {}).items():
        lines.append(f"| {name} | failed: {reason.replace('|', '/')} |" + " |" * (len(head) - 2))
    return "\n".join(lines) + "\n"


def machine() -> dict[str, str]:
    import onnxruntime as ort

    return {"machine": platform.machine(), "processor": platform.processor(), "cores": str(os.cpu_count()),
            "python": platform.python_version(), "onnxruntime": ort.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


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
                    "accuracy_change_points": 100 * (b.main - a.main)})
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
        ax.plot([getattr(r, x) for r in curve], [100 * r.main for r in curve], "o-", ms=4,
                label=CURVE_NAMES.get(kind, kind))
        for r in curve:
            ax.annotate(f"{r.speed:g}", (getattr(r, x), 100 * r.main), fontsize=6, xytext=(2, 3),
                        textcoords="offset points")


def plot_curves(rows, path: Path) -> None:
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
            ax.plot(getattr(r, x), 100 * r.main, "s", label=r.name)
        ax.set_xlabel(label)
        ax.set_ylabel(f"dev {METRIC_HEADS[rows[0].metric] if rows else 'accuracy %'}")
        ax.grid(alpha=0.3)
    axes[0].set_xscale("log")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def pareto(rows) -> dict:
    """Which systems no other system beats on both accuracy and batch-1 latency; for each edgekd
    compiled-graph point, any system that does ("dominated_by")."""
    points = [r for r in rows if r.kind not in ("edgekd-variant",) and r.p50_ms_b1]
    front = [r.name for r in points if not any(o.main > r.main and o.p50_ms_b1 < r.p50_ms_b1 for o in points)]
    edgekd = [r for r in points if r.kind.startswith("edgekd-graph")]
    others = [r for r in points if not r.kind.startswith("edgekd")]
    beaten = {r.name: [o.name for o in others if o.main > r.main and o.p50_ms_b1 < r.p50_ms_b1]
              for r in edgekd}
    lines = ["### Accuracy / batch-1 latency frontier", "",
             f"| system | {METRIC_HEADS[points[0].metric] if points else 'accuracy %'} | p50 ms b1 | on the frontier |",
             "|---|---|---|---|"]
    for r in sorted(points, key=lambda r: r.p50_ms_b1):
        lines.append(f"| {r.name} | {100 * r.main:.2f} | {r.p50_ms_b1:.3f} | {'yes' if r.name in front else ''} |")
    lines.append("")
    worst = {k: v for k, v in beaten.items() if v}
    lines.append("No baseline is both more accurate and faster than any edgekd compiled-graph point." if not worst else
                 "edgekd points beaten on both axes: " + "; ".join(f"{k} by {', '.join(v)}" for k, v in worst.items()))
    return {"frontier": front, "edgekd_dominated_by": beaten, "markdown": "\n".join(lines) + "\n"}


def plot_pareto(rows, path: Path) -> None:
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
            ax.plot(r.p50_ms_b1, 100 * r.main, next(markers, "s"), ms=7, label=r.name)
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency at batch 1 (ms, log scale)")
    ax.set_ylabel(f"dev {METRIC_HEADS[rows[0].metric] if rows else 'accuracy %'}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def profile_markdown(ms_by_op: dict[str, float], batch: int, speed: float, file: str) -> dict:
    """The profile's record and table: the top operators by kernel time."""
    total = sum(ms_by_op.values()) or 1.0
    top = sorted(ms_by_op.items(), key=lambda kv: -kv[1])[:12]
    lines = [f"### Where the time goes: one batch of {batch} through model.onnx at speed {speed:g} "
             f"(onnxruntime profile, {file})", "", "| operator | ms | share |", "|---|---|---|"]
    lines += [f"| {op} | {ms:.3f} | {100 * ms / total:.1f}% |" for op, ms in top]
    return {"file": file, "ms_by_op": dict(top), "kernel_ms": total, "markdown": "\n".join(lines) + "\n"}
