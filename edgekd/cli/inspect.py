"""`edgekd inspect`: what a bundle holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgekd.cli.app import app, err, friendly
from edgekd.present import calibration_lines, engine_line, runtime_threads_line, target_lines, threshold_info


@app.command()
@friendly
def inspect(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
    targets: Annotated[bool, typer.Option(
        "--targets",
        help="Also say which mobile execution providers (NNAPI, CoreML) could run model.onnx and the part "
             "graphs, per onnxruntime's own usability checker (needs the onnx package).")] = False,
    profile: Annotated[bool, typer.Option(
        "--profile", help="Run model.onnx at batch 1 under onnxruntime's profiler (one thread), at speed 0 and at "
                          "the default speed: kernels per text and per layer, milliseconds by group of operators, "
                          "estimated GFLOPs per text and GFLOP/s reached.")] = False,
) -> None:
    """Show what a bundle holds: parts and sizes, labels, vocabulary, calibration."""
    from runtime.manifest import read_manifest, resolve_inside, verify_bundle

    manifest = read_manifest(bundle)
    verify_bundle(bundle, manifest)
    if targets:
        _targets(bundle, manifest)
        return
    if profile:
        for line in profile_lines(bundle, manifest):
            typer.echo(line)
        return
    if as_json:
        typer.echo(json.dumps(manifest.to_dict(), indent=2))
        return
    total = 0
    typer.echo(f"bundle {bundle}  (schema {manifest.schema_version}, {manifest.student}, {manifest.precision}, "
               f"opset {manifest.opset})")
    typer.echo(f"labels: {', '.join(manifest.labels)}   max_length {manifest.max_length}   "
               f"hidden {manifest.hidden_size}")
    rule = manifest.rule()
    typer.echo(f"problem: {manifest.problem} (exit rule {rule.name}" +
               (f", scale {manifest.target_scale:g}, patience {rule.patience}" if manifest.target_scale else "") +
               (", a pair of texts per input" if manifest.text_pair else "") + ")")
    if manifest.problem == "multi-label":
        info = threshold_info(manifest)
        typer.echo(f"thresholds ({info['threshold_choice'].get('chosen')}): " +
                   ", ".join(f"{name} {t:.2f}" for name, t in info["thresholds"].items()))
    v = manifest.vocabulary
    kept = (f"{v.kept_size} of {v.original_size} tokens kept" if v.kept_size != v.original_size
            else f"{v.original_size} tokens")
    if v.remapped_token_share is not None:
        kept += f" ({100 * v.remapped_token_share:.2f}% of measured tokens remapped)"
    typer.echo(f"vocabulary: {kept}")
    typer.echo("parts:")
    for part in manifest.parts:
        size = resolve_inside(bundle, part.file).stat().st_size
        total += size
        typer.echo(f"  {part.index:>2}  {part.kind:<6} {part.file:<16} {size / 1e6:8.2f} MB")
    typer.echo(f"total {total / 1e6:.2f} MB   default speed {manifest.default_speed:g}")
    cal = manifest.calibration
    if cal:
        typer.echo(f"calibration ({cal.data}; {cal.machine}; {cal.rule or 'no rule'}):")
        for line in calibration_lines(cal.points, cal.metric, manifest.default_speed):
            typer.echo(line)
        g = cal.guarantee
        if g:
            typer.echo(f"promise: at most {100 * g['budget']:g}% of rows {g['loss']}, with probability "
                       f"{g['confidence']:g} ({g['rows']} rows; {g['losses']} were at speed {g['speed']:g}; upper "
                       f"bound {100 * g['bound']:.2f}%)")
        threads = runtime_threads_line(bundle)
        if threads:
            typer.echo(threads)
    typer.echo(engine_line(bundle) or "engine: graph (model.onnx) on CPU, staged with device='cuda' (the defaults; "
               "`edgekd calibrate` measures both here)" if manifest.graph else "engine: staged (no model.onnx)")
    q = manifest.quantization
    if q:
        typer.echo(f"int8: {q['chosen']} ({q['why']})")


def _targets(bundle: Path, manifest) -> None:
    """inspect --targets: the mobile-provider report, measured now (or the one recorded at export)."""
    from runtime.errors import EdgeKDError

    try:
        import onnx  # noqa: F401  (the checker reads graphs with it)
    except ImportError:
        if manifest.mobile_providers is None:
            raise EdgeKDError("inspect --targets needs the onnx package: pip install 'edgekd[train]' (or onnx)")
        err("onnx is not installed: showing the report recorded at export")
        report = manifest.mobile_providers
    else:
        from exporters.targets import bundle_targets

        report = bundle_targets(bundle, manifest)
    for line in target_lines(report):
        typer.echo(line)


PROFILE_TEXTS = ["a gripping film", "dull and far too long", "the plot is thin , but the cast makes it worth a look",
                 "not bad at all", "one of the most tedious films of the year , with a script that goes nowhere",
                 "superb", "it is a film about people who talk", "funny , warm and never less than charming"]


def profile_lines(bundle: Path, manifest) -> list[str]:
    """inspect --profile: the kernel profile of model.onnx at speed 0 and at the default speed."""
    import runtime
    from edgekd.bench.measure import layer_gflops
    from runtime.errors import EdgeKDError
    from runtime.timing import kernel_profile

    if manifest.graph is None:
        raise EdgeKDError(f"{bundle} has no model.onnx to profile")
    model = runtime.load(bundle, engine="graph")
    texts = [(t, t[::-1]) for t in PROFILE_TEXTS] if manifest.text_pair else PROFILE_TEXTS
    student = (manifest.source or {}).get("student", {})
    ffn = student.get("ffn_size") or 4 * manifest.hidden_size
    tokens = sum(len(ids) for ids in model.encoder.tokens(model.items(texts))[0]) / len(texts)
    lines = [f"model.onnx at batch 1, one thread, {len(texts)} texts of {tokens:.1f} tokens on average:"]
    for speed in sorted({0.0, manifest.default_speed}):
        p = kernel_profile(model, texts, speed)
        layers = float(model.outputs(texts, speed=speed)[1].mean())
        gflops = layers * layer_gflops(manifest.hidden_size, ffn, tokens)
        lines.append(f"  speed {speed:g}: {p['kernels_per_text']:.1f} kernels per text ({p['kernels_per_layer']:.1f} "
                     f"per layer), {p['ms_per_text']:.3f} ms, {layers:.2f} layers, {gflops:.4f} GFLOPs per text "
                     f"({gflops / max(p['ms_per_text'], 1e-9) * 1e3:.2f} GFLOP/s)")
        lines += [f"    {group:<26} {ms:8.4f} ms  {100 * ms / max(p['ms_per_text'], 1e-9):5.1f}%"
                  for group, ms in p["ms_by_group"].items()]
    return lines
