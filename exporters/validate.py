"""Check exported graphs against the torch modules they came from.

Tracing can bake shapes or masks into constants, so every stage is run on
several shapes (batch 1, a padded batch of mixed lengths, the maximum length,
and a row subset for layer stages). All failures are collected and raised
together, each with its max difference beside the tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from exporters.stages import StageSpec
from runtime.errors import EdgeKDError


class ExportValidationError(EdgeKDError):
    """An exported graph disagrees with its torch module."""

    def __init__(self, failures: list[str]):
        self.failures = failures
        super().__init__("exported graphs differ from torch:\n  - " + "\n  - ".join(failures))


@dataclass
class Check:
    stage: str
    case: str
    output: str
    max_diff: float
    atol: float

    @property
    def ok(self) -> bool:
        return bool(self.max_diff <= self.atol)


def validation_cases(vocab_size: int, max_length: int, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Named (input_ids, mask) cases: batch 1, padded mixed lengths, max length."""
    gen = torch.Generator().manual_seed(seed)
    cases = {}
    lengths = {
        "batch 1": [min(9, max_length)],
        "padded mixed lengths": [min(n, max_length) for n in (11, 3, 7, 2)],
        f"max length {max_length}": [max_length, max(2, max_length // 3)],
    }
    for name, lens in lengths.items():
        width = max(lens)
        ids = torch.randint(1, max(vocab_size, 2), (len(lens), width), generator=gen)
        mask = torch.zeros(len(lens), width, dtype=torch.long)
        for row, n in enumerate(lens):
            mask[row, :n] = 1
        ids = ids * mask  # pad id 0 on padding
        cases[name] = (ids, mask)
    return cases


def stage_inputs(spec: StageSpec, ids: torch.Tensor, mask: torch.Tensor, hidden: torch.Tensor | None, subset: bool):
    if spec.kind == "embed":
        return (ids,)
    if spec.kind == "full":
        return (ids, mask)
    rows = torch.arange(ids.shape[0])
    if subset and ids.shape[0] > 1:
        rows = rows.flip(0)[: max(1, ids.shape[0] // 2)]  # a reordered subset
    return (hidden, mask, rows)


def compare(spec: StageSpec, path: Path, inputs: tuple, case: str, atol: float) -> list[Check]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = spec.module(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    feeds = {name: tensor.numpy() for name, tensor in zip(spec.input_names, inputs)}
    actual = session.run(None, feeds)
    checks = []
    for name, want, got in zip(spec.output_names, expected, actual):
        want = want.float().numpy()
        diff = float(np.abs(want - got).max()) if want.shape == got.shape else float("inf")
        checks.append(Check(spec.name, case, name, diff, atol))
    return checks


def validate_student_stages(specs: dict[str, StageSpec], folder: Path, vocab_size: int, max_length: int,
                            atol: float = 1e-4) -> list[Check]:
    """Run every staged graph on every case; raise ExportValidationError listing all failures."""
    checks: list[Check] = []
    embed = next((s for s in specs.values() if s.kind == "embed"), None)
    for case, (ids, mask) in validation_cases(vocab_size, max_length).items():
        hidden = None
        if embed is not None:
            with torch.no_grad():
                hidden = embed.module(ids)
        for file, spec in specs.items():
            for subset in ((False, True) if spec.kind == "layer" else (False,)):
                label = case + (", row subset" if subset else "")
                try:
                    checks += compare(spec, folder / file, stage_inputs(spec, ids, mask, hidden, subset), label, atol)
                except Exception as exc:  # an ORT failure on a shape is a validation failure too
                    checks.append(Check(spec.name, f"{label} (error: {exc})", "*", float("inf"), atol))
            if spec.kind == "layer" and hidden is not None:
                with torch.no_grad():
                    hidden = spec.module(hidden, mask, torch.arange(ids.shape[0]))[0]
    failures = [f"{c.stage} [{c.case}] {c.output}: max diff {c.max_diff:.3g} > atol {c.atol:g}"
                for c in checks if not c.ok]
    if failures:
        raise ExportValidationError(failures)
    return checks
