"""Check exported graphs against the torch modules they came from.

Tracing can bake shapes or masks into constants, so every part is run on
several shapes (batch 1, a padded batch of mixed lengths, the maximum length,
and a row subset for layer parts). All failures are collected and raised
together, each with its max difference beside the tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from exporters.parts import PartSpec, pair_types
from runtime.manifest import PAIR_INPUT
from runtime.errors import EdgeKDError
from runtime.exits import rule_mask


class ExportValidationError(EdgeKDError):
    """An exported graph disagrees with its torch module."""

    def __init__(self, failures: list[str]):
        self.failures = failures
        super().__init__("exported graphs differ from torch:\n  - " + "\n  - ".join(failures))


@dataclass
class Check:
    part: str
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


def part_inputs(spec: PartSpec, ids: torch.Tensor, mask: torch.Tensor, hidden: torch.Tensor | None, subset: bool):
    if spec.kind == "embed":
        return (ids, pair_types(mask)) if PAIR_INPUT in spec.input_names else (ids,)
    if spec.kind == "full":
        return (ids, mask, pair_types(mask)) if PAIR_INPUT in spec.input_names else (ids, mask)
    rows = torch.arange(ids.shape[0])
    if subset and ids.shape[0] > 1:
        rows = rows.flip(0)[: max(1, ids.shape[0] // 2)]  # a reordered subset
    return (hidden, mask, rows)


def compare(spec: PartSpec, path: Path, inputs: tuple, case: str, atol: float) -> list[Check]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = spec.module(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    feeds = {name: tensor.numpy() for name, tensor in zip(spec.input_names, inputs)}
    actual = session.run(spec.output_names, feeds)  # by name: the graph's output order does not matter
    checks = []
    for name, want, got in zip(spec.output_names, expected, actual):
        want = want.float().numpy()
        diff = float(np.abs(want - got).max()) if want.shape == got.shape else float("inf")
        checks.append(Check(spec.name, case, name, diff, atol))
    return checks


def validate_student_parts(specs: dict[str, PartSpec], folder: Path, vocab_size: int, max_length: int,
                           atol: float = 1e-4) -> list[Check]:
    """Run every staged graph on every case; raise ExportValidationError listing all failures."""
    checks: list[Check] = []
    embed = next((s for s in specs.values() if s.kind == "embed"), None)
    for case, (ids, mask) in validation_cases(vocab_size, max_length).items():
        hidden = None
        if embed is not None:
            with torch.no_grad():
                hidden = embed.module(*part_inputs(embed, ids, mask, None, False))
        for file, spec in specs.items():
            for subset in ((False, True) if spec.kind == "layer" else (False,)):
                label = case + (", row subset" if subset else "")
                try:
                    checks += compare(spec, folder / file, part_inputs(spec, ids, mask, hidden, subset), label, atol)
                except Exception as exc:  # an ORT failure on a shape is a validation failure too
                    checks.append(Check(spec.name, f"{label} (error: {exc})", "*", float("inf"), atol))
            if spec.kind == "layer" and hidden is not None:
                with torch.no_grad():
                    hidden = spec.module(hidden, mask, torch.arange(ids.shape[0]))[0]
    failures = [f"{c.part} [{c.case}] {c.output}: max diff {c.max_diff:.3g} > atol {c.atol:g}"
                for c in checks if not c.ok]
    if failures:
        raise ExportValidationError(failures)
    return checks


def graph_cases(vocab_size: int, max_length: int, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Padded (input_ids, mask) batches of 1, 7 and 32 rows with random lengths, for whole-model checks."""
    rng = np.random.default_rng(seed)
    cases = {}
    for batch in (1, 7, 32):
        lengths = rng.integers(2, max_length + 1, size=batch)
        width = int(lengths.max())
        ids = rng.integers(1, max(vocab_size, 2), size=(batch, width))
        mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
        cases[f"batch {batch}"] = ((ids * mask).astype(np.int64), mask)
    return cases


def validate_compiled(model, vocab_size: int, max_length: int, speeds, exact: bool, atol: float = 1e-4,
                      margin: float = 1e-5, min_label_agreement: float = 0.99,
                      min_exit_agreement: float = 0.98) -> dict:
    """Check the compiled graph against the staged runtime on random batches at every speed.

    `model` is a `runtime.EdgeModel` of the bundle with both engines. With `exact` (fp32) labels
    and exit layers must be identical and logits within `atol`, except rows whose uncertainty lies
    within `margin` of the speed at some layer they reach (they may go either way); otherwise
    (int8, fp16: activation scales depend on the batch) labels and exit layers must agree on at
    least the given shares. Raises ExportValidationError listing every failure; returns a summary.
    """
    failures: list[str] = []
    rows = label_same = exit_same = 0
    worst = 0.0
    for case, (ids, mask) in graph_cases(vocab_size, max_length).items():
        types = pair_types(torch.from_numpy(mask)).numpy() if model.manifest.text_pair else None
        tokens = rule_mask(ids, mask, model.encoder.special_ids) if model.rule.per_token else None
        trace_u = model.rule.trace(model.trace_ids(ids, mask, types), tokens) if exact and not model.full else None
        for speed in speeds:
            want_logits, want_layer, _ = model.run_ids(ids, mask, speed, engine="staged", token_type_ids=types)
            got_logits, got_layer, _ = model.run_graph(ids, mask, speed, token_type_ids=types)
            same_label = model.rule.agree(want_logits, got_logits)
            same_exit = want_layer == got_layer
            rows += len(ids)
            label_same += int(same_label.sum())
            exit_same += int(same_exit.sum())
            if not exact:
                continue
            clear = np.ones(len(ids), dtype=bool)
            if trace_u is not None:
                reached = np.arange(1, trace_u.shape[0] + 1)[:, None] <= np.maximum(want_layer, got_layer)[None, :]
                clear = ~((np.abs(trace_u - speed) < margin) & reached).any(0)
            diff = float(np.abs(want_logits - got_logits)[clear].max(initial=0.0))
            worst = max(worst, diff)
            bad = clear & ~(same_label & same_exit)
            if bad.any():
                failures.append(f"compiled graph [{case}, speed {speed:g}]: rows {np.flatnonzero(bad).tolist()} "
                                f"differ from the staged runtime in label or exit layer")
            if diff > atol:
                failures.append(f"compiled graph [{case}, speed {speed:g}] logits: max diff {diff:.3g} > atol {atol:g}")
    summary = {"rows": rows, "label_agreement": label_same / max(rows, 1),
               "exit_agreement": exit_same / max(rows, 1), "max_logit_diff": worst if exact else None}
    if not exact:
        if summary["label_agreement"] < min_label_agreement:
            failures.append(f"compiled graph: label agreement {summary['label_agreement']:.4f} "
                            f"< {min_label_agreement} with the staged runtime")
        if summary["exit_agreement"] < min_exit_agreement:
            failures.append(f"compiled graph: exit-layer agreement {summary['exit_agreement']:.4f} "
                            f"< {min_exit_agreement} with the staged runtime")
    if failures:
        raise ExportValidationError(failures)
    return summary
