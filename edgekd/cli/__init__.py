"""The `edgekd` command: a thin typer layer over public functions, one module per command
(`edgekd/cli/<command>.py`), registered on the app in edgekd/cli/app.py in the order `--help` lists them."""

from __future__ import annotations

from edgekd.cli import distill, export, predict, inspect, pack, bench, calibrate, serve, card  # noqa: F401
from edgekd.cli.app import app, command, main
from edgekd.cli.bench import bench_systems_help as _bench_systems_help
from edgekd.cli.distill import DISTILL_STAGES

__all__ = ["DISTILL_STAGES", "_bench_systems_help", "app", "command", "main"]
