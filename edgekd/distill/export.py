"""Run folder -> bundle: load the distilled student and hand it to the exporters.

With a precision other than fp32 the graphs are rewritten after their fp32
torch checks, then compared with the fp32 torch student on `data` (prediction
and exit-layer agreement per speed, stored in the manifest) and re-calibrated,
since exit decisions move with precision.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import runtime
from edgekd.card import training_source, write_card
from edgekd.config import DistillConfig
from edgekd.data import read_bundle_data, read_for_task, read_unlabelled
from edgekd.distill.evaluate import all_exit_logits
from edgekd.run_folder import RunFolder, StudentFolder
from edgekd.distill.students import SmallStudent, load_student
from edgekd.distill.batches import TokenizedData
from exporters import ExportError, ExportResult, export_classifier, export_student
from exporters.bundle import recompile_graph
from exporters.quantize import INT8_CHOICES, PRECISIONS, apply_precision, choose_int8
from edgekd.calibrate import file_gold
from edgekd.metrics import choose_thresholds, gold_array, main_metric, pearson, task_scores
from runtime.exits import REPORT_SPEEDS, decide
from runtime.manifest import read_manifest, write_manifest
from runtime.task import Task, exit_rule_record

CHECK_SPEEDS = REPORT_SPEEDS
COLUMN_KEYS = ("text_column", "text_pair_column", "label_column")  # how labelled files are read: the run's


def precision_agreement(bundle: Path, student, data: str | os.PathLike,
                        speeds=CHECK_SPEEDS) -> dict:
    """Agreement of a (quantized) bundle with the fp32 torch student on labelled `data`: the same answer
    (class; label set, at the rule's thresholds where it has them; value within 0.1 target s.d.) and exit layer
    per speed, the main metric of both, and for regression the Pearson correlation between the two outputs."""
    model = runtime.load(bundle)
    rule, problem = model.rule, model.problem
    dataset = read_bundle_data(model, data)
    tokenized = TokenizedData(model.encoder, dataset.texts)
    exits = all_exit_logits(student.eval(), tokenized, "cpu").numpy()
    # token classification: (L, N, T, C) at the longest row's T, the width model.outputs answers at too
    gold, tokens = file_gold(model, dataset, tokenized.ids)
    mask, names = (tokens[0], tokens[2]) if tokens else (None, None)
    metric = main_metric(problem)
    report = {"reference": "fp32 (torch)", "precision": model.manifest.precision, "data": Path(data).name,
              "texts": len(dataset), "metric": metric, "speeds": {}}
    for speed in speeds:
        want, layers, _ = decide(exits, speed, rule, mask)
        got, exit_layer, _ = model.outputs(dataset.texts, speed=speed)
        at = model.manifest.thresholds or 0.5  # multi-label sets where the bundle answers, as `agree` reads them
        row = {"prediction_agreement": float(rule.agree(want, got, mask=tokens[1] if tokens else None).mean()),
               "exit_agreement": float((exit_layer == layers).mean()),
               f"{metric}_fp32": task_scores(problem, want, gold, at, names=names)[metric],
               metric: task_scores(problem, got, gold, at, names=names)[metric]}
        if problem == "regression":
            row["pearson_with_fp32"] = pearson(want[:, 0], got[:, 0])
        report["speeds"][f"{speed:g}"] = row
    return report


def label_thresholds(bundle: Path, data: str | os.PathLike) -> tuple[list[float] | None, dict]:
    """Per-label thresholds of a multi-label bundle on labelled `data` at full depth, kept when they beat 0.5
    on held-out rows (edgekd.metrics.choose_thresholds)."""
    model = runtime.load(bundle)
    dataset = read_bundle_data(model, data)
    logits = model.outputs(dataset.texts, speed=0.0)[0]
    thresholds, record = choose_thresholds(logits, gold_array(dataset.labels, "multi-label", len(model.labels)))
    return thresholds, {**record, "data": Path(data).name, "rows": len(dataset)}


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False, atol: float = 1e-4,
               default_speed: float = 0.0, precision: str = "fp32", data: str | os.PathLike | None = None,
               max_drop: float | None = None, vocab_keep: float | None = None, vocab_size: int | None = None,
               vocab_metric: str = "dot", optimize: str = "none", int8: str = "dynamic", mobile_report: bool = False,
               columns: dict[str, str] | None = None, confidence: float | None = None,
               tolerance: float | None = None, graph_form: str = "auto", log=print) -> ExportResult:
    """Export `run_dir/student` (tokenizer, labels and max_length from the run) to bundle `out`.

    `vocab_keep` (a fraction) or `vocab_size` (a count) compresses the vocabulary of an existing student (GLMD; counts
    from the run's train + unlabelled text, nearest tokens by the teacher's
    input embeddings, or the student's own when the run has no teacher).
    `precision` int8 (CPU) or fp16 (GPU) rewrites the validated fp32 graphs; `int8` picks how (INT8_CHOICES;
    `edgekd export` defaults to auto: each method built, compared with fp32 on `data` and timed, the fastest
    agreeing one kept; the Python default stays dynamic so that tests export fast).
    `optimize` none | fused | auto: each layer graph plain or fused, auto by timing both here (`edgekd export`
    defaults to auto; the Python default stays none so that tests export fast).
    With `data`, quantized bundles get an agreement report in the manifest and,
    with `max_drop`, any bundle is calibrated on it. `mobile_report` records what onnxruntime's mobile
    usability checker says of the graphs for NNAPI and CoreML (exporters.targets; `edgekd export` does it by
    default, the Python default stays off so that tests export fast).
    """
    from exporters.optimize import OPTIMIZE_MODES

    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if optimize not in OPTIMIZE_MODES:
        raise ExportError(f"--optimize {optimize!r} is not one of {', '.join(OPTIMIZE_MODES)}")
    if int8 not in INT8_CHOICES:
        raise ExportError(f"--int8 {int8!r} is not one of {', '.join(INT8_CHOICES)}")
    if precision == "int8" and int8.startswith("static") and data is None:
        raise ExportError(f"--int8 {int8} needs --data: its activation scales are calibrated on those texts")
    run = RunFolder(Path(run_dir))
    if not run.root.is_dir():
        raise ExportError(f"{run.root} is not a folder; give the run folder written by `edgekd distill`")
    if not run.student.is_dir():
        raise ExportError(f"{run.student} is missing: the run has no finished student yet "
                          "(run `edgekd distill` with the finetune stage)")
    if max_drop is not None and data is None:
        raise ExportError("--max-drop needs --data to calibrate on")
    if vocab_keep and vocab_size:
        raise ExportError("give one of --vocab-keep FRACTION and --vocab-size COUNT, not both")
    cfg = DistillConfig.load(run.config)
    folder = StudentFolder(run.student)
    if folder.is_complete():  # the self-contained student: tokenizer, labels and max_length beside the weights
        tokenizer, labels, max_length = folder.tokenizer, folder.labels, folder.max_length
        values = folder.label_values
    else:  # a run folder from before student/ carried them
        tokenizer, labels, max_length = run.tokenizer, json.loads(run.labels.read_text(encoding="utf-8")), \
            cfg.data.max_length
        values = None
    student = load_student(run.student)
    share = None
    if vocab_keep or vocab_size:
        student, share = _compress(run, cfg, student, vocab_keep, vocab_size, vocab_metric, data)
    task = folder.task if folder.is_complete() else Task()
    task = replace(task, label_values=values if values and values != labels else None)
    given = dict(columns or {})
    columns = {k: given.get(k) or getattr(cfg.data, k) for k in COLUMN_KEYS}  # the run's when not given
    columns = {k: v for k, v in columns.items() if v}
    if data is not None:  # a bad --data fails here, before anything is written
        read_for_task(data, replace(task, labels=list(labels), label_values=values,
                                    text_pair=folder.is_complete() and folder.text_pair), columns)

    def rewrite(folder, manifest):
        """The graphs in the export's precision, and what the manifest records of it."""
        if precision == "int8":
            texts = read_unlabelled(data).texts if data is not None else None
            manifest.quantization = choose_int8(folder, manifest, int8, texts, log=log,
                                                num_heads=getattr(student.config, "num_heads", 0))
        else:
            apply_precision(folder, [s.file for s in manifest.parts], precision)
        manifest.precision = precision
        manifest.vocabulary.remapped_token_share = share
        manifest.source = {"columns": columns}  # what --data is read by until the card's record is written
        return manifest

    def measure(folder: Path) -> None:
        """Agreement and calibration on the finished bundle, still in its temporary folder: the bundle is
        renamed into place only when these succeed too (a failure leaves any old bundle as it was)."""
        if data is not None and task.problem == "multi-label":  # before calibration, which scores with them
            manifest = read_manifest(folder)
            thresholds, choice = label_thresholds(folder, data)
            manifest.task = replace(manifest.task, thresholds=thresholds, threshold_choice=choice)
            log(f"multi-label thresholds: {choice['chosen']} (held-out micro-F1 "
                f"{100 * choice['per_label_held_out_micro_f1']:.2f} per label vs "
                f"{100 * choice['default_0.5_micro_f1']:.2f} at 0.5)")
            if thresholds is not None and not isinstance(student, SmallStudent):
                # rows leave when every label is sure on its side of its own threshold (runtime.exits.AT_THRESHOLDS)
                manifest.task = replace(manifest.task, exit_rule=exit_rule_record("multi-label", at_thresholds=True))
                recompile_graph(folder, manifest, atol)
                log("exit rule: max-binary-entropy at the chosen thresholds (model.onnx composed again with it)")
            write_manifest(folder, manifest)
        if data is not None and precision != "fp32":  # at the rule's thresholds when it has them
            manifest = read_manifest(folder)
            manifest.precision_check = precision_agreement(folder, student, data)
            write_manifest(folder, manifest)
        if data is not None and max_drop is not None and not isinstance(student, SmallStudent):
            from edgekd.calibrate import calibrate

            result = calibrate(folder, data, max_drop=max_drop, log=log, confidence=confidence, tolerance=tolerance)
            p = result.chosen_point
            within = (f"with at most {max_drop:g}% of rows made worse, with probability {confidence:g}" if confidence
                      else f"within {max_drop:g} points of full depth")
            log(f"calibrated on {Path(data).name}: default speed {result.chosen:g}, the fastest {within}: "
                f"{result.metric} {100 * p.score(result.metric):.2f} against {100 * result.full_accuracy:.2f}, "
                f"{p.average_layers:.2f} of {student.config.num_layers} layers on average")
        manifest = read_manifest(folder)
        manifest.source = {**_source(cfg, student), "columns": columns}
        if mobile_report:
            from exporters.targets import bundle_targets

            manifest.mobile_providers = bundle_targets(folder, manifest)
        write_card(folder, manifest)  # README.md, listed and hashed in the manifest

    if isinstance(student, SmallStudent):
        result = export_classifier(student, tokenizer, labels, out, max_length, atol=atol,
                                   overwrite=overwrite, rewrite=rewrite, measure=measure, task=task)
    else:
        result = export_student(student, tokenizer, labels, out, max_length, atol=atol,
                                overwrite=overwrite, default_speed=default_speed, rewrite=rewrite, measure=measure,
                                optimize=optimize, text_pair=folder.is_complete() and folder.text_pair, task=task,
                                graph_form=graph_form)
    result.manifest = read_manifest(result.path)
    return result


def _source(cfg: DistillConfig, student) -> dict:
    """What the model card says of the training."""
    from dataclasses import asdict

    def rows(path: str) -> int | None:
        try:
            return len(read_unlabelled(path, cfg.data.text_column or None,
                                       text_pair_column=cfg.data.text_pair_column or None))
        except Exception:  # the data moved since the run: the card says '?'
            return None

    shape = {k: v for k, v in asdict(student.config).items()
             if k in ("num_layers", "hidden_size", "num_heads", "ffn_size", "kind", "embed_size")}
    train = rows(cfg.data.train) if cfg.data.train else None
    if train is not None and cfg.data.max_train:  # the rows the student learnt from, not the file's count
        train = min(train, cfg.data.max_train)
    return training_source(cfg.to_dict(), shape, train, rows(cfg.data.dev) if cfg.data.dev else None)


def _compress(run: RunFolder, cfg: DistillConfig, student, keep: float | None, size: int | None, metric: str,
              data: str | os.PathLike | None):
    from edgekd.data import read_unlabelled
    from edgekd.distill.vocab import build_vocab_map, compress_student, remapped_share
    from runtime.tokenize import TextEncoder

    if student.config.original_vocab_size:
        raise ExportError("this student already has a compressed vocabulary (trained with --vocab-keep)")
    encoder = TextEncoder.from_file(run.tokenizer, cfg.data.max_length)
    texts = read_unlabelled(cfg.data.train, cfg.data.text_column or None).texts
    if cfg.data.unlabeled:
        texts += read_unlabelled(cfg.data.unlabeled, cfg.data.text_column or None).texts
    if run.teacher.is_dir():
        from edgekd.distill.families import family_of
        from edgekd.distill.teacher import load_teacher

        teacher = load_teacher(run.teacher, student.config.num_labels)
        embedding = family_of(teacher.config).word_embeddings(teacher)
    else:
        embedding = student.embeddings.word.weight
    try:
        vmap = build_vocab_map(encoder, texts, embedding, keep=keep or None, size=size or None, metric=metric)
    except ValueError as exc:
        raise ExportError(str(exc)) from exc
    measured = read_unlabelled(data).texts if data is not None else texts
    return compress_student(student, vmap).eval(), remapped_share(encoder, measured, vmap)
