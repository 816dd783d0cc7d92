"""The CUDA path (IO binding, hidden states on the device); skipped without a GPU."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import runtime
from runtime.errors import DeviceError
from tests.conftest import TEXTS


def cuda_model(bundle):
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDA provider here (install onnxruntime-gpu on a machine with an NVIDIA GPU)")
    try:
        return runtime.load(bundle, device="cuda")
    except DeviceError as exc:
        pytest.skip(f"no usable CUDA device: {exc}")


@pytest.mark.cuda
@pytest.mark.parametrize("speed", [0.0, 0.3, 0.6])
def test_cuda_matches_cpu(bundle, speed):
    gpu = cuda_model(bundle)
    cpu = runtime.load(bundle, device="cpu")
    a = cpu.classify(TEXTS, speed=speed, batch_size=8)
    b = gpu.classify(TEXTS, speed=speed, batch_size=8)
    assert [r.exit_layer for r in a] == [r.exit_layer for r in b]
    assert [r.label for r in a] == [r.label for r in b]
    assert np.allclose([list(r.probs.values()) for r in a], [list(r.probs.values()) for r in b], atol=1e-4)
