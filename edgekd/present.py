"""Bundle facts as lines of text for the terminal: calibration tables, the engine and thread choices, the
mobile-provider report (the CLI prints them; the card writes its own Markdown beside them in edgekd.card)."""

from __future__ import annotations

from pathlib import Path

from runtime.task import METRICS


def target_lines(report: dict) -> list[str]:
    """The report as text, one provider a line per graph."""
    out = [f"mobile execution providers ({report['precision']} graphs; onnxruntime's usability checker):"]
    for file, graph in report["graphs"].items():
        dynamic = f"dynamic inputs: {', '.join(graph['dynamic_inputs'])}" if graph["dynamic_inputs"] else "fixed shapes"
        out.append(f"  {file} ({dynamic}); recommended: {graph['recommendation']}")
        for name, p in graph["providers"].items():
            text = (f"    {name:<21} {p['supported_nodes']}/{p['nodes']} nodes in {p['partitions']} partitions, "
                    f"verdict {p['verdict']}")
            if p["unsupported_ops"]:
                text += f"; unsupported ops: {', '.join(p['unsupported_ops'])}"
            fixed = p.get("with_fixed_shapes")
            if fixed:
                text += (f"; with fixed shapes {fixed['supported_nodes']}/{fixed['nodes']} nodes in "
                         f"{fixed['partitions']} partitions, verdict {fixed['verdict']}")
            out.append(text)
    return out


def engine_line(bundle: Path) -> str | None:
    """Which engine runtime.load(engine="auto") takes for this bundle and why (calibration's timings), or None."""
    from runtime.manifest import read_manifest

    cal = read_manifest(bundle).calibration
    if not cal or not cal.engine or not cal.engine_latency_ms:
        return None
    ms = cal.engine_latency_ms
    other = next(e for e in ms if e != cal.engine)
    return (f"engine: {cal.engine} (measured faster here at the default speed: {ms[cal.engine]:.3f} ms per text at "
            f"batch 1 against {other}'s {ms[other]:.3f} ms; runtime.load(engine=...) overrides it)")


def runtime_threads_line(bundle: Path) -> str | None:
    """One line on the thread use calibrate measured (calibration.threads), or None."""
    from runtime.manifest import read_manifest

    cal = read_manifest(bundle).calibration
    policy = cal.threads if cal else None
    if not policy:
        return None
    b1, large = policy["batch_1"], next(v for k, v in policy.items() if k.startswith("batch_") and k != "batch_1")
    b1_threads = "one thread" if b1["chosen"] == "one" else "default threads"
    return (f"threads ({policy['cores']} cores): batch 1 on {b1_threads} "
            f"({b1['ms']['default']:.3f} ms default vs {b1['ms']['one']:.3f} ms one), large batches "
            f"{'split across cores' if large['chosen'] == 'split' else 'whole'} ({large['texts_per_s']['whole']:.0f} "
            f"vs {large['texts_per_s']['split']:.0f} texts/s split)")


def calibration_lines(points, metric: str = "accuracy", chosen: float | None = None) -> list[str]:
    """A calibration table as text: speed, the problem type's metrics (x 100), average layers, latency."""
    from edgekd.card import shown_points

    names = list(next(m for m in METRICS.values() if m[0] == metric)) + (["f1"] if metric == "accuracy" else [])
    names = [n for n in names if n != "f1" or any(p.f1 is not None for p in points)]

    def value(p, name):
        v = p.accuracy if name == "accuracy" else p.f1 if name == "f1" else (p.metrics or {}).get(name)
        return "-" if v is None else f"{100 * v:.2f}"

    widths = [max(10, len(n) + 2) for n in names]  # entity-precision is wider than a number
    lines = ["   speed" + "".join(f"{n.replace('_', '-'):>{w}}" for n, w in zip(names, widths)) +
             "  avg layers  latency ms"]
    for p in shown_points(points, chosen):
        latency = f"{p.latency_ms:10.3f}" if p.latency_ms is not None else "         -"
        lines.append(f"  {p.speed:6g}" + "".join(f"{value(p, n):>{w}}" for n, w in zip(names, widths)) +
                     f"  {p.average_layers:10.2f}  {latency}" + ("  <- chosen" if p.speed == chosen else ""))
    return lines


def threshold_info(manifest) -> dict:
    """A multi-label bundle's per-label thresholds (0.5 when export chose none) and how they were chosen."""
    if manifest.problem != "multi-label":
        return {}
    values = manifest.thresholds or [0.5] * len(manifest.labels)
    choice = manifest.threshold_choice or {"chosen": "0.5 for every label (no --data at export)"}
    return {"thresholds": dict(zip(manifest.labels, values)), "threshold_choice": choice}
