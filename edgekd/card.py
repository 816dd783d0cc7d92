"""The model card: README.md inside every bundle exported from a run.

Written at export and again whenever `edgekd calibrate` changes the calibration; listed and hashed in
the manifest like every other file. It is rendered from the manifest alone (`manifest.source` keeps what
it says of the training), with the front matter a model hub reads (library_name, pipeline_tag, license,
base_model, metrics). Torch-free: calibrate runs without torch.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from runtime.errors import EdgeKDError
from runtime.exits import TOKENS
from runtime.files import atomic_write_text
from runtime.manifest import Manifest, read_manifest, sha256_file, write_manifest

CARD_FILE = "README.md"


def training_source(run_config: dict, student: dict, train_rows: int | None, dev_rows: int | None) -> dict:
    """What the card says of the training: teacher, data, sizes, the student's shape, the teacher's licence."""
    teacher = str(run_config.get("teacher", ""))
    data = run_config.get("data", {})
    name = _model_name(teacher)  # the name only: no path of the machine that exported it
    return {"teacher": name, "base_model": name, "license": _licence(teacher), "model_type": _model_type(teacher),
            "train": Path(data.get("train", "")).name, "train_rows": train_rows,
            "dev": Path(data.get("dev", "")).name, "dev_rows": dev_rows, "student": student}


def _model_type(teacher: str) -> str | None:
    """The teacher family's `model_type` from its config.json (what `pack --target hf` writes into config.json);
    None when the folder is not there."""
    try:
        return json.loads((Path(teacher) / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def _model_name(teacher: str) -> str:
    """The teacher's name as its own folder gives it: a hub id (no folder), the id a sentence-transformers
    folder's README loads itself by, the hub cache's folder (models--org--name), the id a plain transformers
    config records (`_name_or_path`; a sentence-transformers model records its base there, not itself), else the
    folder's name."""
    folder = Path(teacher)
    if not teacher:
        return "unknown"
    if not folder.is_dir():
        return teacher  # a hub id
    if (folder / "modules.json").is_file() or (folder / "config_sentence_transformers.json").is_file():
        try:
            readme = (folder / "README.md").read_text(encoding="utf-8")
        except OSError:
            readme = ""
        found = re.search(r"(?:SentenceTransformer|from_pretrained)\(['\"]([\w.-]+/[\w.-]+)['\"]\)", readme)
        if found:
            return found.group(1)
    cached = next((p.name for p in [folder, *folder.parents] if p.name.startswith("models--")), None)
    if cached:
        return cached[len("models--"):].replace("--", "/", 1)
    if not (folder / "config_sentence_transformers.json").is_file():
        try:
            name = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("_name_or_path")
        except (OSError, ValueError):
            name = None
        if name and not os.path.isabs(str(name)) and not str(name).startswith("."):
            return str(name)
    return folder.name


def _licence(teacher: str) -> str:
    """The licence the teacher's folder states (README front matter `license:`), else 'unknown'."""
    try:
        text = (Path(teacher) / "README.md").read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    if text.startswith("---"):
        for line in text.split("---", 2)[1].splitlines():
            if line.strip().startswith("license:"):
                return line.split(":", 1)[1].strip() or "unknown"
    return "unknown"


def shown_points(points, chosen: float | None = None) -> list:
    """The calibration points a table shows (the card, inspect, calibrate): every 0.05 of speed, and the chosen
    one (calibration keeps a finer grid in the manifest)."""
    return [p for p in points if abs(round(20 * p.speed) - 20 * p.speed) < 1e-6 or p.speed == chosen]


