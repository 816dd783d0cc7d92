"""Loading refuses damaged or foreign bundles before any inference, with clear messages."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import runtime
from runtime.errors import BundleError
from runtime.manifest import MANIFEST_FILE, SCHEMA_VERSION, sha256_file


def edit_manifest(folder, change):
    path = folder / MANIFEST_FILE
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_missing_stage_file(bundle_copy):
    (bundle_copy / "layer_02.onnx").unlink()
    with pytest.raises(BundleError, match="layer_02.onnx is missing"):
        runtime.load(bundle_copy)


def test_wrong_sha256(bundle_copy):
    with open(bundle_copy / "embed.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match="does not match its sha256"):
        runtime.load(bundle_copy)


def test_all_problems_reported_together(bundle_copy):
    (bundle_copy / "layer_01.onnx").unlink()
    (bundle_copy / "layer_03.onnx").unlink()
    with pytest.raises(BundleError) as info:
        runtime.load(bundle_copy)
    assert "layer_01.onnx" in str(info.value) and "layer_03.onnx" in str(info.value)


def test_newer_schema_names_the_upgrade(bundle_copy):
    edit_manifest(bundle_copy, lambda d: d.update(schema_version=SCHEMA_VERSION + 1))
    with pytest.raises(BundleError, match="upgrade"):
        runtime.load(bundle_copy)


@pytest.mark.parametrize("file, engine", [("layer_01.onnx", "staged"), ("model.onnx", "graph")])
def test_truncated_graph_with_matching_sha(bundle_copy, file, engine):
    path = bundle_copy / file
    path.write_bytes(path.read_bytes()[:200])

    def fix(d):
        for part in d["parts"]:
            if part["file"] == file:
                part["sha256"] = sha256_file(path)

    edit_manifest(bundle_copy, fix)
    with pytest.raises(BundleError, match=f"cannot load {file}"):
        runtime.load(bundle_copy, engine=engine)


@pytest.mark.parametrize("name", ["../outside.onnx", "/etc/passwd"])
def test_path_escaping_the_folder_is_refused(bundle_copy, name):
    (bundle_copy.parent / "outside.onnx").write_bytes((bundle_copy / "layer_01.onnx").read_bytes())

    def escape(d):
        d["parts"][1]["file"] = name

    edit_manifest(bundle_copy, escape)
    with pytest.raises(BundleError, match="outside the bundle"):
        runtime.load(bundle_copy)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="not a bundle folder"):
        runtime.load(tmp_path / "nothing")
    with pytest.raises(BundleError, match="manifest.json is missing"):
        runtime.load(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        runtime.load(tmp_path)


def test_unknown_manifest_field(bundle_copy):
    edit_manifest(bundle_copy, lambda d: d.update(shiny_new_field=1))
    with pytest.raises(BundleError, match="newer edgekd"):
        runtime.load(bundle_copy)


def test_classify_without_torch_in_a_subprocess(bundle):
    code = textwrap.dedent(f"""
        import sys
        import runtime
        model = runtime.load({str(bundle)!r})
        out = model.classify(["a superb film", "dull"], speed=0.3)
        assert len(out) == 2 and out[0].label in ("negative", "positive")
        banned = [m for m in ("torch", "transformers", "edgekd", "exporters") if m in sys.modules]
        print("BANNED", banned)
        sys.exit(1 if banned else 0)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BANNED []" in proc.stdout


def test_a_replaced_tokenizer_is_refused(bundle_copy):
    path = bundle_copy / "tokenizer.json"
    path.write_text(path.read_text().replace('"good"', '"goood"'))
    with pytest.raises(BundleError, match="tokenizer.json does not match its sha256"):
        runtime.load(bundle_copy)


def test_unlisted_files_are_refused(bundle_copy):
    (bundle_copy / "vocab_map.json").write_text("{}")
    with pytest.raises(BundleError, match="files the manifest does not list: vocab_map.json"):
        runtime.load(bundle_copy)


@pytest.mark.parametrize("engine", ["graph", "staged"])
def test_the_manifest_is_checked_against_the_graphs(bundle_copy, engine):
    edit_manifest(bundle_copy, lambda d: d["task"].update(labels=["a", "b", "c"]))
    with pytest.raises(BundleError, match="gives 2 logits but the manifest lists 3 labels"):
        runtime.load(bundle_copy, engine=engine)


def test_swapped_layer_files_are_found(bundle_copy):
    def swap(d):
        first, second = d["parts"][1], d["parts"][2]
        first["file"], second["file"] = second["file"], first["file"]
        first["sha256"], second["sha256"] = second["sha256"], first["sha256"]

    edit_manifest(bundle_copy, swap)
    with pytest.raises(BundleError, match="the list of parts is out of order or a file was swapped"):
        runtime.load(bundle_copy, engine="staged")
    edit_manifest(bundle_copy, lambda d: d["parts"].insert(1, d["parts"].pop(2)))
    with pytest.raises(BundleError, match="out of order"):
        runtime.load(bundle_copy)


def test_a_max_length_beyond_the_position_table_is_refused(bundle_copy):
    edit_manifest(bundle_copy, lambda d: d.update(max_length=100000))
    with pytest.raises(BundleError, match="exceeds the 64 positions"):
        runtime.load(bundle_copy)


def test_hostile_manifests_give_one_clear_error(bundle_copy, tmp_path):
    path = bundle_copy / "manifest.json"
    good = path.read_text()
    path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(BundleError, match="nested too deeply|schema_version"):
        runtime.load(bundle_copy)
    path.write_text(good)
    edit_manifest(bundle_copy, lambda d: d.update(max_length="40", tokenizer=None))
    with pytest.raises(BundleError, match="max_length has the wrong type.*\\n.*tokenizer has the wrong type"):
        runtime.load(bundle_copy)
    path.write_text(good)
    edit_manifest(bundle_copy, lambda d: d.update(max_length=1, default_speed=7))
    with pytest.raises(BundleError, match="max_length must be an integer >= 2.*\\n.*default_speed must lie"):
        runtime.load(bundle_copy)
    path.write_text(good)
    outside = tmp_path / "m.json"
    outside.write_text(good)
    path.unlink()
    path.symlink_to(outside)
    with pytest.raises(BundleError, match="symbolic link"):
        runtime.load(bundle_copy)


def test_a_bundle_holding_only_model_onnx_loads_and_answers(bundle_copy):
    """What a web page downloads: model.onnx, tokenizer.json and the manifest."""
    from edgekd.calibrate import calibrate
    from tests.conftest import TEXTS

    want = runtime.load(bundle_copy, engine="graph").classify(TEXTS, speed=0.5)

    def graph_only(data):
        for part in [s for s in data["parts"] if s["kind"] != "compiled"]:
            (bundle_copy / part["file"]).unlink()
        data["parts"] = [dict(s, index=0) for s in data["parts"] if s["kind"] == "compiled"]

    edit_manifest(bundle_copy, graph_only)
    model = runtime.load(bundle_copy)
    assert model.engine == "graph" and model.num_layers == 3
    assert model.classify(TEXTS, speed=0.5) == want
    with pytest.raises(BundleError, match="holds only the compiled graph"):
        runtime.load(bundle_copy, engine="staged")
    with pytest.raises(BundleError, match="holds only the compiled graph"):
        calibrate(bundle_copy, _tiny_dev(bundle_copy), max_drop=1.0)


def _tiny_dev(folder):
    path = folder.parent / "dev.tsv"
    path.write_text("sentence\tlabel\ngood film\tpositive\nbad plot\tnegative\n")
    return path
