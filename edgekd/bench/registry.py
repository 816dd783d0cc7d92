"""One registry of system kinds: name -> builder(recipe, context) -> System.

The bench run and the fresh-process peak-RSS measurement (edgekd.bench.rss) build every system
through `build`, so a system measured for speed and one measured for memory are the same thing.
A recipe is a small JSON-able dict: its `kind`, the bundle whose tokenizer and labels it uses, the
run folder and scratch folder it reads, and the kind's own settings (engine, speed, ...).

`GROUPS` are the names `edgekd bench --systems / --skip` take: each names the rows it adds.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Callable

import runtime
from edgekd.bench import competitors, systems
from edgekd.bench.measure import System
from edgekd.data import read_labelled
from edgekd.run_folder import RunFolder
from runtime.errors import EdgeKDError
from runtime.manifest import bundle_size, read_manifest
from runtime.tokenize import TextEncoder

GROUPS = {
    "teacher-torch": "the teacher in PyTorch (needs --run)",
    "teacher-onnx": "the teacher as one ONNX graph (needs --run)",
    "teacher-optimum": "the teacher fused + dynamic int8, the Optimum way (--competitors, needs --run)",
    "student-onnx": "the student as one full ONNX graph, no exits (needs --run)",
    "student-torch-exit": "the student in PyTorch, per-sample exit at batch 1 (needs --run)",
    "edgekd-staged": "the bundle (and --also bundles) on the staged runtime at each speed",
    "edgekd-graph": "model.onnx through the Python runtime at each speed",
    "edgekd-threads": "the staged runtime at speed 0 with other thread-pool settings",
    "fasttext": "supervised fastText on the train split (--competitors)",
    "tfidf-lr": "TF-IDF + logistic regression (one-vs-rest for multi-label; ridge for regression) (--competitors)",
    "model2vec": "model2vec distilled from the teacher + LR (one-vs-rest; ridge for regression) (--competitors, "
                 "needs --run)",
    "crf": "a CRF on word features, token classification's classic tagger (sklearn-crfsuite) (--competitors)",
    "node": "model.onnx in Node (onnxruntime-node)",
    "browser": "model.onnx in Chromium (onnxruntime-web, wasm)",
}


class Context:
    """What the systems of one bench share, each loaded once: the bundle's manifest, tokenizer and labels,
    runtime models per (bundle, engine, threading), the run's teacher and student, the scratch folder
    (`work`) where baselines are exported or trained once, and the train rows of the competitors."""

    def __init__(self, bundle: str | Path, run_dir: str | Path | None = None, work: str | Path | None = None,
                 train: str | Path | None = None, log: Callable[[str], None] = print):
        self.bundle = Path(bundle)
        self.run = RunFolder(Path(run_dir)) if run_dir else None
        self.work = Path(work) if work else None
        self.train = train
        self.log = log
        self._models: dict[tuple, runtime.EdgeModel] = {}

    @cached_property
    def manifest(self):
        return read_manifest(self.bundle)

    @property
    def labels(self) -> list[str]:
        return list(self.manifest.labels)

    @property
    def problem(self) -> str:
        return self.manifest.problem

    @cached_property
    def encoder(self) -> TextEncoder:
        return TextEncoder.from_file(self.bundle / self.manifest.tokenizer, self.manifest.max_length)

    def model(self, bundle: str | Path, engine: str, threading: str = "stop") -> runtime.EdgeModel:
        """A runtime model of `bundle`, loaded (and hash-checked) once; other engines and thread settings are
        variants of the loaded one."""
        key = (str(bundle), engine, threading)
        if key not in self._models:
            first = next((m for k, m in self._models.items() if k[0] == str(bundle)), None)
            model = runtime.load(bundle, engine=engine, threading=threading) if first is None else \
                first.variant(engine=engine, threading=threading)
            model.warm_up()
            self._models[key] = model
        return self._models[key]

    def _need_run(self, what: str) -> RunFolder:
        if self.run is None:
            raise EdgeKDError(f"{what} needs the run folder: give --run RUN_DIR")
        return self.run

    @cached_property
    def teacher(self):
        from edgekd.distill.teacher import load_teacher

        teacher = load_teacher(self._need_run("the teacher").teacher, len(self.labels), problem=self.problem)
        teacher.config._attn_implementation = "eager"
        return teacher.eval()

    def teacher_shape(self) -> dict:
        """The teacher's layers, heads, width and FFN size, read from its config (no weights loaded)."""
        if not hasattr(self, "_teacher_shape"):
            from transformers import AutoConfig

            from edgekd.distill.families import family_of

            c = AutoConfig.from_pretrained(self._need_run("the teacher").teacher)
            family = family_of(c)
            self._teacher_shape = {"layers": family.num_layers(c), "heads": c.num_attention_heads,
                                   "hidden": c.hidden_size, "ffn": family.ffn_size(c)}
        return self._teacher_shape

    @cached_property
    def student(self):
        from edgekd.distill.students import load_student

        return load_student(self._need_run("the student").student).eval()  # the run's recorded student type

    def _scratch(self, name: str) -> Path:
        if self.work is None:
            raise ValueError("no scratch folder for exported baselines")
        self.work.mkdir(parents=True, exist_ok=True)
        return self.work / name

    def teacher_onnx(self) -> Path:
        """The teacher as one ONNX graph (exported once into the scratch folder, checked against torch)."""
        path = self._scratch("teacher.onnx")
        if not path.is_file():
            from exporters import export_full_graph

            from edgekd.distill.teacher import has_segments

            self.log("exporting the teacher as one ONNX graph")
            pair = self.manifest.text_pair and has_segments(self.teacher)
            export_full_graph(self.teacher, path, self.teacher.config.vocab_size, self.manifest.max_length,
                              atol=2e-4, name="teacher", text_pair=pair)
        return path

    def student_onnx(self) -> Path:
        path = self._scratch("student.onnx")
        if not path.is_file():
            from exporters import export_full_graph

            self.log("exporting the student as one ONNX graph")
            c = self.student.config
            export_full_graph(self.student, path, c.original_vocab_size or c.vocab_size, self.manifest.max_length,
                              name="student", text_pair=self.manifest.text_pair)
        return path

    @cached_property
    def train_rows(self):
        train = self.train
        if train is None and self.run is not None:
            train = json.loads(self.run.config.read_text())["data"]["train"]
        if train is None:
            raise EdgeKDError("the competitors need the training file: give --run RUN_DIR or --train PATH")
        rows = read_labelled(train, label_names=self.labels, label_values=self.manifest.label_values,
                             problem=self.problem)
        self.log(f"competitors trained on {len(rows.texts)} rows of {train}")
        return rows

    def recipe(self, kind: str, **settings) -> dict:
        """A recipe of `kind` that a fresh process can rebuild with this context's paths."""
        return {"kind": kind, "bundle": str(self.bundle), "run": str(self.run.root) if self.run else None,
                "work": str(self.work) if self.work else None, **settings}

    @classmethod
    def from_recipe(cls, recipe: dict, log: Callable[[str], None] = print) -> Context:
        return cls(recipe["bundle"], recipe.get("run"), recipe.get("work"), log=log)


