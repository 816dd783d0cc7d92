"""A batch walking the layer parts (the staged engine): on the host, or with hidden states kept on the
GPU. `StagedEngine.walk` (runtime/engines.py) drives one of these through every layer; `step` runs the next
layer graph and returns the current rows' exit logits, `keep(stay)` drops the rows that left."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from runtime.manifest import PAIR_INPUT, PART_INPUTS, PART_OUTPUTS

(IDS,), (HIDDEN,) = PART_INPUTS["embed"], PART_OUTPUTS["embed"]
(_, MASK, ROWS), (HIDDEN_OUT, LOGITS) = PART_INPUTS["layer"], PART_OUTPUTS["layer"]


def embed_feeds(input_ids: np.ndarray, token_type_ids: np.ndarray | None) -> dict[str, np.ndarray]:
    """The embed graph's inputs: ids, and a pair bundle's segment ids."""
    return {IDS: input_ids} if token_type_ids is None else {IDS: input_ids, PAIR_INPUT: token_type_ids}


class HostChain:
    """A batch walking the layer parts on the host: leaving rows are dropped and padding trimmed to
    the longest survivor (numpy), so later layers run on less."""

    def __init__(self, embed: ort.InferenceSession, input_ids: np.ndarray, mask: np.ndarray,
                 token_type_ids: np.ndarray | None = None):
        self.hidden = embed.run([HIDDEN], embed_feeds(input_ids, token_type_ids))[0]
        self.mask = mask
        self.rows = np.arange(len(input_ids), dtype=np.int64)

    def step(self, session: ort.InferenceSession) -> np.ndarray:
        self.hidden, logits = session.run([HIDDEN_OUT, LOGITS], {HIDDEN: self.hidden, MASK: self.mask, ROWS: self.rows})
        return logits

    def keep(self, stay: np.ndarray) -> None:
        width = int(self.mask[stay].sum(axis=1).max())
        self.hidden = self.hidden[stay, :width]
        self.mask = self.mask[stay, :width]
        self.rows = np.arange(len(self.mask), dtype=np.int64)


class CudaChain:
    """A batch walking the layer parts with hidden states kept on the GPU (IO binding): only the logits
    come back to the host, and the surviving rows are gathered inside the next layer graph (`rows`)."""

    def __init__(self, embed: ort.InferenceSession, input_ids: np.ndarray, mask: np.ndarray,
                 token_type_ids: np.ndarray | None = None):
        binding = embed.io_binding()
        for name, value in embed_feeds(input_ids, token_type_ids).items():
            binding.bind_cpu_input(name, value)
        binding.bind_output(HIDDEN, "cuda")
        embed.run_with_iobinding(binding)
        self.hidden = binding.get_outputs()[0]
        self.mask = mask
        self.rows = np.arange(len(input_ids), dtype=np.int64)

    def step(self, session: ort.InferenceSession) -> np.ndarray:
        binding = session.io_binding()
        binding.bind_ortvalue_input(HIDDEN, self.hidden)
        binding.bind_cpu_input(MASK, self.mask)
        binding.bind_cpu_input(ROWS, self.rows)
        binding.bind_output(HIDDEN_OUT, "cuda")
        binding.bind_output(LOGITS, "cpu")
        session.run_with_iobinding(binding)
        self.hidden, logits = binding.get_outputs()
        self.mask = self.mask[self.rows]  # the graph gathered these rows
        self.rows = np.arange(len(self.mask), dtype=np.int64)
        return logits.numpy()

    def keep(self, stay: np.ndarray) -> None:
        self.rows = np.flatnonzero(stay).astype(np.int64)
