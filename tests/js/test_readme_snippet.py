"""The README's JavaScript snippet runs as written (issue 43, item 15): installed the way the README says (npm
install of the js/ folder, which links it into node_modules), with the bundle at the path the snippet names."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "js"


def test_the_readme_snippet_runs_as_written(tmp_path):
    if not shutil.which("node") or not (JS / "node_modules").is_dir():
        pytest.skip("node or js/node_modules is missing (bash scripts/setup.sh installs them)")
    snippet = re.search(r"```js\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    bundle = re.search(r"load\('([^']+)'\)", snippet).group(1)
    app = tmp_path / "app"
    (app / "node_modules" / "@edgekd").mkdir(parents=True)
    (app / "node_modules" / "@edgekd" / "runtime").symlink_to(JS, target_is_directory=True)  # what `npm install ./js` makes
    shutil.copytree(JS / "test" / "fixtures" / "fp32", app / bundle)
    (app / "package.json").write_text('{"type": "module"}\n')
    (app / "snippet.js").write_text(snippet)
    out = subprocess.run(["node", "snippet.js"], capture_output=True, text=True, cwd=app, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] in ("negative", "positive"), out.stdout


def test_the_readme_transformers_js_snippet_runs_as_written(tmp_path):
    """The README's transformers.js lines load a `pack --target hf` folder at the path they name, offline."""
    if not shutil.which("node") or not (JS / "node_modules" / "@huggingface" / "transformers").is_dir():
        pytest.skip("node or js/node_modules is missing (bash scripts/setup.sh installs them)")
    snippet = next(b for b in re.findall(r"```js\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
                   if "@huggingface/transformers" in b)
    folder = re.search(r"pipeline\('text-classification', '([^']+)'\)", snippet).group(1)
    app = tmp_path / "app"
    (app / "node_modules").mkdir(parents=True)
    (app / "node_modules" / "@huggingface").symlink_to(JS / "node_modules" / "@huggingface", target_is_directory=True)
    shutil.copytree(JS / "test" / "fixtures" / "hf-fp32", app / folder)
    (app / "package.json").write_text('{"type": "module"}\n')
    (app / "snippet.js").write_text(snippet + "console.log(JSON.stringify(await classify('good film')));\n")
    out = subprocess.run(["node", "snippet.js"], capture_output=True, text=True, cwd=app, timeout=120,
                         env={"PATH": os.environ["PATH"], "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])[0]["label"] in ("negative", "positive"), out.stdout
