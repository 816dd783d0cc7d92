"""Property-based tests over the public surface (hypothesis).

The README's test command runs the default profile (a few hundred examples in all); the `fuzz`
profile (`scripts/fuzz.sh`, HYPOTHESIS_PROFILE=fuzz) runs at least 10,000. Properties: nothing
but the documented error types escapes; fp32 answers do not depend on the batch a text shares;
nothing is written outside the folder a call was given.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runtime
from edgekd.data import DataError, read_labelled, read_unlabelled
from runtime.errors import BundleError

settings.register_profile("default", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=2500, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)
ANYTHING = st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.binary(max_size=20), st.booleans(),
                     st.lists(st.integers(), max_size=3), TEXT)


@pytest.fixture(scope="module")
def models(bundle):
    return {engine: runtime.load(bundle, engine=engine) for engine in ("graph", "staged")}


@given(texts=st.lists(TEXT, max_size=12), speed=st.floats(0, 1), engine=st.sampled_from(["graph", "staged"]))
def test_classify_any_text_at_any_speed(models, texts, speed, engine):
    model = models[engine]
    results = model.classify(texts, speed=speed)
    assert len(results) == len(texts)
    for r in results:
        assert r.label in model.labels and list(r.probs) == model.labels
        assert abs(sum(r.probs.values()) - 1) < 1e-5
        assert 1 <= r.exit_layer <= model.num_layers and 0 <= r.uncertainty <= 1
        assert r.exit_layer == model.num_layers or r.uncertainty < speed


@given(texts=st.lists(st.one_of(TEXT, ANYTHING), min_size=1, max_size=6), speed=ANYTHING)
def test_classify_bad_input_raises_only_type_or_value_errors(models, texts, speed):
    try:
        models["graph"].classify(texts, speed=speed)
    except (TypeError, ValueError):
        pass


@given(texts=st.lists(TEXT, min_size=2, max_size=10), speed=st.sampled_from([0.0, 0.3, 0.6, 0.9]),
       engine=st.sampled_from(["graph", "staged"]))
def test_fp32_answers_do_not_depend_on_the_batch(models, texts, speed, engine):
    model = models[engine]
    together = model.classify(texts, speed=speed, batch_size=len(texts))
    for text, b in zip(texts, together):
        a = model.classify([text], speed=speed)[0]
        u = a.uncertainty
        if abs(u - speed) < 1e-5:
            continue  # on the threshold either way is right
        assert a.exit_layer == b.exit_layer and a.label == b.label
        assert np.allclose(list(a.probs.values()), list(b.probs.values()), atol=1e-5)


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@given(data=st.binary(max_size=400), suffix=st.sampled_from([".tsv", ".csv", ".jsonl", ".txt"]),
       labelled=st.booleans())
def test_readers_take_any_bytes(data, suffix, labelled):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / f"d{suffix}"
        path.write_bytes(data)
        before = _listing(folder)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                d = read_labelled(path) if labelled else read_unlabelled(path)
            except DataError:
                pass
            else:
                assert len(d.texts) > 0 and all(isinstance(t, str) for t in d.texts)
                if labelled:
                    assert len(d.labels) == len(d.texts) and len(d.label_names) >= 2
        assert _listing(folder) == before, "a reader writes nothing"


JSON = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                max_size=5), max_leaves=30)
MANIFEST_KEYS = ["labels", "max_length", "hidden_size", "num_layers", "parts", "vocabulary", "opset",
                 "default_speed", "tokenizer", "tokenizer_sha256", "schema_version", "precision", "student"]


@given(change=st.dictionaries(st.sampled_from(MANIFEST_KEYS), JSON, max_size=4), whole=st.one_of(st.none(), JSON))
def test_any_manifest_is_loaded_or_refused_with_a_bundle_error(bundle, change, whole):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "b"
        shutil.copytree(bundle, folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest.update(change)
        (folder / "manifest.json").write_text(json.dumps(manifest if whole is None else whole))
        before = _listing(Path(tmp))
        try:
            model = runtime.load(folder)
        except BundleError:
            pass
        else:
            assert model.classify(["good"])[0].label in model.labels
        assert _listing(Path(tmp)) == before, "loading writes nothing"
