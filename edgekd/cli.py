"""The `edgekd` command: a thin typer layer over public functions.

Heavy imports (torch, transformers, onnx) happen inside command bodies, so
`edgekd --help` is instant and torch-free.
"""

from __future__ import annotations

import json
import sys
from functools import wraps
from pathlib import Path
from typing import Annotated, Optional

import typer

# The stages of `edgekd distill`, as edgekd.config.STAGES runs them (a test keeps the two equal; the config is
# not imported here so that `edgekd --help` stays instant).
DISTILL_STAGES = "teacher,refine,attention,baseline,finetune,branches"

app = typer.Typer(
    help="Distil BERT-family classifiers into early-exit students, export them as bundles whose model.onnx runs "
    "early exit in any ONNX Runtime, and run them without torch (Python, Node, the browser).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"edgekd {version('edgekd')}")
        except PackageNotFoundError:
            typer.echo("edgekd (not installed as a package)")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Distil BERT-family classifiers into early-exit students, export them as bundles whose model.onnx
    runs early exit in any ONNX Runtime, and run them without torch (Python, Node, the browser)."""


def friendly(command):
    """Print edgekd's own errors (bad input, bad bundle: EdgeKDError and its kinds) as one message and exit 2;
    any other exception is a bug and keeps its traceback."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        from runtime.errors import EdgeKDError

        try:
            return command(*args, **kwargs)
        except EdgeKDError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _err(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
@friendly
def distill(
    teacher: Annotated[str, typer.Option(help="Teacher: a local Hugging Face folder (BERT family), or a hub id with --online.")] = "",
    train: Annotated[str, typer.Option(help="Labelled training file (TSV, CSV or JSONL).")] = "",
    dev: Annotated[str, typer.Option(help="Labelled dev file; accuracy is reported after each stage.")] = "",
    out: Annotated[str, typer.Option(help="Run folder. Re-running with the same folder resumes.")] = "",
    unlabeled: Annotated[str, typer.Option(help="Unlabelled text (.txt, one per line, or a labelled file's text) for the attention and branches stages; default: the train texts.")] = "",
    text_column: Annotated[Optional[str], typer.Option(help="Text column of the data files (default: sentence, text, content, review, ...).")] = None,
    text_pair_column: Annotated[Optional[str], typer.Option(help="Second text column: the data are text pairs (paraphrase, entailment, duplicate questions, reranking). Found without the flag when the files have sentence1/sentence2, question1/question2, premise/hypothesis, text/text_pair or query/passage.")] = None,
    label_column: Annotated[Optional[str], typer.Option(help="Label column of the data files (default: label, labels, class, ...).")] = None,
    label_names: Annotated[Optional[str], typer.Option(help="Names for the data's labels in their sorted order: comma-separated (negative,positive for SST-2's 0,1) or @FILE with one name a line (@../shared/data/goemotions/labels.txt); predictions then print names.")] = None,
    problem: Annotated[Optional[str], typer.Option(help="single-label (one class per text, softmax) | multi-label (any number of labels, sigmoids) | regression (a number). Default: the teacher's config.problem_type, else found from the labels (a cell listing several labels such as 8,20 -> multi-label; numbers not all whole -> regression).")] = None,
    standardize: Annotated[Optional[bool], typer.Option("--standardize/--no-standardize", help="Regression: train in units of the training targets' standard deviation (every MSE / s^2), new heads starting at their mean (the default for regression: STS-B's student 84.75 Pearson against 82.54); the bundle answers in the data's units either way.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Start over: remove an existing run folder at --out first (default: resume it).")] = False,
    student: Annotated[Optional[str], typer.Option(help="Student kind: transformer (early exit) | bilstm | textcnn.")] = None,
    layers: Annotated[Optional[int], typer.Option(help="Student layers (one exit head each).")] = None,
    hidden: Annotated[Optional[int], typer.Option(help="Student width.")] = None,
    heads: Annotated[Optional[int], typer.Option(help="Student attention heads.")] = None,
    ffn: Annotated[Optional[int], typer.Option(help="Student feed-forward size.")] = None,
    head_type: Annotated[Optional[str], typer.Option(help="Exit head: mean | cls | attention.")] = None,
    init: Annotated[Optional[str], typer.Option(help="Student init: auto (teacher where the family's layers can be copied, else random) | teacher (layer + width selection) | random.")] = None,
    student_init: Annotated[Optional[str], typer.Option("--student-init", help="Start the student from this BERT-family checkpoint's layers instead of the teacher's (e.g. for a DeBERTa or ModernBERT teacher).")] = None,
    vocab_keep: Annotated[Optional[float], typer.Option(help="GLMD vocabulary compression: keep this fraction of the tokens (0 < f <= 1).")] = None,
    vocab_size: Annotated[Optional[int], typer.Option(help="GLMD vocabulary compression: keep this many tokens (instead of --vocab-keep).")] = None,
    augment: Annotated[Optional[int], typer.Option(help="Transfer set N x the labelled rows (masked words, embedding-neighbour swaps, n-gram spans; labelled by the teacher) for the attention and finetune stages. Default: on below 20k labelled rows (factor printed); 0 turns it off.")] = None,
    stages: Annotated[Optional[str], typer.Option(help="Comma-separated stages, run in this order: " + DISTILL_STAGES + ".")] = None,
    epochs: Annotated[Optional[float], typer.Option(help="Epochs for every stage.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Steps for every stage (overrides epochs).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size for every stage.")] = None,
    max_length: Annotated[Optional[int], typer.Option(help="Tokens per text.")] = None,
    kd: Annotated[Optional[str], typer.Option(help="Task distillation: soft (temperature KL) | mse (logits).")] = None,
    objective: Annotated[Optional[str], typer.Option(help="Attention stage: relations (attention + value KL) | word (GLMD word prediction) | both.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda.")] = None,
    config: Annotated[Optional[str], typer.Option(help="JSON config file (see config.json in any run folder).")] = None,
    preset: Annotated[Optional[str], typer.Option(help="quick (every labelled row, 40k unlabelled; teacher and finetune train until dev stops improving, at least 1 / 2 epochs, at most 10 / 6: ~40 min for SST-2 on 2 cores) | full (longer schedule, max length 128; GPU advised) | tiny (seconds: smoke tests).")] = None,
    online: Annotated[bool, typer.Option(help="Allow hub downloads for --teacher.")] = False,
    keep_checkpoints: Annotated[bool, typer.Option(help="Keep each finished stage's resume checkpoint (with optimizer state: several times the model's size); by default only what later stages and export read is kept.")] = False,
) -> None:
    """Fine-tune the teacher and distil an early-exit student into a run folder.

    Stages: teacher (fine-tune teacher + classifier), refine (two-teacher label
    refinement), attention (last-layer attention + value-relation KL on unlabelled
    text), baseline (same student, cross-entropy only, for comparison), finetune
    (cross-entropy + distillation from teacher logits), branches (exit heads
    self-distilled from the trunk). --teacher, --train, --dev and --out are required
    unless --config gives them.
    """
    from edgekd.config import optim_overrides, resolve_config
    from edgekd.distill.pipeline import distill as run_distill

    overrides: dict = {}
    for key, value in (("teacher", teacher), ("out", out)):
        if value:
            overrides[key] = value
    data = {k: v for k, v in (("train", train), ("dev", dev), ("unlabeled", unlabeled), ("max_length", max_length),
                              ("text_column", text_column), ("text_pair_column", text_pair_column),
                              ("label_column", label_column)) if v}
    if augment is not None:
        data["augment"] = augment
    if label_names:
        from edgekd.data import label_names_option

        data["label_names"] = label_names_option(label_names)
    if problem:
        data["problem"] = problem
    if standardize is not None:
        data["standardize"] = standardize
    shape = {k: v for k, v in (("kind", student), ("layers", layers), ("hidden", hidden), ("heads", heads), ("ffn", ffn),
                                 ("head_type", head_type), ("init", init), ("init_from", student_init), ("vocab_keep", vocab_keep), ("vocab_size", vocab_size)) if v is not None}
    if data:
        overrides["data"] = data
    if shape:
        overrides["student"] = shape
    if stages:
        overrides["stages"] = [s.strip() for s in stages.split(",") if s.strip()]
    if seed is not None:
        overrides["seed"] = seed
    if device:
        overrides["device"] = device
    if online:
        overrides["offline"] = False
    if keep_checkpoints:
        overrides["keep_checkpoints"] = True
    if kd:
        overrides["finetune"] = {"kd": kd}
    if objective:
        overrides["attention"] = {"objective": objective}
    for key, value in optim_overrides(epochs, max_steps, batch_size).items():
        overrides[key] = {**overrides.get(key, {}), **value}
    cfg = resolve_config(config, preset, overrides)
    run = run_distill(cfg, log=_err, overwrite=overwrite)
    _err(f"run folder: {run}  (next: edgekd export {run} --out BUNDLE)")


@app.command()
@friendly
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by `edgekd distill` (its student/).")],
    out: Annotated[Path, typer.Option(help="Bundle folder to write.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle (atomically).")] = False,
    atol: Annotated[float, typer.Option(help="Tolerance of the ONNX-vs-torch check of every stage.")] = 1e-4,
    speed: Annotated[Optional[float], typer.Option(help="Default speed stored in the manifest (instead of calibrating one).")] = None,
    quantize: Annotated[str, typer.Option(help="fp32 | int8 (CPU) | fp16 (GPU).")] = "fp32",
    int8: Annotated[str, typer.Option(help="With --quantize int8: auto | dynamic | dynamic-per-channel | static | static-per-channel. auto builds each on --data (static ones calibrated on its texts), compares every exit's labels with fp32 and times them here, and keeps the fastest that agrees on >= 99% (dynamic when there is no --data); the record goes into the manifest.")] = "auto",
    data: Annotated[Optional[Path], typer.Option(help="Held-out labelled file: the default speed is calibrated on it, and a quantized bundle's agreement with fp32 measured [default: the run's dev set, which is optimistic since it also chose the checkpoints].")] = None,
    max_drop: Annotated[Optional[float], typer.Option(help="Calibration budget: accuracy points allowed below full depth [default: 1.0].")] = None,
    calibrate: Annotated[bool, typer.Option("--calibrate/--no-calibrate", help="Choose the default speed by measurement, so early exit is on (--no-calibrate, or --speed, keeps a fixed speed).")] = True,
    vocab_keep: Annotated[Optional[float], typer.Option(help="Compress the vocabulary (GLMD): keep this fraction of the tokens (0 < f <= 1).")] = None,
    vocab_size: Annotated[Optional[int], typer.Option(help="Compress the vocabulary (GLMD): keep this many tokens (instead of --vocab-keep).")] = None,
    vocab_metric: Annotated[str, typer.Option(help="Nearest kept token by dot | cosine.")] = "dot",
    optimize: Annotated[str, typer.Option(help="Layer graphs: none (plain) | fused (onnxruntime transformer optimizer) | auto (time both on this machine at batch 1 and 32, keep the faster; the choice and timings go into the manifest). model.onnx always stays plain ONNX.")] = "auto",
    mobile_report: Annotated[bool, typer.Option("--mobile-report/--no-mobile-report", help="Record in the manifest what onnxruntime's mobile usability checker says of the graphs for NNAPI and CoreML (`edgekd inspect --targets` shows it).")] = True,
) -> None:
    """Export a run's student as a bundle: model.onnx (early exit compiled in), one graph per layer, tokenizer,
    manifest; every graph checked against torch, model.onnx against the staged graphs."""
    from edgekd.distill.export import export_run

    if calibrate and speed is None:
        if data is None:
            data = run_dev_file(run_dir)
            if data is not None:
                _err(f"calibrating the default speed on the run's dev set ({data}) with --max-drop "
                     f"{1.0 if max_drop is None else max_drop:g}: optimistic, since the same set chose the "
                     "checkpoints; give --data with held-out texts for an honest speed (--no-calibrate keeps speed 0)")
        if data is None:
            _err("no --data and the run's dev set is gone: the default speed stays 0 (every layer); calibrate later "
                 "with `edgekd calibrate BUNDLE --data FILE --max-drop 1`")
        else:
            max_drop = 1.0 if max_drop is None else max_drop
    elif not calibrate:
        max_drop = None
    result = export_run(run_dir, out, overwrite=overwrite, atol=atol, default_speed=speed or 0.0, precision=quantize,
                        int8=int8, data=data, max_drop=max_drop, vocab_keep=vocab_keep, vocab_size=vocab_size,
                        vocab_metric=vocab_metric, optimize=optimize, mobile_report=mobile_report, log=_err)
    worst = max((c.max_diff for c in result.checks), default=0.0)
    _err(f"wrote {result.path} ({len(result.manifest.stages)} stages, {result.manifest.precision}; "
         f"{len(result.checks)} fp32 checks against torch, max diff {worst:.2e} <= atol {atol:g})")
    check = result.manifest.precision_check
    if check:
        metric = check.get("metric", "accuracy")
        for speed_key, row in check["speeds"].items():
            _err(f"  {check['precision']} vs fp32 at speed {speed_key}: predictions agree {100 * row['prediction_agreement']:.2f}%, "
                 f"exit layers {100 * row['exit_agreement']:.2f}%, {metric} {100 * row[metric]:.2f} "
                 f"(fp32 {100 * row[metric + '_fp32']:.2f})")
    if result.manifest.calibration:
        _err(f"  calibrated default speed {result.manifest.default_speed:g} ({result.manifest.calibration.rule})")


@app.command()
@friendly
def predict(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts to classify ('-' reads one per line from stdin). For a bundle of text pairs: the texts two by two (first, second, first, second, ...); on stdin each line holds the two texts separated by a tab.")] = None,
    file: Annotated[Optional[Path], typer.Option(help="Classify every row of this file (.txt lines, or .csv/.tsv/.jsonl with a text column), streaming, in order.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="With --file: write rows here (.jsonl, or .csv by extension); default stdout as JSON Lines.")] = None,
    text_column: Annotated[Optional[str], typer.Option(help="With --file: the text column of a csv/tsv/jsonl file.")] = None,
    text_pair_column: Annotated[Optional[str], typer.Option(help="With --file and a bundle of text pairs: the second text column (found without the flag for the usual pair columns, e.g. question1/question2).")] = None,
    resume: Annotated[bool, typer.Option(help="With --file --out: continue after the last complete row already in OUT.")] = False,
    speed: Annotated[Optional[float], typer.Option(help="Exit threshold in [0, 1]; 0 runs every layer. Default: the bundle's.")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda | auto.")] = "cpu",
    batch_size: Annotated[int, typer.Option(help="Texts per batch.")] = 32,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per text.")] = False,
    engine: Annotated[str, typer.Option(help="graph (model.onnx, exit rule inside) | staged (one graph per layer) | auto (what calibration measured faster).")] = "auto",
) -> None:
    """Classify texts with a bundle (no torch needed): texts as arguments, '-' for stdin, or --file."""
    import runtime

    if file is None and not texts:
        raise runtime.EdgeKDError("give texts to classify, '-' to read them from stdin, or --file PATH")
    if file is not None and texts:
        raise runtime.EdgeKDError("give texts or --file, not both")
    if file is None and (out or text_column or text_pair_column or resume):
        raise runtime.EdgeKDError("--out, --text-column, --text-pair-column and --resume go with --file")
    if texts == ["-"]:
        raw = sys.stdin.buffer.read()
        try:
            decoded = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise runtime.EdgeKDError(f"stdin: line {line} has bytes that are not UTF-8 (at byte {exc.start}); "
                                      "send UTF-8 text") from None
        texts = [line.rstrip("\r") for line in decoded.split("\n") if line.strip()]
    model = runtime.load(bundle, device=device, engine=engine)
    if file is not None:
        from edgekd.apps.predict_file import predict_file

        rows = predict_file(model, file, out, speed=speed, batch_size=batch_size, text_column=text_column,
                            resume=resume, text_pair_column=text_pair_column)
        if out:
            _err(f"wrote {rows} rows to {out}")
        return
    if model.manifest.text_pair:
        if texts and all("\t" in t for t in texts):
            texts = [tuple(t.split("\t", 1)) for t in texts]
        elif len(texts) % 2:
            raise runtime.EdgeKDError(f"this bundle classifies text pairs: give the texts two by two (got "
                                      f"{len(texts)}), or lines 'text<TAB>text_pair' on stdin")
        else:
            texts = list(zip(texts[::2], texts[1::2]))
    results = model.classify(texts, speed=speed, batch_size=batch_size)
    for text, r in zip(texts, results):
        given = {"text": text} if isinstance(text, str) else {"text": text[0], "text_pair": text[1]}
        if as_json:
            typer.echo(json.dumps({**given, **r.to_dict()}))
        else:
            answer = (f"{r.label}\t{r.probs[r.label]:.3f}" if r.label is not None else
                      f"{','.join(r.labels) or '(none)'}" if r.labels is not None else f"{r.score:.4f}")
            typer.echo(f"{answer}\tlayer {r.exit_layer}/{model.num_layers}\t" + "\t".join(given.values()))


@app.command()
@friendly
def inspect(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
    targets: Annotated[bool, typer.Option("--targets", help="Also say which mobile execution providers (NNAPI, CoreML) could run model.onnx and the stage graphs, per onnxruntime's own usability checker (needs the onnx package).")] = False,
) -> None:
    """Show what a bundle holds: stages and sizes, labels, vocabulary, calibration."""
    from runtime.manifest import read_manifest, resolve_inside, verify_bundle

    manifest = read_manifest(bundle)
    verify_bundle(bundle, manifest)
    if targets:
        _targets(bundle, manifest)
        return
    if as_json:
        typer.echo(json.dumps(manifest.to_dict(), indent=2))
        return
    total = 0
    typer.echo(f"bundle {bundle}  (schema {manifest.schema_version}, {manifest.student}, {manifest.precision}, "
               f"opset {manifest.opset})")
    typer.echo(f"labels: {', '.join(manifest.labels)}   max_length {manifest.max_length}   hidden {manifest.hidden_size}")
    rule = manifest.rule()
    typer.echo(f"problem: {manifest.problem} (exit rule {rule.name}" +
               (f", scale {manifest.target_scale:g}, patience {rule.patience}" if manifest.target_scale else "") +
               (", a pair of texts per input" if manifest.text_pair else "") + ")")
    v = manifest.vocabulary
    kept = f"{v.kept_size} of {v.original_size} tokens kept" if v.kept_size != v.original_size else f"{v.original_size} tokens"
    if v.remapped_token_share is not None:
        kept += f" ({100 * v.remapped_token_share:.2f}% of measured tokens remapped)"
    typer.echo(f"vocabulary: {kept}")
    typer.echo("stages:")
    for stage in manifest.stages:
        size = resolve_inside(bundle, stage.file).stat().st_size
        total += size
        typer.echo(f"  {stage.index:>2}  {stage.kind:<6} {stage.file:<16} {size / 1e6:8.2f} MB")
    typer.echo(f"total {total / 1e6:.2f} MB   default speed {manifest.default_speed:g}")
    cal = manifest.calibration
    if cal:
        typer.echo(f"calibration ({cal.data}; {cal.machine}; {cal.rule or 'no rule'}):")
        for line in calibration_lines(cal.points, cal.metric, manifest.default_speed):
            typer.echo(line)
        threads = runtime_threads_line(bundle)
        if threads:
            typer.echo(threads)
    typer.echo(engine_line(bundle) or "engine: graph (model.onnx) on CPU, staged with device='cuda' (the defaults; "
               "`edgekd calibrate` measures both here)" if manifest.graph else "engine: staged (no model.onnx)")
    q = manifest.quantization
    if q:
        typer.echo(f"int8: {q['chosen']} ({q['why']})")


@app.command()
@friendly
def pack(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `edgekd export`.")],
    target: Annotated[str, typer.Option(help="web (model.onnx + tokenizer + manifest: the JS runtime in the browser or Node) | mobile (model.ort, the ORT format that ONNX Runtime Mobile loads, + tokenizer + manifest).")],
    out: Annotated[Path, typer.Option(help="Folder to write the slim bundle to.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing folder at --out (atomically).")] = False,
) -> None:
    """Write a slim bundle holding only what one target's runtime reads (an app ships what it runs)."""
    from edgekd.pack import pack as run_pack
    from runtime.manifest import bundle_size

    path = run_pack(bundle, out, target, overwrite=overwrite)
    _err(f"wrote {path}: {bundle_size(path) / 1e6:.2f} MB for {target} ({bundle_size(bundle) / 1e6:.2f} MB in "
         f"{bundle}); it answers as the full bundle on the check texts")


def _targets(bundle: Path, manifest) -> None:
    """inspect --targets: the mobile-provider report, measured now (or the one recorded at export)."""
    from runtime.errors import EdgeKDError

    try:
        import onnx  # noqa: F401  (the checker reads graphs with it)
    except ImportError:
        if manifest.mobile_providers is None:
            raise EdgeKDError("inspect --targets needs the onnx package: pip install 'edgekd[train]' (or onnx)")
        _err("onnx is not installed: showing the report recorded at export")
        report = manifest.mobile_providers
    else:
        from exporters.targets import bundle_targets

        report = bundle_targets(bundle, manifest)
    for line in target_lines(report):
        typer.echo(line)


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


def _bench_systems_help() -> str:
    # the names, without importing the bench (it imports onnxruntime): kept equal to registry.GROUPS by a test
    return ("teacher-torch, teacher-onnx, teacher-optimum, student-onnx, student-torch-exit, edgekd-staged, "
            "edgekd-graph, edgekd-threads, fasttext, tfidf-lr, model2vec, node, browser")


@app.command()
@friendly
def bench(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    data: Annotated[Path, typer.Option(help="Labelled file to measure on (e.g. SST-2 dev.tsv).")],
    run: Annotated[Optional[Path], typer.Option("--run", help="The run folder (edgekd distill --out): adds the teacher (PyTorch, one ONNX graph), the student as one graph and with per-sample exit in PyTorch.")] = None,
    teacher: Annotated[Optional[Path], typer.Option(help="Deprecated name of --run.", hidden=True)] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder for <stem>.json, .md and .png [default: ./<bundle name>-bench].")] = None,
    stem: Annotated[str, typer.Option(help="File name stem of the results.")] = "bench",
    speeds: Annotated[Optional[str], typer.Option(help="Comma-separated speeds (default: 0,0.1,...,0.6,0.8).")] = None,
    latency_texts: Annotated[int, typer.Option(help="Texts timed one by one at batch 1.")] = 200,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N texts.")] = None,
    also: Annotated[Optional[list[Path]], typer.Option(help="Another bundle of the same student (e.g. int8) measured beside it at the same speeds.")] = None,
    js: Annotated[bool, typer.Option(help="Add the compiled graph in Node and in Chromium (needs node, js/node_modules, chromium).")] = True,
    competitors: Annotated[bool, typer.Option(help="Add what a user would deploy instead: the teacher fused + int8 (the Optimum way), fastText, TF-IDF + LR, model2vec; and the accuracy/latency frontier plot.")] = False,
    train: Annotated[Optional[Path], typer.Option(help="Training file for --competitors (default: the run's).")] = None,
    profile: Annotated[bool, typer.Option(help="Write onnxruntime's per-node profile of one batch through model.onnx (<stem>_profile.json) and its time per operator.")] = False,
    large_batch: Annotated[bool, typer.Option(help="Also throughput at batch 256 (bulk scoring) for every system.")] = False,
    rss: Annotated[bool, typer.Option(help="Also peak RSS of every system, each loaded alone in a fresh process and run over 256 texts at batch 32 (what a service running only it holds).")] = False,
    systems: Annotated[Optional[str], typer.Option(help="Comma-separated systems to run (default: every one the other options enable): " + _bench_systems_help() + ".")] = None,
    skip: Annotated[Optional[str], typer.Option(help="Comma-separated systems to leave out (same names as --systems).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue a killed or partly failed run in --out: measure only what <stem>.state.json lacks (the same settings are required).")] = False,
) -> None:
    """Accuracy, layers, FLOPs, latency and throughput of a bundle beside its baselines, in one run.

    Each measurement is recorded as it completes (<stem>.state.json), so a kill loses at most the system in
    progress (--resume goes on); a system that fails is named and the others are still written (exit 2)."""
    from edgekd.bench import BenchOptions, run_bench
    from runtime.exits import REPORT_SPEEDS, check_speed

    try:
        values = [check_speed(float(s)) for s in speeds.split(",") if s.strip()] if speeds else list(REPORT_SPEEDS)
    except ValueError as exc:
        raise typer.BadParameter(f"--speeds: {exc}") from None
    if teacher is not None:
        _err("warning: --teacher is deprecated for bench (it takes the run folder); use --run")
        run = run or teacher

    def names(value: str | None) -> list[str]:
        return [n.strip() for n in (value or "").split(",") if n.strip()]

    run_bench(BenchOptions(bundle=bundle, data=data, out=out, run_dir=run, speeds=values, latency_texts=latency_texts,
                           limit=limit, stem=stem, also=list(also or []), js=js, competitors=competitors, train=train,
                           profile=profile, large_batch=large_batch, rss=rss, systems=names(systems) or None,
                           skip=names(skip), resume=resume), log=_err)


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


def run_dev_file(run_dir: Path) -> Path | None:
    """The dev file a run was distilled with, if the run records one that still exists."""
    config = Path(run_dir) / "config.json"
    try:
        dev = json.loads(config.read_text(encoding="utf-8"))["data"]["dev"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Path(dev) if dev and Path(dev).is_file() else None


def runtime_threads_line(bundle: Path) -> str | None:
    """One line on the thread use calibrate measured (calibration.threads), or None."""
    from runtime.manifest import read_manifest

    cal = read_manifest(bundle).calibration
    policy = cal.threads if cal else None
    if not policy:
        return None
    b1, large = policy["batch_1"], next(v for k, v in policy.items() if k.startswith("batch_") and k != "batch_1")
    return (f"threads ({policy['cores']} cores): batch 1 on {'one thread' if b1['chosen'] == 'one' else 'default threads'} "
            f"({b1['ms']['default']:.3f} ms default vs {b1['ms']['one']:.3f} ms one), large batches "
            f"{'split across cores' if large['chosen'] == 'split' else 'whole'} ({large['texts_per_s']['whole']:.0f} "
            f"vs {large['texts_per_s']['split']:.0f} texts/s split)")


def calibration_lines(points, metric: str = "accuracy", chosen: float | None = None) -> list[str]:
    """A calibration table as text: speed, the problem type's metrics (x 100), average layers, latency."""
    from edgekd.card import shown_points

    names = {"accuracy": ["accuracy", "f1"], "micro_f1": ["micro_f1", "macro_f1"],
             "pearson": ["pearson", "spearman"]}[metric]
    names = [n for n in names if n != "f1" or any(p.f1 is not None for p in points)]

    def value(p, name):
        v = p.accuracy if name == "accuracy" else p.f1 if name == "f1" else (p.metrics or {}).get(name)
        return "-" if v is None else f"{100 * v:.2f}"

    lines = ["   speed" + "".join(f"{n.replace('_', '-'):>10}" for n in names) + "  avg layers  latency ms"]
    for p in shown_points(points, chosen):
        latency = f"{p.latency_ms:10.3f}" if p.latency_ms is not None else "         -"
        lines.append(f"  {p.speed:6g}" + "".join(f"{value(p, n):>10}" for n in names) +
                     f"  {p.average_layers:10.2f}  {latency}" + ("  <- chosen" if p.speed == chosen else ""))
    return lines


@app.command()
@friendly
def calibrate(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (its manifest is updated in place, atomically).")],
    data: Annotated[Path, typer.Option(help="Labelled file to calibrate on (e.g. SST-2 dev.tsv).")],
    max_drop: Annotated[Optional[float], typer.Option(help="Largest speed whose main metric (accuracy; micro-F1 for multi-label; Pearson x 100 for regression) is within this many points of full depth.")] = None,
    latency_ms: Annotated[Optional[float], typer.Option(help="Most accurate speed whose mean batch-1 latency per text, measured here, fits this budget.")] = None,
) -> None:
    """Choose the bundle's default speed from an accuracy or latency budget, measured on this machine."""
    from edgekd.calibrate import calibrate as run_calibrate

    result = run_calibrate(bundle, data, max_drop=max_drop, latency_ms=latency_ms)
    for line in calibration_lines(result.points, result.metric, result.chosen):
        typer.echo(line)
    _err(f"default speed {result.chosen:g} ({result.rule}; full depth {result.metric} {100 * result.full_accuracy:.2f}) "
         "written to "
         f"{bundle}/manifest.json")
    line = engine_line(bundle)
    if line:
        _err(line)
    threads = runtime_threads_line(bundle)
    if threads:
        _err(threads)


@app.command()
@friendly
def demo(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `edgekd export` (it runs model.onnx).")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on; 127.0.0.1 keeps it on this machine.")] = "127.0.0.1",
    js_dir: Annotated[Optional[Path], typer.Option(help="The js/ folder of an edgekd checkout (with node_modules).")] = None,
) -> None:
    """Serve a page that runs the bundle in the browser (onnxruntime-web): type a text, move the speed
    slider, see the label, its probability and the layer it left at. No inference on the server."""
    from edgekd.apps.demo import demo_server

    server = demo_server(bundle, host, port, js_dir)
    _err(f"demo of {bundle} at http://{host}:{server.server_address[1]}/  (Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@app.command()
@friendly
def serve(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes (each loads the bundle once).")] = 1,
    speed: Annotated[Optional[float], typer.Option(help="Speed when a request gives none (default: the bundle's).")] = None,
    engine: Annotated[str, typer.Option(help="graph | staged | auto.")] = "auto",
    max_batch: Annotated[int, typer.Option(help="Texts run together across requests.")] = 32,
    max_queue: Annotated[int, typer.Option(help="Texts that may wait; beyond, requests get 503 + Retry-After.")] = 1024,
    max_texts: Annotated[int, typer.Option(help="Texts in one request.")] = 256,
    max_chars: Annotated[int, typer.Option(help="Characters in one text.")] = 10_000,
    threads: Annotated[Optional[int], typer.Option(help="onnxruntime threads per worker (default: one per core).")] = None,
) -> None:
    """Serve the bundle over HTTP: POST /v1/classify, GET /v1/model, /healthz, /readyz, /metrics.
    Requests that arrive while the model is busy are batched together; SIGTERM drains and exits."""
    from edgekd.apps.serve import Limits, serve as run_server

    for name, value in (("max-batch", max_batch), ("max-queue", max_queue), ("max-texts", max_texts),
                        ("max-chars", max_chars), ("workers", workers)):
        if value < 1:
            raise typer.BadParameter(f"--{name} must be at least 1")
    from edgekd.apps.serve import check_port

    check_port(host, port)
    _err(f"serving {bundle} at http://{host}:{port}/v1/classify  (Ctrl-C or SIGTERM stops it)")
    run_server(bundle, host, port, workers, speed, engine,
               Limits(max_batch=max_batch, max_queue=max_queue, max_texts=max_texts, max_chars=max_chars), threads)


def command():
    """The click command behind `edgekd`: typer's, with flags shown without a `<bool>` placeholder."""
    cmd = typer.main.get_command(app)
    for sub in [cmd, *getattr(cmd, "commands", {}).values()]:
        for param in sub.params:
            if getattr(param, "is_flag", False):
                param.metavar = ""

        def help_option(ctx, original=sub.get_help_option):
            option = original(ctx)
            if option is not None:
                option.metavar = ""
            return option

        sub.get_help_option = help_option
    return cmd


def main() -> None:
    command()()


if __name__ == "__main__":
    main()
