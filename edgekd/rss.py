"""Peak resident memory of one bench system, each in a fresh process.

A process's peak RSS only ever grows, so systems measured in the bench's own process would
all report the largest one. `measure(recipe, texts)` starts `python -m edgekd.rss RECIPE TEXTS`, which
imports only what that system needs (the edgekd runtime never imports torch; the PyTorch teacher does),
loads it, classifies the texts at batch 32 and prints its peak RSS: what a service running that system
alone would hold, interpreter and libraries included.

A recipe is a small JSON-able dict naming how to rebuild the system: its `kind` (edgekd | onnx |
teacher-torch | student-torch-exit | fasttext | tfidf-lr | model2vec), the bundle whose tokenizer and
labels it uses, and the paths it loads.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

BATCH = 32


def build(recipe: dict):
    """The bench System a recipe describes, loaded in this process."""
    from edgekd import baselines

    kind, bundle = recipe["kind"], Path(recipe["bundle"])
    if kind == "edgekd":
        import runtime

        return baselines.staged_system(runtime.load(bundle, engine=recipe["engine"]), recipe["speed"])
    from runtime.manifest import read_manifest
    from runtime.tokenize import TextEncoder

    manifest = read_manifest(bundle)
    encoder = TextEncoder.from_file(bundle / manifest.tokenizer, manifest.max_length)
    labels = list(manifest.labels)
    if kind == "onnx":
        return baselines.onnx_system(kind, kind, Path(recipe["path"]), encoder, labels, recipe.get("layers", 0))
    if kind == "teacher-torch":
        from edgekd.teacher import load_teacher

        teacher = load_teacher(Path(recipe["run"]) / "teacher", len(labels))
        teacher.config._attn_implementation = "eager"
        return baselines.teacher_torch_system(teacher.eval(), encoder, labels)
    if kind == "student-torch-exit":
        from edgekd.students import load_student

        student = load_student(Path(recipe["run"]) / "student").eval()
        return baselines.student_torch_exit_system(student, encoder, labels, recipe["speed"])
    from edgekd import competitors

    work = Path(recipe["work"])
    if kind == "fasttext":
        return competitors.fasttext_system([], [], labels, work)
    if kind == "tfidf-lr":
        return competitors.tfidf_system([], [], labels, work)
    if kind == "model2vec":
        return competitors.model2vec_system("", [], [], labels, work)
    raise ValueError(f"unknown system kind {kind!r} in {recipe}")


def _peak_mb() -> float:
    """This process's peak RSS in MB: VmHWM where /proc has it (ru_maxrss on Linux also counts what the
    parent held when it forked us, which in the bench is the whole bench), ru_maxrss elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def main(argv: list[str]) -> None:
    recipe, texts = json.loads(argv[0]), json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    system = build(recipe)
    loaded = _peak_mb()
    step = BATCH if system.batched else 1
    for i in range(0, len(texts), step):
        system.predict(texts[i : i + step])
    print(json.dumps({"peak_rss_mb": round(_peak_mb(), 1), "after_load_mb": round(loaded, 1),
                      "torch_imported": "torch" in sys.modules}))


def measure(recipes: dict[str, dict], texts: list[str], log=print, timeout: float = 600) -> dict[str, dict | None]:
    """Peak RSS (MB) of each named recipe, one fresh process each; None where a process failed (logged)."""
    results: dict[str, dict | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "texts.json"
        path.write_text(json.dumps(texts), encoding="utf-8")
        for name, recipe in recipes.items():
            log(f"peak RSS: {name}")
            done = subprocess.run([sys.executable, "-m", "edgekd.rss", json.dumps(recipe), str(path)],
                                  capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "HF_HUB_OFFLINE": "1"})
            lines = done.stdout.strip().splitlines()
            if done.returncode != 0 or not lines:
                log(f"  failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:] or ''}")
                results[name] = None
                continue
            results[name] = json.loads(lines[-1])
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