def render(manifest: Manifest) -> str:
    """The card's text for `manifest`."""
    s = manifest.source or {}
    problem = manifest.problem
    binary = len(manifest.labels) == 2 and problem == "single-label"
    metrics = list(manifest.task.metrics) + (["f1"] if binary else [])
    library = "transformers.js" if manifest.target == "hf" else "edgekd"  # the hub shows that library's snippet
    tokens = problem == TOKENS
    front = ["---", f"library_name: {library}",
             f"pipeline_tag: {'token-classification' if tokens else 'text-classification'}",
             f"license: {s.get('license', 'unknown')}",
             f"base_model: {s.get('base_model', 'unknown')}", "metrics:", *[f"  - {m}" for m in metrics],
             "tags:", "  - early-exit", "  - onnx", "  - knowledge-distillation",
             *(["  - edgekd", "  - optimum"] if manifest.target == "hf" else []), "---", ""]
    kind = "text pairs (text, text_pair)" if manifest.text_pair else "single texts"
    student = s.get("student", {})
    does = {"single-label": f"Classifies {kind} into one of {len(manifest.labels)} labels: "
                            f"{', '.join(manifest.labels)}.",
            "multi-label": f"Tags {kind} with any number of {len(manifest.labels)} labels (independent sigmoids; "
                           f"a label is on at probability >= its threshold): {', '.join(manifest.labels)}.",
            "regression": f"Scores {kind} with one number, `{manifest.labels[0]}`, in the training data's units.",
            TOKENS: f"Tags every word of {kind} with one of {len(manifest.labels)} tags ({', '.join(manifest.labels)})"
                    " and groups the tagged words into entities with their character offsets. A text leaves at a "
                    "layer when every token is sure (the largest normalized entropy over its tokens is below "
                    "`speed`)."}
    if manifest.thresholds:
        does["multi-label"] += " Thresholds per label (chosen on held-out rows at export): " + ", ".join(
            f"{n} {t:g}" for n, t in zip(manifest.labels, manifest.thresholds)) + "."
    what = {"single-label": "label, probs", "multi-label": "labels, probs", "regression": "score",
            TOKENS: "entities ({entity_group, score, word, start, end})"}[problem]
    model_kind = {"regression": "regression model", TOKENS: "token classifier"}.get(problem, "classifier")
    lines = [f"# {'Text-pair' if manifest.text_pair else 'Text'} {model_kind} with early exit (edgekd)", "",
             does[problem], "",
             "## Where it came from", "",
             f"- teacher: `{s.get('base_model', 'unknown')}` (licence: {s.get('license', 'unknown')})",
             f"- training data: `{s.get('train', '?')}` ({s.get('train_rows', '?')} rows), dev `{s.get('dev', '?')}` "
             f"({s.get('dev_rows', '?')} rows)",
             f"- student: {manifest.student}, {manifest.num_layers} layers, hidden {manifest.hidden_size}" +
             (f", {student.get('num_heads')} heads, FFN {student.get('ffn_size')}" if student.get("num_heads")
              else "") +
             f", an exit head after every layer; max length {manifest.max_length} tokens",
             f"- precision: {manifest.precision}" + (f" ({manifest.quantization['chosen']}: "
                                                     f"{manifest.quantization['why']})"
                                                     if manifest.quantization else ""),
             f"- vocabulary: {manifest.vocabulary.kept_size} of {manifest.vocabulary.original_size} tokens kept", ""]
    lines += ["## Speed and accuracy", ""]
    cal = manifest.calibration
    if cal and cal.points:
        lines += [f"Measured by `edgekd calibrate` on {cal.data} ({cal.machine}; {cal.rule or 'no rule'}); the "
                  f"default speed is {manifest.default_speed:g}.", "",
                  "| speed | " + "".join(f"{m.replace('_', '-')} x 100 | " for m in metrics) +
                  "average layers | latency ms (batch 1) |", "|---|" + "---|" * len(metrics) + "---|---|"]
        for p in shown_points(cal.points, manifest.default_speed):
            values = [p.accuracy if m == "accuracy" else p.f1 if m == "f1" else (p.metrics or {}).get(m)
                      for m in metrics]
            latency = f"{p.latency_ms:.3f}" if p.latency_ms is not None else "-"
            lines.append(f"| {p.speed:g} | " + "".join("- | " if v is None else f"{100 * v:.2f} | " for v in values)
                         + f"{p.average_layers:.2f} | {latency} |")
        g = cal.guarantee
        if g:
            lines += ["", f"The promise (`edgekd calibrate --confidence`): at speed {g['speed']:g}, at most "
                          f"{100 * g['budget']:g}% of rows from the calibration data's distribution get an answer "
                          f"{g['loss']}, with probability {g['confidence']:g} over the draw of its {g['rows']} rows "
                          f"({g['losses']} of them were; the {g['confidence']:g} upper bound on the share is "
                          f"{100 * g['bound']:.2f}%; {g['method']})." + (f" {g['note']}." if g.get("note") else "")]
    else:
        lines.append(f"Not calibrated: the default speed is {manifest.default_speed:g} "
                     "(`edgekd calibrate BUNDLE --data FILE --max-drop 1` measures it).")
    first = '("a question", "another question")' if manifest.text_pair else '"a text"'
    inputs = "`input_ids`, `attention_mask`" + (", `token_type_ids`" if manifest.text_pair else "")
    graph = manifest.graph.file if manifest.graph else "model.onnx"
    if manifest.target == "hf":
        lines += hf_usage(manifest, graph)
    elif manifest.target != "all":
        lines += ["", "## What this bundle holds", "",
                  f"The slim bundle for the {manifest.target} target (`edgekd pack`): `{graph}`"
                  + (" (the ONNX Runtime format that ONNX Runtime Mobile loads)" if graph.endswith(".ort") else "")
                  + ", the tokenizer and the manifest; the per-layer graphs (staged engine, `edgekd calibrate`) are "
                  "in the full bundle it was packed from."]
    lines += ["", "## How to run it", "",
              "Python (`pip install edgekd[cpu]`: numpy, onnxruntime, tokenizers; no torch):", "", "```python",
              "import runtime", "model = runtime.load(\"path/to/this/bundle\")",
              f"print(model.classify([{first}]))   # {what}, exit_layer, uncertainty", "```", "",
              "JavaScript (`@edgekd/runtime`, Node or the browser): `const model = await load(url); await "
              f"model.classify([{first.replace('(', '[').replace(')', ']')}])`.", "",
              f"Any ONNX Runtime binding: `{graph}` takes {inputs} (int64 [B,T], from this folder's "
              f"`tokenizer.json`, truncated to {manifest.max_length} tokens) and `speed` (float32 scalar: 0 runs "
              "every layer, higher lets confident inputs leave earlier); it returns `logits` "
              f"{'[B,T,C] (every token; 0 on padding)' if tokens else '[B,C]'}, `exit_layer` [B] (1-based) and "
              "`uncertainty` [B].", ""]
    return "\n".join(front + lines)