def _edgekd(r: dict, c: Context) -> System:
    model = c.model(r.get("system_bundle", r["bundle"]), r["engine"], r.get("threading", "stop"))
    return systems.edgekd_system(model, r["speed"], bundle_size(model.path), r.get("variant", ""))


def _teacher_onnx(r: dict, c: Context) -> System:
    return systems.onnx_system("teacher, one ONNX graph", "teacher-onnx", c.teacher_onnx(), c.encoder, c.labels,
                               r["layers"], problem=c.problem)


def _student_onnx(r: dict, c: Context) -> System:
    return systems.onnx_system("student, one ONNX graph", "student-onnx", c.student_onnx(), c.encoder, c.labels,
                               r["layers"], problem=c.problem)


def _teacher_optimum(r: dict, c: Context) -> System:
    return competitors.teacher_optimum(c.teacher_onnx(), r["heads"], r["hidden"], c.encoder, c.labels, r["layers"],
                                       c._scratch(""), c.problem)


def _training(c: Context, artifact: str) -> tuple[list, list]:
    """(texts, labels) to train a competitor on, or empty lists when its `artifact` is already in the scratch
    folder (a resumed bench, or the fresh process of the RSS measurement, reads the trained one)."""
    if c._scratch(artifact).is_file():
        return [], []
    return c.train_rows.texts, c.train_rows.labels


def _fasttext(r: dict, c: Context) -> System:
    return competitors.fasttext_system(*_training(c, "fasttext.bin"), c.labels, c._scratch(""), problem=c.problem)


def _tfidf(r: dict, c: Context) -> System:
    return competitors.tfidf_system(*_training(c, "tfidf-lr.joblib"), c.labels, c._scratch(""), c.problem)


def _model2vec(r: dict, c: Context) -> System:
    texts, labels = _training(c, "model2vec-head.joblib")
    if texts:
        c.log("model2vec: distilling static embeddings from the teacher (a minute on 2 cores)")
    return competitors.model2vec_system(c._need_run("model2vec").teacher, texts, labels, c.labels, c._scratch(""),
                                        c.problem)


def _crf(r: dict, c: Context) -> System:
    from edgekd.tokens import word_gold

    texts, tags = _training(c, "crf.joblib")
    return competitors.crf_system(texts, word_gold(c.encoder, texts, tags, c.labels) if texts else [], c.encoder,
                                  c._scratch(""))


KINDS: dict[str, Callable[[dict, Context], System]] = {
    "edgekd": _edgekd,
    "teacher-torch": lambda r, c: systems.teacher_torch_system(c.teacher, c.encoder, c.labels, c.problem),
    "teacher-onnx": _teacher_onnx,
    "teacher-optimum": _teacher_optimum,
    "student-onnx": _student_onnx,
    "student-torch-exit": lambda r, c: systems.student_torch_exit_system(c.student, c.encoder, c.labels, r["speed"],
                                                                         c.manifest.rule()),
    "fasttext": _fasttext,
    "tfidf-lr": _tfidf,
    "model2vec": _model2vec,
    "crf": _crf,
}


def build(recipe: dict, context: Context) -> System:
    """The System a recipe describes, built in this process (its recipe attached)."""
    kind = recipe.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown system kind {kind!r}; known: {', '.join(KINDS)}")
    system = KINDS[kind](recipe, context)
    system.recipe = recipe
    return system
