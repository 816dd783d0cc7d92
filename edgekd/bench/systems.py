"""The systems a bench compares, each built the way a user would run it:

- the edgekd runtime at one speed (the staged engine, or the compiled model.onnx: engine "graph");
- one full ONNX graph with onnxruntime's default session options (the teacher, or the student without exits);
- the teacher in PyTorch (transformers, eager attention);
- the student in PyTorch with FastBERT-style per-sample exit at batch 1 (how peers run early exit).

Builders take what they run (a loaded model, a graph file, a torch module) and return a `System`;
edgekd.bench.registry turns a recipe into these arguments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

import runtime
from edgekd.bench.measure import System, answers
from runtime.exits import TOKENS, ExitRule, leaves, rule_mask
from runtime.tokenize import TextEncoder


def edgekd_system(model: runtime.EdgeModel, speed: float, size: int | None = None, variant: str = "") -> System:
    """The edgekd runtime (either engine) at `speed`; `variant` names a thread-pool setting (a side row)."""

    problem = model.problem

    def predict(texts):
        results = model.classify(texts, speed=speed, batch_size=max(1, len(texts)), words=problem == TOKENS)
        if problem == TOKENS:  # each text's word tags (the entities are built from them in the same call)
            got = np.empty(len(results), dtype=object)
            got[:] = [[w["tag"] for w in r.words] for r in results]
        elif problem == "multi-label":
            got = np.array([[name in r.labels for name in model.labels] for r in results], dtype=bool)
        elif problem == "regression":
            got = np.array([r.score for r in results])
        else:
            got = np.array([r.label for r in results])
        return got, np.array([r.exit_layer for r in results])

    precision = model.manifest.precision
    tag = "" if precision == "fp32" else f" {precision}"
    graph = "-graph" if model.engine == "graph" else ""
    kind = "edgekd-variant" if variant else f"edgekd{graph}" + ("" if precision == "fp32" else f"-{precision}")
    return System(f"edgekd{tag} {model.engine}, speed {speed:g}{variant}", predict, kind, speed, size)


def _encodings(encoder: TextEncoder, texts: list, problem: str) -> list | None:
    """Token classification: the texts' encodings, whose words the tags are read for (else None)."""
    return encoder.encodings(texts) if problem == TOKENS else None


def onnx_system(name: str, kind: str, path: Path, encoder: TextEncoder, labels: list[str], layers: int,
                threads: int | None = None, problem: str = "single-label") -> System:
    """One full graph with onnxruntime's default session options (what a user would do)."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = np.array(labels)
    inputs = [i.name for i in session.get_inputs()]  # input_ids, mask (and token_type_ids for text pairs)

    def predict(texts):
        logits = session.run(None, dict(zip(inputs, encoder.pairs(texts))))[0]
        return answers(logits, problem, names, encodings=_encodings(encoder, texts, problem)), \
            np.full(len(texts), layers)

    return System(name, predict, kind, None, path.stat().st_size)


def teacher_torch_system(teacher, encoder: TextEncoder, labels: list[str], problem: str = "single-label") -> System:
    import torch

    from edgekd.distill.teacher import segment_kwargs

    names = np.array(labels)
    layers = teacher.config.num_hidden_layers

    @torch.inference_mode()
    def predict(texts):
        ids, mask, types = (torch.from_numpy(a) for a in encoder.pairs(texts))
        pair = isinstance(texts[0], tuple)
        logits = teacher(input_ids=ids, attention_mask=mask, **segment_kwargs(teacher, types if pair else None)).logits
        return answers(logits.numpy(), problem, names, encodings=_encodings(encoder, texts, problem)), \
            np.full(len(texts), layers)

    return System("teacher, PyTorch eager", predict, "teacher-torch")


def student_torch_exit_system(student, encoder: TextEncoder, labels: list[str], speed: float,
                              rule: ExitRule | None = None) -> System:
    """FastBERT-style: one text at a time, stop at the first layer the rule (the bundle's) lets it go."""
    import torch

    names = np.array(labels)
    rule = rule or ExitRule()

    @torch.inference_mode()
    def predict(texts):
        outputs, out_layers = [], []
        for text in texts:
            ids, mask, types = (torch.from_numpy(a) for a in encoder.pairs([text]))
            tokens = rule_mask(ids.numpy(), mask.numpy(), encoder.special_ids) if rule.per_token else None
            hidden = student.embeddings(ids, types if isinstance(text, tuple) else None)
            state = None
            for index, (layer, head) in enumerate(zip(student.layers, student.heads), start=1):
                hidden, _ = layer(hidden, mask)
                logits = head(hidden, mask).numpy()
                u, state = rule.step(logits, state, tokens)
                if leaves(u, speed, index == len(student.layers))[0]:
                    break
            outputs.append(logits[0])
            out_layers.append(index)
        return answers(outputs if rule.per_token else np.array(outputs), rule.problem, names,
                       encodings=_encodings(encoder, texts, rule.problem)), np.array(out_layers)

    return System(f"student, PyTorch per-sample exit b1, speed {speed:g}", predict, "student-torch-exit", speed,
                  batched=False)
