"""What one `edgekd bench` run is asked for (read by the plan and by the run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BenchOptions:
    bundle: Path
    data: Path
    out: Path | None = None  # results folder; default: ./<bundle name>-bench
    run_dir: Path | None = None  # the run folder (edgekd distill --out): teacher and student baselines
    speeds: list[float] | None = None  # default: REPORT_SPEEDS
    latency_texts: int = 200  # texts timed one by one at batch 1
    limit: int | None = None  # only the first N texts
    stem: str = "bench"
    thread_study: bool = True
    also: list[Path] = field(default_factory=list)  # other bundles of the same student (e.g. int8)
    js: bool = True
    competitors: bool = False
    train: Path | None = None  # train file for the competitors (default: the run's)
    profile: bool = False
    large_batch: bool = False
    rss: bool = False
    systems: list[str] | None = None  # groups to run (GROUPS); None: every group the options enable
    skip: list[str] = field(default_factory=list)
    resume: bool = False
    columns: dict[str, str] = field(default_factory=dict)  # text_column / text_pair_column / label_column

    def folder(self) -> Path:
        return Path(self.out) if self.out else Path(f"{Path(self.bundle).name}-bench")

    def settings(self, texts: int, speeds: list[float]) -> dict:
        """What a resumed run must share with the run it continues."""
        keep = ("latency_texts", "limit", "thread_study", "js", "competitors", "profile", "large_batch", "rss")
        return {"bundle": str(Path(self.bundle).resolve()), "data": str(Path(self.data).resolve()), "texts": texts,
                "run_dir": str(Path(self.run_dir).resolve()) if self.run_dir else None,
                "also": [str(Path(a).resolve()) for a in self.also], "speeds": speeds,
                "train": str(self.train) if self.train else None, **{k: getattr(self, k) for k in keep}}
