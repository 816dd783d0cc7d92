"""Load a bundle and classify text with batched early exit.

The exit rule: after layer l the row has an uncertainty u in [0, 1] (the
normalized entropy of its exit head for single-label bundles; see
runtime/exits.py for multi-label and regression); the row leaves at the first
layer with u < speed (speed 0 runs every layer; the last layer always exits).
Rows that leave are dropped from the batch, so later layers run on fewer rows.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

try:
    import onnxruntime as ort
except ImportError as exc:  # the core install leaves the choice of ONNX Runtime to an extra
    raise ImportError("edgekd's runtime needs ONNX Runtime: pip install 'edgekd[cpu]' "
                      "(or 'edgekd[gpu]' on a machine with an NVIDIA GPU and CUDA)") from exc

from runtime.engines import Batch, GraphEngine, StagedEngine
from runtime.errors import BundleError, DeviceError, EdgeKDError, InputError, InputTypeError
from runtime.exits import TOKENS, check_speed, sigmoid, softmax
from runtime.items import parse_items
from runtime.manifest import (
    ENGINES,
    Manifest,
    Part,
    read_manifest,
    resolve_inside,
    verify_bundle,
)
from runtime.sessions import captured_stderr, check_graphs, providers, session_options
from runtime.tokenize import TextEncoder

SPLIT_MIN_ROWS = 16  # batches from this size may be split across cores, when calibration measured that faster


@dataclass
class Prediction:
    """One item's answer. Which fields are set follows the bundle's problem type (manifest.problem):

    - single-label: `label` (the most probable class) and `probs` (softmax, name -> probability);
    - multi-label: `labels` (the names whose probability reaches the threshold, possibly none) and `probs`
      (independent sigmoids, name -> probability);
    - regression: `score`, a float in the training data's units;
    - token-classification: `entities`, each `{entity_group, score, word, start, end}` as the Hugging Face
      pipeline's aggregation_strategy="simple" gives them (character offsets into the text, word ==
      text[start:end]), and with `words=True` every word's `{word, start, end, tag, score}`.
    """

    label: str | None  # single-label: the class; None for the other types
    probs: dict[str, float] | None  # label name -> probability, in the order of model.labels; None for regression
    exit_layer: int  # 1-based layer whose head decided
    uncertainty: float  # the exit rule's uncertainty at that layer
    labels: list[str] | None = None  # multi-label: the labels that are on
    score: float | None = None  # regression: the predicted value
    entities: list[dict] | None = None  # token-classification: the entities found
    words: list[dict] | None = None  # token-classification, on request: every word's tag

    def to_dict(self) -> dict:
        """The fields of this problem type (what JSON answers hold): unset ones are left out."""
        return {k: v for k, v in (("label", self.label), ("labels", self.labels), ("score", self.score),
                                  ("entities", self.entities), ("words", self.words), ("probs", self.probs),
                                  ("exit_layer", self.exit_layer), ("uncertainty", self.uncertainty))
                if v is not None}


class EdgeModel:
    """A loaded bundle and its tokenizer, run by one of two engines.

    - graph: `model.onnx`, the exit rule compiled into one graph; one session run per batch.
    - staged: one session per part (embed, layer_NN) and the exit rule in Python between them;
      on CUDA the hidden states stay on the device (IO binding).
    """

    def __init__(self, path: Path, manifest: Manifest, device: str, threads: int | None, threading: str = "stop",
                 engine: str = "auto"):
        self.path = path
        self.manifest = manifest
        self.labels = list(manifest.labels)
        self.problem = manifest.problem
        self.rule = manifest.rule()
        self.thresholds = np.asarray(manifest.thresholds if manifest.thresholds else [0.5] * len(self.labels),
                                     dtype=np.float32)
        self._providers = providers(device)
        self._options = session_options(threads, threading)
        self._threading = threading
        self._threads = threads
        calibration = manifest.calibration
        # the thread use calibrate measured best here per batch size; an explicit `threads` overrides it
        self.thread_policy = calibration.threads if threads is None and calibration is not None else None
        kinds = [s.kind for s in manifest.staged]
        self.full = manifest.student != "transformer" or kinds == ["full"]
        if kinds and not self.full and (kinds[0] != "embed" or any(k != "layer" for k in kinds[1:]) or len(kinds) < 2):
            raise BundleError(f"bundle parts {kinds} are not 'embed' followed by 'layer' parts, nor one 'full' part")
        self.engine = self._choose_engine(engine, device)
        self._cuda_log = ""
        first = self._graph if self.engine == "graph" else self.sessions[0]
        active = first.get_providers()[0]
        if device == "cuda" and active != "CUDAExecutionProvider":
            wants = re.search(r"Require (cuDNN [0-9.*]+ and )?CUDA [0-9]+(\.[0-9*]+)?", self._cuda_log)
            raise DeviceError(
                "device='cuda' was asked for but onnxruntime could not start CUDA (no GPU, or CUDA/cuDNN "
                "libraries missing" + (f"; this onnxruntime-gpu says: {wants.group(0)}" if wants else "") +
                "); use device='cpu', or install the CUDA and cuDNN versions your onnxruntime-gpu was built for")
        if active != "CUDAExecutionProvider":
            self._providers = ["CPUExecutionProvider"]  # later parts: no second attempt, no second page of errors
        self.device = "cuda" if active == "CUDAExecutionProvider" else "cpu"
        pairs = [(manifest.graph, self._graph)] if self.engine == "graph" else list(zip(manifest.staged, self.sessions))
        check_graphs(path, manifest, pairs)
        self.encoder = TextEncoder.from_file(resolve_inside(path, manifest.tokenizer), manifest.max_length)

    def _choose_engine(self, engine: str, device: str) -> str:
        if engine not in ENGINES:
            raise InputError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
        has_graph = self.manifest.graph is not None
        has_staged = bool(self.manifest.staged)
        if engine == "graph" and not has_graph:
            raise BundleError(f"{self.path} has no compiled graph (model.onnx, schema 2); re-export it with "
                              "`edgekd export`, or use engine='staged'")
        if engine == "staged" and not has_staged:
            raise BundleError(f"{self.path} holds only the compiled graph; use engine='graph' (or 'auto')")
        if engine != "auto":
            return engine
        if not has_staged:
            return "graph"
        if not has_graph:
            return "staged"
        calibration = self.manifest.calibration
        if device != "cuda" and calibration is not None and calibration.engine in ("staged", "graph"):
            return calibration.engine
        return "staged" if device == "cuda" else "graph"

    def _session(self, part: Part) -> ort.InferenceSession:
        file = resolve_inside(self.path, part.file)
        trying_cuda = "CUDAExecutionProvider" in self._providers
        try:
            if not trying_cuda:
                return ort.InferenceSession(str(file), self._options, providers=self._providers)
            # onnxruntime prints a page of errors from C++ when CUDA cannot start; keep them for our own
            # one-line message (device="cuda") or drop them (device="auto" falls back to the CPU quietly)
            with captured_stderr() as log:
                session = ort.InferenceSession(str(file), self._options, providers=self._providers)
            self._cuda_log = log.text
            if session.get_providers()[0] == "CUDAExecutionProvider" and log.text:
                sys.stderr.write(log.text)
            return session
        except Exception as exc:  # onnxruntime raises its own untyped errors
            if not self._options.use_per_session_threads and "threadpool" in str(exc).lower().replace(" ", ""):
                raise EdgeKDError(
                    "threading='global' needs onnxruntime's process-wide thread pool, which can only be made "
                    "before any other onnxruntime session in this process; load edgekd bundles first, or use "
                    "threading='stop' (the default)") from exc
            raise BundleError(f"part {part.name}: cannot load {part.file}: {exc}") from exc

    @cached_property
    def sessions(self) -> list[ort.InferenceSession]:
        """One session per staged graph (opened on first use)."""
        if not self.manifest.staged:
            raise BundleError(f"{self.path} holds only the compiled graph; the staged engine is not available")
        return [self._session(part) for part in self.manifest.staged]

    @cached_property
    def _graph(self) -> ort.InferenceSession:
        return self._session(self.manifest.graph)

    @property
    def num_layers(self) -> int:
        """Layers (exits) of the student; from the manifest, so a bundle holding only model.onnx answers too."""
        return 1 if self.full else self.manifest.num_layers

    # ------------------------------------------------------------------ text API
    def classify(self, texts, speed: float | None = None, batch_size: int = 32,
                 threshold: float | None = None, words: bool = False) -> list[Prediction]:
        """Classify `texts`; results come back in input order.

        Each item is a text (`str`), or for a bundle made from text pairs a pair: `(text, text_pair)`, a
        list of two strings, or `{"text": ..., "text_pair": ...}` (an empty second text is a valid pair).
        Items are sorted by token length into batches of `batch_size` so that padding stays small; an
        item's result does not depend on its batch. `threshold` (multi-label bundles): a label is on when
        its probability reaches it; default the bundle's (per label when export chose them, else 0.5).
        Token-classification bundles answer each text's entities (and with `words`, every word's tag).
        """
        thresholds = self.threshold_values(threshold)
        if words and self.problem != TOKENS:
            raise InputError(f"words applies to token-classification bundles; this one is {self.problem}")
        logits, layers, uncertainty = self.outputs(texts, speed, batch_size)
        if self.problem == TOKENS:
            from runtime.entities import tag_answers

            return [Prediction(None, None, int(layers[i]), float(uncertainty[i]), **answer) for i, answer in
                    enumerate(tag_answers(self.encoder, self.items(texts), logits, self.labels, words))]
        return [self.answer(logits[i], int(layers[i]), float(uncertainty[i]), thresholds) for i in range(len(logits))]

    def outputs(self, texts, speed: float | None = None, batch_size: int = 32
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The raw outputs behind `classify`, in input order: the deciding heads' logits (N, C) (regression:
        values; token classification (N, T, C), T the longest item's tokens), exit layers (N,) and uncertainties
        (N,)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise InputTypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        speed = check_speed(self.manifest.default_speed if speed is None else speed)
        items = self.items(texts)
        ids, types = self.encoder.tokens(items)
        pair = self.manifest.text_pair
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        width = (max((len(row) for row in ids), default=1),) if self.problem == TOKENS else ()
        logits = np.zeros((len(ids), *width, len(self.labels)), dtype=np.float32)
        layers = np.zeros(len(ids), dtype=np.int64)
        uncertainty = np.zeros(len(ids), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            padded = self.encoder.pad([ids[i] for i in chunk], [types[i] for i in chunk] if pair else None)
            got, layers[chunk], uncertainty[chunk] = self._run_by_policy(*padded[:2], speed, *padded[2:])
            if width:
                logits[chunk, : got.shape[1]] = got
            else:
                logits[chunk] = got
        return logits, layers, uncertainty

    def threshold_values(self, threshold) -> np.ndarray:
        """Per-label thresholds for `threshold` (None: the bundle's); refused unless multi-label and in (0, 1)."""
        if threshold is None:
            return self.thresholds
        if self.problem != "multi-label":
            raise InputError(f"threshold applies to multi-label bundles; this one is {self.problem}")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
            raise InputError(f"threshold must be a number in (0, 1), got {threshold!r}")
        return np.full(len(self.labels), threshold, dtype=np.float32)

    def answer(self, logits: np.ndarray, layer: int, uncertainty: float, thresholds: np.ndarray | None = None
               ) -> Prediction:
        """One row's deciding-head outputs (C,) as the Prediction of this bundle's problem type."""
        if self.problem == "regression":
            return Prediction(None, None, layer, uncertainty, score=float(logits[0]))
        if self.problem == "multi-label":
            probs = sigmoid(logits)
            on = probs >= (self.thresholds if thresholds is None else thresholds)
            return Prediction(None, {n: float(p) for n, p in zip(self.labels, probs)}, layer, uncertainty,
                              labels=[n for n, chosen in zip(self.labels, on) if chosen])
        probs = softmax(logits)
        return Prediction(self.labels[int(probs.argmax())], {n: float(p) for n, p in zip(self.labels, probs)},
                          layer, uncertainty)

    def warm_up(self) -> None:
        """Run two items once, so that the first real call is not slow."""
        self.classify([("warm up", "") if self.manifest.text_pair else "warm up"] * 2, speed=0.0)

    def encode(self, items: list) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(input_ids, mask, token_type_ids or None) of `items` as one padded batch, for run_ids / trace_ids."""
        if self.manifest.text_pair:
            return self.encoder.pairs(items)
        return (*self.encoder(items), None)

    def items(self, texts) -> list:
        """`texts` as a list of what this bundle takes (runtime.items.parse_items)."""
        return parse_items(texts, self.manifest.text_pair)

    # ------------------------------------------------------------------- id API
    def _run_by_policy(self, input_ids, mask, speed, token_type_ids=None):
        """run_ids, with the calibrated thread use on CPU: batches of SPLIT_MIN_ROWS or more whole on
        every core or split across cores; smaller ones on onnxruntime's default threads or on one."""
        policy = self.thread_policy
        if not policy or self.device != "cpu":
            return self.run_ids(input_ids, mask, speed, token_type_ids=token_type_ids)
        if len(input_ids) >= SPLIT_MIN_ROWS:
            if policy.get("batch_32", {}).get("chosen") == "split":
                return self.run_split(input_ids, mask, speed, token_type_ids=token_type_ids)
        elif policy.get("batch_1", {}).get("chosen") == "one":
            return self._one_thread.run_ids(input_ids, mask, speed, token_type_ids=token_type_ids)
        return self.run_ids(input_ids, mask, speed, token_type_ids=token_type_ids)

    def variant(self, *, engine: str | None = None, threading: str | None = None,
                threads: int | None = -1) -> EdgeModel:
        """The same bundle on new sessions with another engine, thread-pool mode or thread count (-1: this
        model's); the manifest is not read or hash-checked again."""
        return EdgeModel(self.path, self.manifest, self.device, self._threads if threads == -1 else threads,
                         threading or self._threading, engine or self.engine)

    @cached_property
    def _one_thread(self) -> EdgeModel:
        """The same bundle on sessions with one intra-op thread each (opened on first use)."""
        return self.variant(threads=1)

    @cached_property
    def _pool(self):
        from concurrent.futures import ThreadPoolExecutor

        return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="edgekd")

    def run_split(self, input_ids: np.ndarray, mask: np.ndarray, speed: float, workers: int | None = None,
                  token_type_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """run_ids with the batch split into `workers` parts (default: one per core) run at once, each part
        on one-thread sessions: data parallel across cores instead of parallel inside each operator."""
        workers = max(1, min(workers or os.cpu_count() or 1, len(input_ids)))
        parts = [p for p in np.array_split(np.arange(len(input_ids)), workers) if len(p)]
        if len(parts) == 1:
            return self._one_thread.run_ids(input_ids, mask, speed, token_type_ids=token_type_ids)
        done = list(self._pool.map(lambda p: self._one_thread.run_ids(
            input_ids[p], mask[p], speed, token_type_ids=None if token_type_ids is None else token_type_ids[p]), parts))
        return tuple(np.concatenate([d[i] for d in done]) for i in range(3))

    @cached_property
    def graph_engine(self) -> GraphEngine:
        """model.onnx, the exit rule inside (opened on first use)."""
        return GraphEngine(self._graph, self.manifest.text_pair)

    @cached_property
    def staged_engine(self) -> StagedEngine:
        """One session per part, the exit rule in Python (opened on first use)."""
        return StagedEngine(self.sessions, self.rule, len(self.labels), self.device, self.full,
                            self.manifest.text_pair, self.encoder.special_ids if self.rule.per_token else None)

    def batch(self, input_ids, mask, token_type_ids=None) -> Batch:
        """A padded batch as this bundle's graphs take it (token_type_ids for a pair bundle, zeros when None)."""
        return Batch.of(input_ids, mask, token_type_ids, self.manifest.text_pair)

    def run_ids(self, input_ids: np.ndarray, mask: np.ndarray, speed: float, engine: str | None = None,
                token_type_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Early-exit inference on one padded batch (through `engine`, default this model's).

        Returns (logits (B,C) of the deciding layer, exit_layer (B,) 1-based,
        uncertainty (B,)). `token_type_ids` (B,T): the segment ids of a pair bundle (zeros when None).
        """
        batch = self.batch(input_ids, mask, token_type_ids)
        if (engine or self.engine) == "graph":
            return tuple(self.graph_engine.run(batch, speed))
        return self.staged_engine.run(batch, speed)

    def run_graph(self, input_ids: np.ndarray, mask: np.ndarray, speed: float, outputs: list[str] | None = None,
                  token_type_ids: np.ndarray | None = None) -> list[np.ndarray]:
        """One run of the compiled graph: (logits, exit_layer, uncertainty) (or the named `outputs`)."""
        return self.graph_engine.run(self.batch(input_ids, mask, token_type_ids), speed, outputs)

    def trace_ids(self, input_ids: np.ndarray, mask: np.ndarray,
                  token_type_ids: np.ndarray | None = None) -> np.ndarray:
        """Every exit head's logits for every row: (L, B, C). Used by calibration."""
        return self.staged_engine.trace(self.batch(input_ids, mask, token_type_ids))


def load(path: str | os.PathLike, device: str = "cpu", threads: int | None = None, warmup: bool = False,
         threading: str = "stop", engine: str = "auto") -> EdgeModel:
    """Load a bundle folder written by `edgekd export`.

    Checks the manifest schema, that every file exists inside the folder and
    matches its sha256, before any graph is opened. `device` is "cpu", "cuda"
    or "auto" (CUDA when onnxruntime can start it, else CPU). `threads` sets
    intra-op threads; None (default) follows what `edgekd calibrate` measured
    here per batch size (calibration.threads: batch 1 on onnxruntime's default
    threads or one; large batches whole or split across cores), 0 is
    onnxruntime's default (one thread per physical core) everywhere.
    `warmup` runs two texts once so the first real call is not slow.
    `threading`: "stop" (default) gives each part its own pool whose threads
    spin only while a run lasts; "global" shares one process-wide pool (faster
    at batch 1, but then every onnxruntime session in the process must use the
    global pool); "nospin" and "spin" as in onnxruntime (see
    benchmarks/results/threading.md for the measured difference).
    `engine`: "graph" runs the compiled model.onnx (the exit rule inside one
    graph), "staged" one session per part with the rule in Python; "auto"
    takes what the bundle's calibration measured as faster here (else graph
    on CPU, staged on CUDA, where hidden states stay on the device).
    """
    bundle = Path(path)
    manifest = read_manifest(bundle)
    verify_bundle(bundle, manifest)
    model = EdgeModel(bundle, manifest, device, threads, threading, engine)
    if warmup:
        model.warm_up()
    return model
