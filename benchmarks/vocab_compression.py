"""GLMD vocabulary compression of a finished student at several keep ratios.

    python benchmarks/vocab_compression.py RUN_DIR --data DEV.tsv [--keeps 1.0,0.5,0.3,0.1] [--out benchmarks/results]

For each ratio: export the run's student with `--vocab-keep`, then measure dev
accuracy at full depth with the runtime, embedding parameters, bundle size and
the share of dev tokens that were remapped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

import runtime
from edgekd.data import read_labelled
from edgekd.distill.export import export_run
from edgekd.distill.students import load_student
from exporters import bundle_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--data", required=True)
    parser.add_argument("--keeps", default="1.0,0.5,0.3,0.1")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--stem", default="vocab_compression")
    args = parser.parse_args()
    student = load_student(Path(args.run) / "student")
    total = sum(p.numel() for p in student.parameters())
    full_embedding = student.embeddings.word.weight.numel()
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="vocab-"))
    for keep in [float(k) for k in args.keeps.split(",")]:
        out = workdir / f"keep{keep:g}"
        result = export_run(args.run, out, vocab_keep=0.0 if keep >= 1.0 else keep, data=args.data)
        model = runtime.load(out)
        dev = read_labelled(args.data, label_names=model.labels)
        preds = model.classify(dev.texts, speed=0.0)
        accuracy = float(np.mean([model.labels.index(p.label) == y for p, y in zip(preds, dev.labels)]))
        v = result.manifest.vocabulary
        embedding = v.kept_size * result.manifest.hidden_size
        rows.append({"keep": keep, "kept_tokens": v.kept_size, "embedding_params": embedding,
                     "embedding_removed": 1 - embedding / full_embedding,
                     "student_params": total - full_embedding + embedding, "bundle_mb": bundle_size(out) / 1e6,
                     "dev_accuracy": accuracy, "dev_tokens_remapped": v.remapped_token_share or 0.0})
        print(rows[-1], flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    base = rows[0]["dev_accuracy"]
    lines = [f"### GLMD vocabulary compression of {Path(args.run).name}/student on {Path(args.data).name} "
             "(export-time, no retraining; full depth)", "",
             "| keep | kept tokens | embedding params | removed | student params | bundle MB | dev accuracy % | "
             "change (points) | dev tokens remapped |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['keep']:g} | {r['kept_tokens']} | {r['embedding_params'] / 1e6:.2f}M | "
                     f"{100 * r['embedding_removed']:.0f}% | {r['student_params'] / 1e6:.2f}M | {r['bundle_mb']:.1f} | "
                     f"{100 * r['dev_accuracy']:.2f} | {100 * (r['dev_accuracy'] - base):+.2f} | "
                     f"{100 * r['dev_tokens_remapped']:.2f}% |")
    table = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.stem}.md").write_text(table)
    (out / f"{args.stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
