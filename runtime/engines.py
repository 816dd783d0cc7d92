"""The two engines that run a padded batch with early exit, each with one `run(batch, speed)`.

- `GraphEngine`: `model.onnx`, the exit rule compiled into one graph; one session run per batch.
- `StagedEngine`: one session per part (embed, layer_NN) and the exit rule in Python between them; rows that
  leave are dropped, so later layers run on fewer rows; on CUDA the hidden states stay on the device.

Both answer (logits (B, C) of the deciding head ((B, T, C) for token classification), exit_layer (B,) 1-based,
uncertainty (B,)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from runtime.chains import CudaChain, HostChain
from runtime.exits import ExitRule, leaves, rule_mask
from runtime.manifest import part_inputs


@dataclass
class Batch:
    """One padded batch as the graphs take it: int64 and contiguous; `token_type_ids` only for a bundle of text
    pairs (zeros when the caller gave none)."""

    ids: np.ndarray  # (B, T)
    mask: np.ndarray  # (B, T)
    token_type_ids: np.ndarray | None = None  # (B, T)

    @classmethod
    def of(cls, input_ids, mask, token_type_ids=None, text_pair: bool = False) -> Batch:
        ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        if text_pair:
            token_type_ids = (np.zeros_like(ids) if token_type_ids is None
                              else np.ascontiguousarray(token_type_ids, dtype=np.int64))
        return cls(ids, np.ascontiguousarray(mask, dtype=np.int64), token_type_ids if text_pair else None)

    def feeds(self, names: tuple[str, ...], speed: float | None = None) -> dict[str, np.ndarray]:
        """The batch under a graph's input names (token graphs: ids, mask, [speed], [token_type_ids])."""
        values = [self.ids, self.mask] + ([np.array(speed, dtype=np.float32)] if speed is not None else []) + \
            ([self.token_type_ids] if self.token_type_ids is not None else [])
        return dict(zip(names, values))

    def __len__(self) -> int:
        return len(self.ids)


class _Outputs:
    """Per-row results of one batch, filled in as rows leave. Token classification: the logits are (B, T, C),
    and `tokens` (the current rows' rule mask, runtime.exits.rule_mask) follows the rows that stay; a layer's
    logits may be narrower than T (the padding trimmed to the longest survivor) and fill the row's start."""

    def __init__(self, batch: int, num_labels: int, rule: ExitRule, tokens: np.ndarray | None = None):
        width = () if tokens is None else (tokens.shape[1],)
        self.logits = np.zeros((batch, *width, num_labels), dtype=np.float32)
        self.layer = np.zeros(batch, dtype=np.int64)
        self.uncertainty = np.zeros(batch, dtype=np.float32)
        self.rule = rule
        self.tokens = tokens
        self.state: tuple | None = None  # what the next head's u needs of the current rows (regression's rule)

    def remember(self, logits: np.ndarray) -> np.ndarray:
        """u of the current rows' head, carrying the rule's state to the next head."""
        tokens = None if self.tokens is None else self.tokens[:, : logits.shape[1]]
        unc, self.state = self.rule.step(logits, self.state, tokens)
        return unc

    def record(self, logits: np.ndarray, alive: np.ndarray, layer: int, speed: float,
               last: bool) -> np.ndarray | None:
        """Apply the exit rule to the current rows; store those that leave.

        Returns the mask of rows that stay, or None when every row stays."""
        unc = self.remember(logits)
        leave = leaves(unc, speed, last)
        if not leave.any():
            return None
        done = alive[leave]
        if self.tokens is None:
            self.logits[done] = logits[leave]
        else:
            self.logits[done, : logits.shape[1]] = logits[leave]
            self.tokens = self.tokens[~leave]
        self.layer[done], self.uncertainty[done] = layer, unc[leave]
        self.state = self.rule.keep_rows(self.state, ~leave)
        return ~leave


class GraphEngine:
    """model.onnx: the exit rule inside the graph."""

    def __init__(self, session, text_pair: bool):
        self.session = session
        self.names = part_inputs("compiled", text_pair)

    def run(self, batch: Batch, speed: float, outputs: list[str] | None = None) -> list[np.ndarray]:
        """(logits, exit_layer, uncertainty), or the named `outputs`."""
        return self.session.run(outputs, batch.feeds(self.names, speed))


class StagedEngine:
    """One session per part and the exit rule in Python between them (or one 'full' graph without exits)."""

    def __init__(self, sessions: list, rule: ExitRule, num_labels: int, device: str, full: bool, text_pair: bool,
                 special_ids: list[int] | None = None):
        self.sessions = sessions
        self.special_ids = special_ids or []  # token classification: the tokens its rule does not read
        self.rule = rule
        self.num_labels = num_labels
        self.device = device
        self.full = full
        self.text_pair = text_pair
        self.num_layers = 1 if full else len(sessions) - 1

    def run(self, batch: Batch, speed: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.full:
            logits = self.sessions[0].run(None, batch.feeds(part_inputs("full", self.text_pair)))[0]
            return logits, np.ones(len(logits), dtype=np.int64), self.rule.uncertainty(logits)
        tokens = rule_mask(batch.ids, batch.mask, self.special_ids) if self.rule.per_token else None
        out = _Outputs(len(batch), self.num_labels, self.rule, tokens)
        alive = np.arange(len(batch))  # original row of each current row
        chain = self.chain(batch)
        last = self.num_layers
        for layer, logits in self.walk(chain):
            if layer < last and speed <= 0.0:
                if self.rule.needs_previous:
                    out.remember(logits)
                continue  # u >= 0 always: nothing can leave before the last layer
            stay = out.record(logits, alive, layer, speed, layer == last)
            if stay is None:
                continue
            if not stay.any():
                break
            alive = alive[stay]
            chain.keep(stay)
        if tokens is not None:  # padding's tags are 0, as model.onnx gives them
            out.logits *= batch.mask[..., None]
        return out.logits, out.layer, out.uncertainty

    def chain(self, batch: Batch, host: bool = False) -> HostChain | CudaChain:
        """The batch after the embed part, on the host (CPU) or with hidden states kept on the GPU."""
        kind = CudaChain if self.device == "cuda" and not host else HostChain
        return kind(self.sessions[0], batch.ids, batch.mask, batch.token_type_ids)

    def walk(self, chain: HostChain | CudaChain) -> Iterator[tuple[int, np.ndarray]]:
        """The one loop over the layer parts: (1-based layer, the current rows' exit logits) after each.
        The early-exit run, tracing and part timing all walk it; `chain.keep` between steps drops rows."""
        for layer, session in enumerate(self.sessions[1:], start=1):
            yield layer, chain.step(session)

    def trace(self, batch: Batch) -> np.ndarray:
        """Every exit head's logits for every row: (L, B, C)."""
        if self.full:
            return self.run(batch, 0.0)[0][None]
        return np.stack([logits for _, logits in self.walk(self.chain(batch, host=True))])
