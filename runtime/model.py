"""Load a bundle and classify text with batched early exit.

The exit rule: after layer l the row's uncertainty is the normalized entropy of
its exit head, u = -sum(p log p) / log(C) in [0, 1]; the row leaves at the first
layer with u < speed (speed 0 runs every layer; the last layer always exits).
Rows that leave are dropped from the batch, so later layers run on fewer rows.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

try:
    import onnxruntime as ort
except ImportError as exc:  # the core install leaves the choice of ONNX Runtime to an extra
    raise ImportError("edgekd's runtime needs ONNX Runtime: pip install 'edgekd[cpu]' "
                      "(or 'edgekd[gpu]' on a machine with an NVIDIA GPU and CUDA)") from exc

from runtime.errors import BundleError, DeviceError, EdgeKDError
from runtime.exits import check_speed, leaves, normalized_entropy, softmax
from runtime.manifest import (
    ENGINES,
    GRAPH_INPUTS,
    STAGE_INPUTS,
    STAGE_OUTPUTS,
    Manifest,
    Stage,
    read_manifest,
    resolve_inside,
    verify_bundle,
)
from runtime.tokenize import TextEncoder

DEVICES = ("cpu", "cuda", "auto")
# The stage contract's names (runtime/manifest.py), unpacked once for the executors below.
(IDS,), (HIDDEN,) = STAGE_INPUTS["embed"], STAGE_OUTPUTS["embed"]
(_, MASK, ROWS), (HIDDEN_OUT, LOGITS) = STAGE_INPUTS["layer"], STAGE_OUTPUTS["layer"]
FULL_MASK = STAGE_INPUTS["full"][1]


@dataclass
class Prediction:
    label: str
    probs: dict[str, float]  # label name -> probability, in the order of model.labels
    exit_layer: int  # 1-based layer whose head decided
    uncertainty: float  # normalized entropy at that layer


class _Captured:
    text = ""


@contextlib.contextmanager
def _captured_stderr():
    """Collect what native code writes to file descriptor 2 (onnxruntime's C++ logging) meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    captured = _Captured()
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")


THREADING = ("stop", "global", "nospin", "spin")
SPLIT_MIN_ROWS = 16  # batches from this size may be split across cores, when calibration measured that faster
_global_pool: list[int] = []  # intra-op size of the process-wide pool, once this module created it


def _use_global_pool(threads: int | None) -> bool:
    """Make sure onnxruntime's process-wide thread pool exists; False where this onnxruntime cannot."""
    if not hasattr(ort, "set_global_thread_pool_sizes"):
        return False
    size = threads or 0  # 0: one thread per physical core
    if not _global_pool:
        try:
            ort.set_global_thread_pool_sizes(size, 1)
        except Exception:  # created already, by the app: use it as it is
            pass
        _global_pool.append(size)
    elif _global_pool[0] != size:
        warnings.warn(f"the global onnxruntime thread pool already has intra-op size {_global_pool[0] or 'auto'}; "
                      f"threads={threads} is ignored", stacklevel=3)
    return True


def _session_options(threads: int | None, threading: str = "stop") -> ort.SessionOptions:
    """Session options for one stage.

    With one session per layer, each session's idle intra-op threads keep
    spinning while the next session runs: a 6-stage chain was 3.5-5x slower
    than one graph on 2 cores (onnxruntime issue 17011). Modes:
    - stop (default): per-session pools that spin during a run and stop at its end;
    - global: one process-wide pool for every stage (fastest at batch 1, but
      onnxruntime then refuses any session in the process that asks for its own
      pool, so only for apps whose sessions all use the global pool);
    - nospin: per-session pools that never spin;
    - spin: onnxruntime's default (the slow case above).
    """
    if threading not in THREADING:
        raise ValueError(f"unknown threading {threading!r}; use one of {', '.join(THREADING)}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threading == "global" and _use_global_pool(threads):
        options.use_per_session_threads = False
        return options
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0" if threading == "nospin" else "1")
    if threading == "stop":
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


def _providers(device: str) -> list[str]:
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; use one of: {', '.join(DEVICES)}")
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in available:
        if device == "auto":
            return ["CPUExecutionProvider"]
        raise DeviceError(
            "device='cuda' needs onnxruntime-gpu with CUDA; this onnxruntime offers "
            f"{available}. Install it with `pip install onnxruntime-gpu` (Linux x86-64) "
            "or use device='cpu'"
        )
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


class _Outputs:
    """Per-row results of one batch, filled in as rows leave."""

    def __init__(self, batch: int, num_labels: int):
        self.logits = np.zeros((batch, num_labels), dtype=np.float32)
        self.layer = np.zeros(batch, dtype=np.int64)
        self.uncertainty = np.zeros(batch, dtype=np.float32)

    def record(self, logits: np.ndarray, alive: np.ndarray, layer: int, speed: float, last: bool) -> np.ndarray | None:
        """Apply the exit rule to the current rows; store those that leave.

        Returns the mask of rows that stay, or None when every row stays."""
        unc = normalized_entropy(logits)
        leave = leaves(unc, speed, last)
        if not leave.any():
            return None
        done = alive[leave]
        self.logits[done], self.layer[done], self.uncertainty[done] = logits[leave], layer, unc[leave]
        return ~leave


class EdgeModel:
    """A loaded bundle and its tokenizer, run by one of two engines.

    - graph: `model.onnx`, the exit rule compiled into one graph; one session run per batch.
    - staged: one session per stage (embed, layer_NN) and the exit rule in Python between them;
      on CUDA the hidden states stay on the device (IO binding).
    """

    def __init__(self, path: Path, manifest: Manifest, device: str, threads: int | None, threading: str = "stop",
                 engine: str = "auto"):
        self.path = path
        self.manifest = manifest
        self.labels = list(manifest.labels)
        self._providers = _providers(device)
        self._options = _session_options(threads, threading)
        self._threading = threading
        calibration = manifest.calibration
        # the thread use calibrate measured best here per batch size; an explicit `threads` overrides it
        self.thread_policy = calibration.threads if threads is None and calibration is not None else None
        kinds = [s.kind for s in manifest.staged]
        self.full = manifest.student != "transformer" or kinds == ["full"]
        if kinds and not self.full and (kinds[0] != "embed" or any(k != "layer" for k in kinds[1:]) or len(kinds) < 2):
            raise BundleError(f"bundle stages {kinds} are not 'embed' followed by 'layer' stages, nor one 'full' stage")
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
            self._providers = ["CPUExecutionProvider"]  # later stages: no second attempt, no second page of errors
        self.device = "cuda" if active == "CUDAExecutionProvider" else "cpu"
        self._check_graphs()
        self.encoder = TextEncoder.from_file(resolve_inside(path, manifest.tokenizer), manifest.max_length)

    def _check_graphs(self) -> None:
        """The manifest must describe the graphs it lists: the stage contract's input/output names and
        dtypes, as many logits as labels, each graph in its place (edgekd.stage metadata), and a max_length
        the position table holds. Every mismatch is reported in one BundleError."""
        problems: list[str] = []
        pairs = [(self.manifest.graph, self._graph)] if self.engine == "graph" else \
            list(zip(self.manifest.staged, self.sessions))
        for stage, session in pairs:
            where = f"{stage.file} (stage {stage.name!r})"
            inputs = {i.name: i.type for i in session.get_inputs()}
            outputs = {o.name: o for o in session.get_outputs()}
            want_in, want_out = STAGE_INPUTS.get(stage.kind, ()), STAGE_OUTPUTS.get(stage.kind, ())
            if set(inputs) != set(want_in):
                problems.append(f"{where}: inputs {sorted(inputs)}, but a {stage.kind} stage takes {sorted(want_in)}")
            if not set(want_out) <= set(outputs):
                problems.append(f"{where}: outputs {sorted(outputs)} lack {sorted(set(want_out) - set(outputs))}")
            for name in set(inputs) & {IDS, MASK, FULL_MASK, ROWS, GRAPH_INPUTS[1]}:
                if inputs[name] != "tensor(int64)":
                    problems.append(f"{where}: input {name} is {inputs[name]}, not tensor(int64)")
            logits = outputs.get(LOGITS)
            width = logits.shape[-1] if logits is not None and logits.shape else None
            if isinstance(width, int) and width != len(self.labels):
                problems.append(f"{where}: the graph gives {width} logits but the manifest lists "
                                f"{len(self.labels)} labels")
            meta = session.get_modelmeta().custom_metadata_map
            if "edgekd.stage" in meta and meta["edgekd.stage"] != stage.name:
                problems.append(f"{where}: the graph is stage {meta['edgekd.stage']!r}; the stage list is out of "
                                "order or a file was swapped")
            limit = int(meta.get("edgekd.max_position", 0) or 0)
            if limit and self.manifest.max_length > limit:
                problems.append(f"max_length {self.manifest.max_length} exceeds the {limit} positions the graphs "
                                "hold")
        if problems:
            raise BundleError(f"bundle {self.path} does not match its graphs:\n  - " + "\n  - ".join(problems))

    def _choose_engine(self, engine: str, device: str) -> str:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
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

    def _session(self, stage: Stage) -> ort.InferenceSession:
        file = resolve_inside(self.path, stage.file)
        trying_cuda = "CUDAExecutionProvider" in self._providers
        try:
            if not trying_cuda:
                return ort.InferenceSession(str(file), self._options, providers=self._providers)
            # onnxruntime prints a page of errors from C++ when CUDA cannot start; keep them for our own
            # one-line message (device="cuda") or drop them (device="auto" falls back to the CPU quietly)
            with _captured_stderr() as log:
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
            raise BundleError(f"stage {stage.name}: cannot load {stage.file}: {exc}") from exc

    @cached_property
    def sessions(self) -> list[ort.InferenceSession]:
        """One session per staged graph (opened on first use)."""
        if not self.manifest.staged:
            raise BundleError(f"{self.path} holds only the compiled graph; the staged engine is not available")
        return [self._session(stage) for stage in self.manifest.staged]

    @cached_property
    def _graph(self) -> ort.InferenceSession:
        return self._session(self.manifest.graph)

    @property
    def num_layers(self) -> int:
        return 1 if self.full else len(self.sessions) - 1

    # ------------------------------------------------------------------ text API
    def classify(self, texts: list[str] | str, speed: float | None = None, batch_size: int = 32) -> list[Prediction]:
        """Classify `texts`; results come back in input order.

        Texts are sorted by token length into batches of `batch_size` so that
        padding stays small; a text's result does not depend on its batch.
        """
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        speed = check_speed(self.manifest.default_speed if speed is None else speed)
        texts = list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{index}] is {type(text).__name__}, not str")
        ids = self.encoder.token_ids(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        results: list[Prediction | None] = [None] * len(ids)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            input_ids, mask = self.encoder.pad([ids[i] for i in chunk])
            logits, layers, uncertainty = self._run_by_policy(input_ids, mask, speed)
            probs = softmax(logits)
            for row, index in enumerate(chunk):
                results[index] = Prediction(
                    label=self.labels[int(probs[row].argmax())],
                    probs={name: float(p) for name, p in zip(self.labels, probs[row])},
                    exit_layer=int(layers[row]),
                    uncertainty=float(uncertainty[row]),
                )
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------------- id API
    def _run_by_policy(self, input_ids, mask, speed):
        """run_ids, with the calibrated thread use on CPU: batches of SPLIT_MIN_ROWS or more whole on
        every core or split across cores; smaller ones on onnxruntime's default threads or on one."""
        policy = self.thread_policy
        if not policy or self.device != "cpu":
            return self.run_ids(input_ids, mask, speed)
        if len(input_ids) >= SPLIT_MIN_ROWS:
            if policy.get("batch_32", {}).get("chosen") == "split":
                return self.run_split(input_ids, mask, speed)
        elif policy.get("batch_1", {}).get("chosen") == "one":
            return self._one_thread.run_ids(input_ids, mask, speed)
        return self.run_ids(input_ids, mask, speed)

    @cached_property
    def _one_thread(self) -> EdgeModel:
        """The same bundle on sessions with one intra-op thread each (opened on first use)."""
        return EdgeModel(self.path, self.manifest, "cpu", 1, self._threading, self.engine)

    @cached_property
    def _pool(self):
        from concurrent.futures import ThreadPoolExecutor

        return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="edgekd")

    def run_split(self, input_ids: np.ndarray, mask: np.ndarray, speed: float,
                  workers: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """run_ids with the batch split into `workers` parts (default: one per core) run at once, each part
        on one-thread sessions: data parallel across cores instead of parallel inside each operator."""
        workers = max(1, min(workers or os.cpu_count() or 1, len(input_ids)))
        parts = [p for p in np.array_split(np.arange(len(input_ids)), workers) if len(p)]
        if len(parts) == 1:
            return self._one_thread.run_ids(input_ids, mask, speed)
        done = list(self._pool.map(lambda p: self._one_thread.run_ids(input_ids[p], mask[p], speed), parts))
        return tuple(np.concatenate([d[i] for d in done]) for i in range(3))

    def run_ids(self, input_ids: np.ndarray, mask: np.ndarray, speed: float,
                engine: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Early-exit inference on one padded batch (through `engine`, default this model's).

        Returns (logits (B,C) of the deciding layer, exit_layer (B,) 1-based,
        uncertainty (B,)).
        """
        input_ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        mask = np.ascontiguousarray(mask, dtype=np.int64)
        if (engine or self.engine) == "graph":
            return tuple(self.run_graph(input_ids, mask, speed))
        if self.full:
            logits = self.sessions[0].run(None, {IDS: input_ids, FULL_MASK: mask})[0]
            return logits, np.ones(len(logits), dtype=np.int64), normalized_entropy(logits)
        if self.device == "cuda":
            return self._run_cuda(input_ids, mask, speed)
        return self._run_cpu(input_ids, mask, speed)

    def _run_cpu(self, input_ids, mask, speed):
        batch = input_ids.shape[0]
        out = _Outputs(batch, len(self.labels))
        hidden = self.sessions[0].run([HIDDEN], {IDS: input_ids})[0]
        alive = np.arange(batch)  # original row of each current row
        rows = np.arange(batch, dtype=np.int64)
        last = len(self.sessions) - 1
        for layer, session in enumerate(self.sessions[1:], start=1):
            hidden, logits = session.run([HIDDEN_OUT, LOGITS], {HIDDEN: hidden, MASK: mask, ROWS: rows})
            if layer < last and speed <= 0.0:
                continue  # u >= 0 always: nothing can leave before the last layer
            stay = out.record(logits, alive, layer, speed, layer == last)
            if stay is None:
                continue
            if not stay.any():
                break
            alive = alive[stay]
            # Compact on the host and trim padding to the longest survivor.
            width = int(mask[stay].sum(axis=1).max())
            hidden = hidden[stay, :width]
            mask = mask[stay, :width]
            rows = np.arange(len(alive), dtype=np.int64)
        return out.logits, out.layer, out.uncertainty

    def _run_cuda(self, input_ids, mask, speed):
        # Hidden states stay on the GPU between stages (IO binding); only the
        # logits come back, and the surviving rows are gathered inside each
        # layer graph through its `rows` input.
        batch = input_ids.shape[0]
        out = _Outputs(batch, len(self.labels))
        binding = self.sessions[0].io_binding()
        binding.bind_cpu_input(IDS, input_ids)
        binding.bind_output(HIDDEN, "cuda")
        self.sessions[0].run_with_iobinding(binding)
        hidden = binding.get_outputs()[0]
        alive = np.arange(batch)
        rows = np.arange(batch, dtype=np.int64)
        last = len(self.sessions) - 1
        for layer, session in enumerate(self.sessions[1:], start=1):
            binding = session.io_binding()
            binding.bind_ortvalue_input(HIDDEN, hidden)
            binding.bind_cpu_input(MASK, mask)
            binding.bind_cpu_input(ROWS, rows)
            binding.bind_output(HIDDEN_OUT, "cuda")
            binding.bind_output(LOGITS, "cpu")
            session.run_with_iobinding(binding)
            hidden, logits_value = binding.get_outputs()
            mask = mask[rows]
            rows = np.arange(len(alive), dtype=np.int64)
            stay = out.record(logits_value.numpy(), alive, layer, speed, layer == last)
            if stay is None:
                continue
            if not stay.any():
                break
            alive = alive[stay]
            rows = np.flatnonzero(stay).astype(np.int64)
        return out.logits, out.layer, out.uncertainty

    def run_graph(self, input_ids: np.ndarray, mask: np.ndarray, speed: float,
                  outputs: list[str] | None = None) -> list[np.ndarray]:
        """One run of the compiled graph: (logits, exit_layer, uncertainty) (or the named `outputs`)."""
        ids_name, mask_name, speed_name = GRAPH_INPUTS
        feeds = {ids_name: np.ascontiguousarray(input_ids, dtype=np.int64),
                 mask_name: np.ascontiguousarray(mask, dtype=np.int64),
                 speed_name: np.array(speed, dtype=np.float32)}
        return self._graph.run(outputs, feeds)

    def trace_ids(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Every exit head's logits for every row: (L, B, C). Used by calibration."""
        input_ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        mask = np.ascontiguousarray(mask, dtype=np.int64)
        if self.full:
            return self.run_ids(input_ids, mask, 0.0)[0][None]
        hidden = self.sessions[0].run([HIDDEN], {IDS: input_ids})[0]
        rows = np.arange(input_ids.shape[0], dtype=np.int64)
        every = []
        for session in self.sessions[1:]:
            hidden, logits = session.run([HIDDEN_OUT, LOGITS], {HIDDEN: hidden, MASK: mask, ROWS: rows})
            every.append(logits)
        return np.stack(every)

    def stage_times(self, texts: list[str], repeats: int = 3) -> tuple[float, np.ndarray]:
        """Where the time goes: mean seconds per text at batch 1 of (tokenize + embed, each layer
        with its exit test (L,)), best of `repeats` per text. Used by calibration and the bench."""
        import time

        if self.full:
            raise BundleError(f"{self.path} holds one graph without exits; it has no stages to time")
        sessions = self.sessions
        front, layers = [], []
        for text in texts:
            best = (float("inf"), [])
            for _ in range(repeats):
                start = time.perf_counter()
                ids, mask = self.encoder([text])
                hidden = sessions[0].run([HIDDEN], {IDS: ids})[0]
                t_front = time.perf_counter() - start
                per = []
                rows = np.arange(1, dtype=np.int64)
                for session in sessions[1:]:
                    start = time.perf_counter()
                    hidden, logits = session.run([HIDDEN_OUT, LOGITS], {HIDDEN: hidden, MASK: mask, ROWS: rows})
                    normalized_entropy(logits)
                    per.append(time.perf_counter() - start)
                if t_front + sum(per) < best[0] + sum(best[1]):
                    best = (t_front, per)
            front.append(best[0])
            layers.append(best[1])
        return float(np.mean(front)), np.mean(np.array(layers), axis=0)


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
    `threading`: "stop" (default) gives each stage its own pool whose threads
    spin only while a run lasts; "global" shares one process-wide pool (faster
    at batch 1, but then every onnxruntime session in the process must use the
    global pool); "nospin" and "spin" as in onnxruntime (see
    benchmarks/results/threading.md for the measured difference).
    `engine`: "graph" runs the compiled model.onnx (the exit rule inside one
    graph), "staged" one session per stage with the rule in Python; "auto"
    takes what the bundle's calibration measured as faster here (else graph
    on CPU, staged on CUDA, where hidden states stay on the device).
    """
    bundle = Path(path)
    manifest = read_manifest(bundle)
    verify_bundle(bundle, manifest)
    model = EdgeModel(bundle, manifest, device, threads, threading, engine)
    if warmup:
        model.classify(["warm up"] * 2, speed=0.0)
    return model


def machine_description() -> str:
    """A short description of this machine for calibration tables."""
    return f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} cores"