def hf_usage(manifest: Manifest, graph: str) -> list[str]:
    """The card section of a `pack --target hf` folder: what it holds, and how transformers.js and Optimum load
    it, with what a generic pipeline returns where edgekd answers otherwise."""
    speed = f"{manifest.default_speed:g}"
    pair = manifest.text_pair
    problem = manifest.problem
    tokens = problem == TOKENS
    js_call = "const tag = await pipeline('token-classification', DIR);\nconsole.log(await tag('a text'));" \
        if tokens else ("const tokenizer = await AutoTokenizer.from_pretrained(DIR);\n"
               "const model = await AutoModelForSequenceClassification.from_pretrained(DIR);\n"
               "const { logits } = await model(await tokenizer(['a question'], { text_pair: ['another question'], "
               "padding: true, truncation: true }));") if pair else \
        "const classify = await pipeline('text-classification', DIR);\nconsole.log(await classify('a text'));"
    py_call = 'classify({"text": "a question", "text_pair": "another question"})' if pair else 'classify("a text")'
    kind = "Token" if tokens else "Sequence"
    generic = {
        "single-label": "The pipelines return the softmax of the logits, as edgekd does.",
        "multi-label": "A generic pipeline applies the sigmoid and, by default, returns the top label only; edgekd "
                       "turns a label on where its probability reaches the threshold chosen for it"
                       + (" (" + ", ".join(f"{n} {t:g}" for n, t in zip(manifest.labels, manifest.thresholds)) + ")"
                          if manifest.thresholds else " (0.5)")
                       + ". Ask for every label's probability (transformers.js `top_k: null`, transformers "
                         "`top_k=None`) and compare each with its threshold to get edgekd's label sets.",
        TOKENS: "The pipelines read every token's tags from `logits` (0 on padding) and group them into entities "
                "(transformers: `aggregation_strategy=\"simple\"`), as edgekd's answers are grouped; edgekd reads a "
                "word's tag at its first sub-token.",
        "regression": "The logit is the score in the training data's units. transformers (Optimum) returns it "
                      "as it is (problem_type regression, `function_to_apply='none'`); transformers.js 4 applies "
                      "a softmax over the one output and so always says 1.0: read `logits` from the model "
                      "instead (`AutoModelForSequenceClassification`).",
    }[problem]
    return ["", "## What this folder holds", "",
            f"The folder the Hugging Face tools load as it is (`edgekd pack --target hf`): `{graph}`, `config.json`, "
            "`tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`, this card and edgekd's "
            "manifest, which hashes every file (edgekd's runtimes load and verify the same folder). "
            f"In `{graph}` the `speed` input holds a default, {speed} (the bundle's calibrated speed), as an "
            "initializer: a tool that feeds only the tokenizer's outputs runs the student with early exit on. "
            "transformers.js and Optimum print onnxruntime's warning that the initializer `speed` appears in the "
            "graph inputs once when they load it; that is this default, and harmless.", "",
            "## With transformers.js or Optimum", "",
            "transformers.js (`npm install @huggingface/transformers`; Node or the browser):", "", "```js",
            "import { " + ("AutoTokenizer, AutoModelForSequenceClassification" if pair and not tokens else "pipeline")
            + " } from '@huggingface/transformers';",
            "const DIR = './path/to/this/folder';  // a local folder: ./ (a URL in the browser)", js_call, "```",
            "", "Optimum (`pip install optimum-onnx[onnxruntime]`):", "", "```python",
            f"from optimum.onnxruntime import ORTModelFor{kind}Classification",
            "from transformers import AutoTokenizer, pipeline",
            f'model = ORTModelFor{kind}Classification.from_pretrained("path/to/this/folder"' +
            (', file_name="model_quantized.onnx")  # the name says which file: no warning' if graph.endswith(
                "_quantized.onnx") else ")"),
            'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
            ('classify = pipeline("token-classification", model=model, tokenizer=tokenizer, '
             'aggregation_strategy="simple")' if tokens else
             'classify = pipeline("text-classification", model=model, tokenizer=tokenizer)'),
            f"print({py_call})", "```", "", generic, "",
            f"Both run at speed {speed}; another speed needs edgekd's Python runtime (`model.classify(..., "
            "speed=...)` feeds `speed`, which Python's onnxruntime honours) or the bundle `edgekd export` wrote "
            "(onnxruntime-node and -web ignore a fed initializer, so edgekd's JS runtime refuses another speed "
            "on this folder)."]


