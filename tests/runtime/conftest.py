"""The runtime's tests run on committed bundles (js/test/fixtures/, made by scripts/make_js_fixtures.py) instead of
the session's torch-built ones, so this folder needs neither torch nor transformers: with EDGEKD_TEST_WITHOUT_TORCH=1
importing them raises, and tests/runtime/test_layering.py runs the folder that way."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "js" / "test" / "fixtures"
BLOCKED = {"torch", "transformers", "exporters", "onnx"}


class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed here (EDGEKD_TEST_WITHOUT_TORCH)")
        return None


if os.environ.get("EDGEKD_TEST_WITHOUT_TORCH") == "1":
    sys.meta_path.insert(0, _Blocked())


@pytest.fixture(scope="session")
def bundle() -> Path:
    """A single-text bundle: 3 layers, labels negative / positive, exits spread over the layers."""
    return FIXTURES / "fp32"


@pytest.fixture
def bundle_copy(bundle, tmp_path) -> Path:
    """A copy that a test may break."""
    return Path(shutil.copytree(bundle, tmp_path / "bundle"))
