"""The GPU path, run and timed on a real NVIDIA GPU, as one prepared script (scripts/gpu_check.sh calls it).

    python benchmarks/gpu_check.py OUT_DIR [--bundle B --data DEV.tsv] [--parts a,b,c] [--smoke]

Parts, in order, each written to OUT_DIR as soon as it is done (a cut-off run still reports):
  a. the CUDA tests (tests/runtime/test_cuda.py, by path) and a tiny distillation with --device cuda checked
     against the same tiny distillation on the CPU (first losses close, both bundles export and agree);
  b. the torch side at the quick preset's real shapes, weights made here (random weights time the same as
     trained ones): the teacher (MiniLM-L6 shape) in fp32 and fp16 and the quick student (4x384) at full depth,
     latency at batch 1 and throughput at 32 and 256; training steps per second (teacher fine-tuning and
     student distillation, batch 32, 64 tokens, bf16 autocast on CUDA);
  c. onnxruntime, where it has the CUDA provider (onnxruntime-gpu): the student bundle (fp32 and fp16)
     on the staged runtime (IO binding) and as model.onnx at batch 1, 32, 256, beside the teacher as one
     fp16 ONNX graph; with --bundle/--data, accuracy and layers used at each speed (exits need trained heads).
Without a GPU it says so and skips what needs one; --smoke runs b and c on the CPU at tiny shapes (to test
the script itself) and a in the same tiny form it always has. Never writes into benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgekd.presets import PRESETS  # noqa: E402

QUICK = {"teacher": dict(hidden=384, layers=6, heads=12, ffn=1536, vocab=30522),
         "student": {k: PRESETS["quick"]["student"][k] for k in ("hidden", "layers", "heads", "ffn")},
         "tokens": 24, "train_tokens": 64, "batch": 32}
SMOKE = {"teacher": dict(hidden=32, layers=2, heads=2, ffn=64, vocab=100),
         "student": dict(hidden=32, layers=2, heads=2, ffn=64), "tokens": 8, "train_tokens": 16, "batch": 4}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def write(out: Path, name: str, data) -> None:
    tmp = out / f".{name}.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / name)
    say(f"wrote {out / name}")


def environment() -> dict:
    import onnxruntime as ort
    import torch

    env = {"python": platform.python_version(), "machine": platform.machine(), "torch": torch.__version__,
           "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "onnxruntime": ort.__version__, "onnxruntime_providers": ort.get_available_providers()}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    smi = shutil.which("nvidia-smi")
    if smi:
        out = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True)
        env["nvidia_smi"] = out.stdout.strip() or out.stderr.strip()
    return env


def timed(fn, repeats: int, sync=lambda: None) -> float:
    """Median seconds of `fn()` over `repeats` runs after 3 warm-ups."""
    for _ in range(3):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


# ------------------------------------------------------------------------------------------------ part a
def part_a(out: Path, device: str) -> dict:
    """The CUDA tests, and a tiny distillation on `device` against the same on the CPU."""
    result: dict = {}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider",
                            "tests/runtime/test_cuda.py"], cwd=ROOT, capture_output=True, text=True)
    result["cuda_tests"] = {"returncode": tests.returncode, "summary": tests.stdout.strip().splitlines()[-1:]}
    (out / "cuda_tests.log").write_text(tests.stdout + tests.stderr)
    say(f"CUDA tests: {result['cuda_tests']['summary']}")
    import runtime
    from edgekd.distill.export import export_run
    from edgekd.testing.fixtures import tiny_teacher
    from edgekd.distill.pipeline import distill
    from tests.conftest import TEXTS, tiny_config
    from tests.golden.make_golden import make_files

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        teacher, files = tiny_teacher(tmp / "teacher"), make_files(tmp)
        runs, answers = {}, {}
        for where in dict.fromkeys(("cpu", device)):
            began = time.perf_counter()
            run = distill(tiny_config(teacher, files, tmp / f"run-{where}", device=where), log=lambda _: None)
            bundle = export_run(run, tmp / f"bundle-{where}").path
            metrics = json.loads((run / "metrics.json").read_text())
            runs[where] = {"seconds": time.perf_counter() - began, "dev": {k: v.get("dev_accuracy") for k, v in
                                                                           metrics.items() if isinstance(v, dict)}}
            answers[where] = [(r.label, r.exit_layer) for r in runtime.load(bundle).classify(TEXTS, speed=0.3)]
        result["tiny_distill"] = runs
        if device != "cpu":
            same = sum(a == b for a, b in zip(answers["cpu"], answers[device])) / len(TEXTS)
            result["tiny_distill"]["answers_agree"] = same  # bf16 autocast on CUDA: close, not bit-equal
    return result


# ------------------------------------------------------------------------------------------------ part b
def _models(shape: dict, device: str):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from edgekd.distill.model import EarlyExitStudent, StudentConfig

    t, s = shape["teacher"], shape["student"]
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(BertConfig(
        vocab_size=t["vocab"], hidden_size=t["hidden"], num_hidden_layers=t["layers"], num_attention_heads=t["heads"],
        intermediate_size=t["ffn"], num_labels=2)).to(device).eval()
    student = EarlyExitStudent(StudentConfig(vocab_size=t["vocab"], hidden_size=s["hidden"], num_layers=s["layers"],
                                             num_heads=s["heads"], ffn_size=s["ffn"], num_labels=2)).to(device).eval()
    return teacher, student


def part_b(out: Path, device: str, shape: dict, repeats: int) -> dict:
    import torch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    teacher, student = _models(shape, device)
    vocab, tokens = shape["teacher"]["vocab"], shape["tokens"]
    rows: list[dict] = []
    with torch.inference_mode():
        for batch in (1, 32, 256):
            ids = torch.randint(5, vocab, (batch, tokens), device=device)
            mask = torch.ones_like(ids)
            for name, model, dtype in (("teacher fp32", teacher, None), ("teacher fp16", teacher, torch.float16),
                                       ("student fp32 (full depth)", student, None)):
                if dtype is not None and device != "cuda":
                    continue
                m = model.to(dtype) if dtype is not None else model.float()
                call = (lambda: m(input_ids=ids, attention_mask=mask)) if m is teacher else (lambda: m(ids, mask))
                seconds = timed(call, repeats, sync)
                rows.append({"system": name, "batch": batch, "ms": 1e3 * seconds, "texts_per_s": batch / seconds})
                say(f"torch {name} batch {batch}: {1e3 * seconds:.3f} ms")
        teacher.float()
    steps = train_steps(shape, device, repeats)
    return {"rows": rows, "train_steps_per_s": steps}


def train_steps(shape: dict, device: str, repeats: int) -> dict:
    """Optimizer steps per second at the quick preset's shapes: teacher fine-tuning (CE) and the student's
    finetune stage (CE + soft-target KD from the teacher's logits), as edgekd.distill.train runs them (bf16 autocast on
    CUDA)."""
    import torch
    import torch.nn.functional as F

    from edgekd.distill import losses

    teacher, student = _models(shape, device)
    teacher.train(), student.train()
    batch, tokens, vocab = shape["batch"], shape["train_tokens"], shape["teacher"]["vocab"]
    ids = torch.randint(5, vocab, (batch, tokens), device=device)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (batch,), device=device)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device == "cuda" else \
        (lambda: torch.autocast("cpu", enabled=False))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    opt_t = torch.optim.AdamW(teacher.parameters(), lr=5e-5)
    opt_s = torch.optim.AdamW(student.parameters(), lr=1e-4)

    def teacher_step():
        with autocast():
            loss = F.cross_entropy(teacher(input_ids=ids, attention_mask=mask).logits, labels)
        loss.backward()
        opt_t.step()
        opt_t.zero_grad(set_to_none=True)

    def student_step():
        with autocast():
            with torch.no_grad():
                target = teacher(input_ids=ids, attention_mask=mask).logits
            logits = student(ids, mask).logits
            loss, _ = losses.task_distillation(logits, target, labels, "soft", 2.0, 0.7)
        loss.backward()
        opt_s.step()
        opt_s.zero_grad(set_to_none=True)

    out = {}
    for name, step in (("teacher", teacher_step), ("finetune", student_step)):
        seconds = timed(step, max(3, repeats // 4), sync)
        out[name] = 1.0 / seconds
        say(f"train {name}: {1.0 / seconds:.2f} steps/s")
    return out


# ------------------------------------------------------------------------------------------------ part c
def part_c(out: Path, device: str, shape: dict, repeats: int, bundle: str | None, data: str | None) -> dict:
    import numpy as np
    import onnxruntime as ort

    import runtime
    from exporters import export_full_graph, export_student
    from exporters.quantize import convert_fp16, precision_rewrite

    providers = ort.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in providers:
        return {"skipped": f"onnxruntime {ort.__version__} has no CUDA provider ({providers}): install "
                           "onnxruntime-gpu"}
    from edgekd.testing.fixtures import tiny_tokenizer

    teacher, student = _models(shape, "cpu")
    rows: list[dict] = []
    result: dict = {"rows": rows}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tokenizer = tiny_tokenizer(tmp / "tokenizer.json")  # ids are random below; the tokenizer only loads
        for precision in ("fp32", "fp16") if device == "cuda" else ("fp32",):
            folder = tmp / f"student-{precision}"
            export_student(student, tokenizer, ["negative", "positive"], folder, max_length=128,
                           rewrite=precision_rewrite(precision) if precision != "fp32" else None)
            for engine in ("staged", "graph"):
                model = runtime.load(folder, device=device, engine=engine)
                for batch in (1, 32, 256):
                    ids = np.random.default_rng(batch).integers(5, shape["teacher"]["vocab"],
                                                                (batch, shape["tokens"])).astype(np.int64)
                    mask = np.ones_like(ids)
                    seconds = timed(lambda: model.run_ids(ids, mask, 0.0), repeats)
                    rows.append({"system": f"student {precision} {engine}", "batch": batch, "ms": 1e3 * seconds,
                                 "texts_per_s": batch / seconds, "speed": 0.0})
                    say(f"onnxruntime student {precision} {engine} batch {batch}: {1e3 * seconds:.3f} ms")
        graph = tmp / "teacher.onnx"
        export_full_graph(teacher, graph, shape["teacher"]["vocab"], 128, atol=2e-4, name="teacher")
        if device == "cuda":
            graph = convert_fp16(graph, tmp / "teacher-fp16.onnx")
        session = ort.InferenceSession(str(graph), providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
                                       if device == "cuda" else ["CPUExecutionProvider"])
        for batch in (1, 32, 256):
            ids = np.random.default_rng(batch).integers(5, shape["teacher"]["vocab"], (batch, shape["tokens"]))
            feed = {"input_ids": ids.astype(np.int64), "mask": np.ones((batch, shape["tokens"]), np.int64)}
            seconds = timed(lambda: session.run(None, feed), repeats)
            rows.append({"system": f"teacher one ONNX graph ({'fp16' if device == 'cuda' else 'fp32'})",
                         "batch": batch, "ms": 1e3 * seconds, "texts_per_s": batch / seconds})
            say(f"onnxruntime teacher batch {batch}: {1e3 * seconds:.3f} ms")
    if bundle and data:
        from edgekd.data import read_labelled

        model = runtime.load(bundle, device=device)
        rows_data = read_labelled(data, label_names=model.labels, label_values=model.manifest.label_values)
        gold = np.array(rows_data.labels)
        index = {n: i for i, n in enumerate(model.labels)}
        result["accuracy"] = []
        for speed in (0.0, 0.3, 0.5, model.manifest.default_speed):
            for batch in (1, 32, 256):
                began = time.perf_counter()
                got = model.classify(rows_data.texts, speed=speed, batch_size=batch)
                seconds = time.perf_counter() - began
                result["accuracy"].append({
                    "speed": speed, "batch": batch, "texts_per_s": len(got) / seconds,
                    "accuracy": float(np.mean([index[r.label] == g for r, g in zip(got, gold)])),
                    "average_layers": float(np.mean([r.exit_layer for r in got]))})
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--parts", default="a,b,c")
    parser.add_argument("--bundle", default=None, help="a trained bundle (fits in one call: int8, or graph-only)")
    parser.add_argument("--data", default=None, help="labelled file for accuracy with exits (with --bundle)")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU: tests the script itself")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    out = args.out.resolve()
    if out == (ROOT / "benchmarks" / "results").resolve():
        parser.error("write into a folder of its own; copy what you keep into benchmarks/results/ by hand")
    out.mkdir(parents=True, exist_ok=True)
    env = environment()
    write(out, "gpu_env.json", env)
    gpu = bool(env["cuda_available"])
    if not gpu:
        say("no NVIDIA GPU here (torch sees no CUDA device): the GPU parts are skipped" +
            ("; --smoke runs them on the CPU at tiny shapes" if args.smoke else ""))
    device = "cuda" if gpu else "cpu"
    shape = QUICK if gpu and not args.smoke else SMOKE
    repeats = args.repeats if gpu else 3
    failed = []
    for part in [p.strip() for p in args.parts.split(",") if p.strip()]:
        if part not in ("a", "b", "c"):
            parser.error(f"unknown part {part!r}; parts are a, b, c")
        if not gpu and not args.smoke and part in ("b", "c"):
            write(out, f"gpu_part_{part}.json", {"skipped": "no NVIDIA GPU here"})
            continue
        say(f"part {part} on {device}")
        try:
            if part == "a":
                result = part_a(out, device)
            elif part == "b":
                result = part_b(out, device, shape, repeats)
            else:
                result = part_c(out, device, shape, repeats, args.bundle, args.data)
        except Exception as exc:  # a failing part is recorded and the next one still runs
            traceback.print_exc()
            result = {"failed": f"{type(exc).__name__}: {exc}"}
            failed.append(part)
        write(out, f"gpu_part_{part}.json", {"device": device, "shape": shape, **result})
    say("done" + (f"; failed parts: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