def write_card(bundle: str | os.PathLike, manifest: Manifest | None = None) -> Path:
    """Write README.md for the bundle (from its manifest), and list and hash it in the manifest."""
    bundle = Path(bundle)
    manifest = manifest or read_manifest(bundle)
    path = atomic_write_text(bundle / CARD_FILE, render(manifest))
    manifest.card, manifest.card_sha256 = CARD_FILE, sha256_file(path)
    write_manifest(bundle, manifest)
    return path


def rehash_card(bundle: str | os.PathLike) -> bool:
    """Record the model card as it is now (after a hand edit) in the manifest; the rest of the bundle is verified
    strictly first. Returns whether the card had changed."""
    import warnings

    from runtime.manifest import BundleWarning, verify_bundle

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BundleWarning)  # the edit this records
        verify_bundle(bundle, manifest)
    if manifest.card is None:
        raise EdgeKDError(f"{bundle} has no model card; `edgekd card {bundle} --rewrite` writes one")
    digest = sha256_file(bundle / manifest.card)
    changed = digest != manifest.card_sha256
    manifest.card_sha256 = digest
    write_manifest(bundle, manifest)
    return changed


def front_matter(text: str) -> dict:
    """The card's front matter as a dict (lists for indented `- item` lines)."""
    block = text.split("---", 2)[1]
    out: dict = {}
    key = None
    for line in block.strip().splitlines():
        if line.startswith("  - ") and key:
            out.setdefault(key, []).append(line[4:].strip())
        elif ":" in line:
            key, value = (part.strip() for part in line.split(":", 1))
            out[key] = value if value else []
    return out
