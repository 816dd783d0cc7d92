"""The typer app behind `edgekd`, its error handling and its entry point; one module per command registers on
it (edgekd/cli/__init__.py imports them in the order `--help` lists them).

Heavy imports (torch, transformers, onnx, onnxruntime) happen inside command bodies, so `edgekd --help` is
instant and torch-free (tests/runtime/test_layering.py)."""

from __future__ import annotations

import re
from functools import wraps
from typing import Annotated, Optional

import typer

HELP = ("Distil BERT-family classifiers into early-exit students, export them as bundles whose model.onnx runs "
        "early exit in any ONNX Runtime, and run them without torch (Python, Node, the browser).")

app = typer.Typer(help=HELP, no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


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


def err(message: str) -> None:
    """A line for the user on stderr (stdout carries results)."""
    typer.echo(message, err=True)


def command():
    """The click command behind `edgekd`: typer's, with flags shown without a `<bool>` placeholder and the square
    brackets of help texts shown as written."""
    cmd = typer.main.get_command(app)
    for sub in [cmd, *getattr(cmd, "commands", {}).values()]:
        for param in sub.params:
            if getattr(param, "is_flag", False):
                param.metavar = ""
            if getattr(param, "help", None):  # rich reads "[default: ...]" in a help text as markup: show it
                param.help = re.sub(r"(?<!\\)\[", r"\\[", param.help)

        def help_option(ctx, original=sub.get_help_option):
            option = original(ctx)
            if option is not None:
                option.metavar = ""
            return option

        sub.get_help_option = help_option
    return cmd


def main() -> None:
    command()()


# the column flags of every command that reads a labelled file (distill's are the config's own)
TextColumn = Annotated[Optional[str], typer.Option(
    help="Text column of the labelled file [default: the one the bundle's run was trained with, else sentence, "
         "text, ...].")]
TextPairColumn = Annotated[Optional[str], typer.Option(
    help="Second text column of a file of text pairs [default: the run's, else the usual pair columns].")]
LabelColumn = Annotated[Optional[str], typer.Option(
    help="Label column of the labelled file [default: the run's, else label, labels, class, ...].")]


def columns(text_column: str | None, text_pair_column: str | None, label_column: str | None) -> dict[str, str]:
    """The column flags given, by their config names."""
    given = {"text_column": text_column, "text_pair_column": text_pair_column, "label_column": label_column}
    return {k: v for k, v in given.items() if v}
