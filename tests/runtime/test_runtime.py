"""The runtime on a bundle (the committed fixture, tests/runtime/conftest.py): the exit rule, batching, devices,
bad input. Torch-free; the numbers against the torch student are in tests/exporters/test_runtime_vs_torch.py."""

from __future__ import annotations

import random

import numpy as np
import pytest

import runtime
from runtime.errors import DeviceError
from tests.conftest import TEXTS


@pytest.fixture(scope="module")
def model(bundle):
    return runtime.load(bundle)


def test_middle_speeds_make_rows_leave_early(model):
    layers = [r.exit_layer for r in model.classify(TEXTS, speed=0.5)]
    assert min(layers) < model.num_layers, "the fixture student must exit early somewhere"
    assert len(set(layers)) > 1


def test_result_does_not_depend_on_batch_composition(model):
    speed = 0.4
    alone = [model.classify([t], speed=speed, batch_size=1)[0] for t in TEXTS]
    together = model.classify(TEXTS, speed=speed, batch_size=32)
    order = list(range(len(TEXTS)))
    random.Random(0).shuffle(order)
    shuffled = model.classify([TEXTS[i] for i in order], speed=speed, batch_size=5)
    unshuffled = [None] * len(TEXTS)
    for pos, i in enumerate(order):
        unshuffled[i] = shuffled[pos]
    for a, b, c in zip(alone, together, unshuffled):
        assert a.label == b.label == c.label
        assert a.exit_layer == b.exit_layer == c.exit_layer
        assert list(a.probs) == model.labels
        pa, pb, pc = (list(x.probs.values()) for x in (a, b, c))
        assert np.allclose(pa, pb, atol=1e-5) and np.allclose(pa, pc, atol=1e-5)


def test_speed_none_uses_manifest_default(model):
    model.manifest.default_speed = 0.6
    try:
        assert [r.exit_layer for r in model.classify(TEXTS)] == [r.exit_layer for r in model.classify(TEXTS, speed=0.6)]
    finally:
        model.manifest.default_speed = 0.0


def test_speed_one_exits_every_row_at_layer_one(model):
    assert {r.exit_layer for r in model.classify(TEXTS, speed=1.0)} == {1}


def test_normalized_entropy_bounds():
    u = runtime.normalized_entropy(np.array([[0.0, 0.0, 0.0], [50.0, 0.0, 0.0]]))
    assert u[0] == pytest.approx(1.0) and u[1] == pytest.approx(0.0, abs=1e-12)
    p = np.array([0.7, 0.2, 0.1])
    assert runtime.normalized_entropy(np.log(p)[None])[0] == pytest.approx(-(p * np.log(p)).sum() / np.log(3))


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="speed"):
        model.classify(["good"], speed=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        model.classify(["good"], batch_size=0)
    assert model.classify([]) == []


def test_unknown_device(bundle):
    with pytest.raises(DeviceError, match="unknown device"):
        runtime.load(bundle, device="tpu")


def test_cuda_without_gpu_names_the_problem(bundle):
    try:
        model = runtime.load(bundle, device="cuda")
    except DeviceError as exc:
        assert "cuda" in str(exc).lower()
    else:  # a machine with a working GPU
        assert model.device == "cuda"


def test_auto_device_falls_back_to_cpu_or_uses_cuda(bundle, capfd):
    import onnxruntime as ort

    model = runtime.load(bundle, device="auto")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert model.device in ("cuda", "cpu")  # the provider exists; a GPU may or may not be there
    else:
        assert model.device == "cpu"
        assert capfd.readouterr().err.count("\n") <= 1, "the fallback to CPU is quiet (one line at most)"
    assert model.classify(["good"])[0].label in model.labels


def test_bad_inputs_name_the_item(bundle):
    model = runtime.load(bundle)
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        model.classify(["fine", None])
    with pytest.raises(TypeError, match="speed must be a number"):
        model.classify(["fine"], speed="0.3")
    with pytest.raises(ValueError, match="speed must lie"):
        model.classify(["fine"], speed=2)


def test_global_threading_without_the_pool_says_what_to_do(bundle):
    import subprocess
    import sys

    script = f"""
import runtime, runtime.sessions as rs
rs._global_pool.append(0)  # as if the pool were made, while onnxruntime's environment has none
try:
    runtime.load({str(bundle)!r}, threading="global")
except runtime.EdgeKDError as exc:
    print(type(exc).__name__, exc)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    last = out.stdout.strip().splitlines()[-1]  # onnxruntime prints its own EP error block before it
    assert last.startswith("EdgeKDError threading='global' needs onnxruntime's process-wide thread pool")
    assert "threading='stop'" in last and "BundleError" not in out.stdout


@pytest.mark.slow  # about 1 s: the full tier (keeps `-m 'not slow'` under 60 s)
def test_a_very_long_text_is_cut_before_tokenizing_with_the_same_ids(bundle):
    import time

    model = runtime.load(bundle)
    long = "good film " * 100_000  # 1 MB
    began = time.perf_counter()
    ids = model.encoder.token_ids([long, ("x" * 5000) + " good", ("\u200b " * 20_000) + "good film"])
    assert time.perf_counter() - began < 1.0
    full = [e.ids for e in model.encoder.tokenizer.encode_batch([long, ("x" * 5000) + " good",
                                                                 ("\u200b " * 20_000) + "good film"])]
    assert ids == full


def test_a_lone_surrogate_is_named(bundle):
    from runtime.errors import InputError

    with pytest.raises(InputError, match=r"texts\[1\] holds a lone surrogate"):
        runtime.load(bundle).classify(["ok", "bad \ud800 text"])


def test_the_kernel_profile_counts_kernels_and_its_groups_add_up(bundle):
    """Issue 40, section 1: kernels per text from onnxruntime's profiler, time by group adding to the total."""
    from runtime.timing import KERNEL_GROUPS, kernel_profile

    model = runtime.load(bundle, engine="graph")
    full = kernel_profile(model, TEXTS[:4], speed=0.0)
    assert full["kernels_per_text"] > 10 * model.num_layers and full["texts"] == 4
    assert full["kernels_per_layer"] == pytest.approx(full["kernels_per_text"] / model.num_layers, abs=0.01)
    assert sum(full["ms_by_group"].values()) == pytest.approx(full["ms_per_text"], abs=1e-3)
    assert set(full["ms_by_group"]) <= set(KERNEL_GROUPS) | {"other"} and "matrix products" in full["ms_by_group"]
    fast = kernel_profile(model, TEXTS[:4], speed=0.9)  # rows leave early: fewer layers, fewer kernels
    assert fast["kernels_per_text"] < full["kernels_per_text"]


def test_pad_to_widest_pads_the_token_axis_only_with_the_fill():
    from runtime.tokenize import pad_to_widest

    batches = [np.ones((2, 3, 4)), np.ones((1, 5, 4))]
    padded = pad_to_widest(batches, axis=1, fill=-1)
    assert [p.shape for p in padded] == [(2, 5, 4), (1, 5, 4)]
    assert (padded[0][:, 3:] == -1).all() and (padded[0][:, :3] == 1).all() and (padded[1] == 1).all()
    rows = pad_to_widest([np.arange(2), np.arange(4)], axis=0, fill=-100)
    assert np.stack(rows).tolist() == [[0, 1, -100, -100], [0, 1, 2, 3]]
