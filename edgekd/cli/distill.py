"""`edgekd distill`: its options are the config fields that carry a flag (edgekd.config.flag), so a field and
its flag cannot drift apart; the few that are not one field (the schedule for every stage, the config file,
the preset, --overwrite) are declared here."""

from __future__ import annotations

import inspect
from typing import Annotated, Optional

import typer

from edgekd.cli.app import app, err, friendly
from edgekd.config import STAGES
from edgekd.flags import cli_flags, flag_overrides

DISTILL_STAGES = ",".join(STAGES)

# options that are not one config field: (name, type, help, default)
_OWN = [
    ("overwrite", bool, "Start over: remove an existing run folder at --out first (default: resume it).", False),
    ("from_run", str, "Start a new --out from this run's finished stages, up to the first whose options differ "
     "(e.g. --config with longer branches: only the exit heads train again). The data, student and seed must be "
     "the run's; the stages taken over are the same files (hard links).", None),
    ("epochs", float, "Epochs for every stage.", None),
    ("max_steps", int, "Steps for every stage (overrides epochs).", None),
    ("batch_size", int, "Batch size for every stage.", None),
    ("config", str, "JSON config file (see config.json in any run folder).", None),
    ("preset", str, "quick (every labelled row, 40k unlabelled; a 4-layer student at the teacher's width, "
     "384; teacher and finetune train until dev stops improving, at least 1 / 2 epochs, at most 10 / 6: ~1.5 h "
     "for SST-2 on 2 cores) | full (longer schedule, max length 128; GPU advised) | tiny (seconds: smoke tests).",
     None),
]
# the order --help lists them in
_ORDER = ("teacher train dev out unlabeled text_column text_pair_column label_column label_names accept_labels problem "
          "standardize overwrite from_run "
          "student layers hidden heads ffn head_type init student_init vocab_keep vocab_size augment stages "
          "epochs max_steps batch_size max_length kd objective seed device config preset online "
          "keep_checkpoints").split()


def _parameters() -> list[inspect.Parameter]:
    params = []
    for fl in cli_flags():
        decl = f"--{fl.name}/--no-{fl.name}" if fl.type is bool else f"--{fl.name}"
        option = typer.Option(decl, help=fl.help)
        params.append(inspect.Parameter(fl.name.replace("-", "_"), inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[Optional[fl.type], option]))
    for name, kind, text, default in _OWN:
        option = typer.Option("--from", help=text) if name == "from_run" else typer.Option(help=text)  # a keyword
        annotation = Annotated[kind if default is not None else Optional[kind], option]
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))
    rank = {name: i for i, name in enumerate(_ORDER)}
    return sorted(params, key=lambda p: rank.get(p.name, len(rank)))


def distill(**given) -> None:
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

    overrides = flag_overrides(given)
    for key, value in optim_overrides(given["epochs"], given["max_steps"], given["batch_size"]).items():
        overrides[key] = {**overrides.get(key, {}), **value}
    cfg = resolve_config(given["config"], given["preset"], overrides)
    run = run_distill(cfg, log=err, overwrite=given["overwrite"], source=given["from_run"])
    err(f"run folder: {run}  (next: edgekd export {run} --out BUNDLE)")


_params = _parameters()
distill.__signature__ = inspect.Signature(_params, return_annotation=None)
distill.__annotations__ = {p.name: p.annotation for p in _params} | {"return": None}
app.command()(friendly(distill))
