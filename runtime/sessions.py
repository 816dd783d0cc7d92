"""onnxruntime plumbing for the runtime: execution providers, session options, thread pools,
and the capture of onnxruntime's C++ logging while a CUDA session starts.

Kept apart from the engines (runtime/model.py) so that what a session is opened with is read in
one place; torch-free like the rest of the runtime.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings

import onnxruntime as ort

from runtime.errors import BundleError, DeviceError, InputError
from runtime.manifest import GRAPH_INPUTS, PAIR_INPUT, PART_INPUTS, PART_OUTPUTS, part_inputs

# inputs of the part contract that carry token ids, masks or row indices: int64 in every graph
INT64_INPUTS = {PART_INPUTS["embed"][0], *PART_INPUTS["layer"][1:], *PART_INPUTS["full"], GRAPH_INPUTS[1],
                PAIR_INPUT}
LOGITS = PART_OUTPUTS["layer"][1]

DEVICES = ("cpu", "cuda", "auto")


class Captured:
    text = ""


@contextlib.contextmanager
def captured_stderr():
    """Collect what native code writes to file descriptor 2 (onnxruntime's C++ logging) meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    captured = Captured()
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


def session_options(threads: int | None, threading: str = "stop") -> ort.SessionOptions:
    """Session options for one part.

    With one session per layer, each session's idle intra-op threads keep
    spinning while the next session runs: a 6-part chain was 3.5-5x slower
    than one graph on 2 cores (onnxruntime issue 17011). Modes:
    - stop (default): per-session pools that spin during a run and stop at its end;
    - global: one process-wide pool for every part (fastest at batch 1, but
      onnxruntime then refuses any session in the process that asks for its own
      pool, so only for apps whose sessions all use the global pool);
    - nospin: per-session pools that never spin;
    - spin: onnxruntime's default (the slow case above).
    """
    if threading not in THREADING:
        raise InputError(f"unknown threading {threading!r}; use one of {', '.join(THREADING)}")
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


def providers(device: str) -> list[str]:
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


def check_graphs(path, manifest, pairs) -> None:
    """The manifest must describe the graphs it lists (`pairs`: (part entry, its open session)): the
    part contract's input/output names and dtypes, as many logits as labels, each graph in its place
    (edgekd.part metadata), and a max_length the position table holds. Every mismatch is reported in
    one BundleError."""
    problems: list[str] = []
    for part, session in pairs:
        where = f"{part.file} (part {part.name!r})"
        # an input may also be an initializer the graph holds a default for (pack --target hf: `speed`), which
        # onnxruntime lists apart from the inputs and still takes by name
        inputs = {i.name: i.type for i in [*session.get_inputs(), *session.get_overridable_initializers()]}
        outputs = {o.name: o for o in session.get_outputs()}
        want_in, want_out = part_inputs(part.kind, manifest.text_pair), PART_OUTPUTS.get(part.kind, ())
        if set(inputs) != set(want_in):
            problems.append(f"{where}: inputs {sorted(inputs)}, but a {part.kind} part takes {sorted(want_in)}")
        if not set(want_out) <= set(outputs):
            problems.append(f"{where}: outputs {sorted(outputs)} lack {sorted(set(want_out) - set(outputs))}")
        for name in set(inputs) & INT64_INPUTS:
            if inputs[name] != "tensor(int64)":
                problems.append(f"{where}: input {name} is {inputs[name]}, not tensor(int64)")
        logits = outputs.get(LOGITS)
        width = logits.shape[-1] if logits is not None and logits.shape else None
        if isinstance(width, int) and width != len(manifest.labels):
            problems.append(f"{where}: the graph gives {width} logits but the manifest lists "
                            f"{len(manifest.labels)} labels")
        meta = session.get_modelmeta().custom_metadata_map
        placed = meta.get("edgekd.part", meta.get("edgekd.stage"))  # (bundles of schemas 1-3 wrote .stage)
        if placed is not None and placed != part.name:
            problems.append(f"{where}: the graph is part {placed!r}; the list of parts is out of "
                            "order or a file was swapped")
        limit = int(meta.get("edgekd.max_position", 0) or 0)
        if limit and manifest.max_length > limit:
            problems.append(f"max_length {manifest.max_length} exceeds the {limit} positions the graphs "
                            "hold")
    if problems:
        raise BundleError(f"bundle {path} does not match its graphs:\n  - " + "\n  - ".join(problems))
