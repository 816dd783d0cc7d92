"""Peak resident memory of one bench system, each in a fresh process.

A process's peak RSS only ever grows, so systems measured in the bench's own process would all
report the largest one. `measure(recipe, texts)` starts `python -m edgekd.bench.rss JOB.json`, which
builds the system from its recipe through the one registry (importing only what that system needs:
the edgekd runtime never imports torch; the PyTorch teacher does), classifies the texts at batch 32
and prints its peak RSS: what a service running that system alone would hold, interpreter and
libraries included.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from edgekd.bench.registry import Context, build

BATCH = 32


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
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    recipe = job["recipe"]
    texts = [t if isinstance(t, str) else tuple(t) for t in job["texts"]]  # JSON keeps a pair as a list
    system = build(recipe, Context.from_recipe(recipe, log=lambda _: None))
    loaded = _peak_mb()
    step = BATCH if system.batched else 1
    for i in range(0, len(texts), step):
        system.predict(texts[i : i + step])
    print(json.dumps({"peak_rss_mb": round(_peak_mb(), 1), "after_load_mb": round(loaded, 1),
                      "torch_imported": "torch" in sys.modules}))


def measure_one(recipe: dict, texts: list[str], timeout: float = 600) -> dict:
    """Peak RSS (MB) of the system a recipe builds, alone in a fresh process; raises RuntimeError with the
    process's last error line when it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.json"
        path.write_text(json.dumps({"recipe": recipe, "texts": texts}), encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "edgekd.bench.rss", str(path)], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exit {done.returncode}: {last}")
    return json.loads(lines[-1])


def measure(recipes: dict[str, dict], texts: list[str], log=print, timeout: float = 600) -> dict[str, dict | None]:
    """Peak RSS of each named recipe, one fresh process each; None where a process failed (logged)."""
    results: dict[str, dict | None] = {}
    for name, recipe in recipes.items():
        log(f"peak RSS: {name}")
        try:
            results[name] = measure_one(recipe, texts, timeout)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            log(f"  failed: {exc}")
            results[name] = None
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
