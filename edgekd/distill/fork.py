"""`edgekd distill --from RUN`: a new run that takes over another run's finished stages, up to the first stage
whose settings differ, and trains that stage and every later one afresh.

A variant of a run (the exit heads self-distilled longer, another attention objective) then costs only the
stages it changes: its teacher, transfer set and earlier students are the source run's, the same files on disk
(hard links). The data, the student's shape and the seed must be the source run's; the stages' own option
sections (teacher_stage, refine, attention, finetune, branches) may differ. A stage is taken over only when the
source run finished it, the new run lists it, its options are unchanged and every stage before it in run order
was taken over too; a stage the source ran and the new run drops (or the reverse) ends the take-over there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from edgekd.config import STAGES, ConfigError, DistillConfig
from edgekd.distill.prepare import RESUMABLE_KEYS, config_changes
from edgekd.run_folder import RunFolder

# the config section each stage reads its options from (baseline runs finetune's schedule)
STAGE_OPTIONS = {"teacher": "teacher_stage", "refine": "refine", "attention": "attention", "baseline": "finetune",
                 "finetune": "finetune", "branches": "branches"}
assert set(STAGE_OPTIONS) == set(STAGES), "every stage names its options section"


def stages_to_take(old: dict, new: dict, finished: list[str]) -> tuple[list[str], str]:
    """(the source's stages the new run takes over, why the take-over stops: '' when it takes every stage)."""
    order = [s for s in STAGES if s in new["stages"] or s in finished]
    kept: list[str] = []
    for stage in order:
        section = STAGE_OPTIONS[stage]
        if stage not in finished:
            return kept, f"the source run has not finished {stage}"
        if stage not in new["stages"]:
            return kept, f"this run leaves out {stage}, which the source ran"
        if old[section] != new[section]:
            return kept, f"the {stage} stage's settings differ ({'; '.join(config_changes(old, new, [section]))})"
        kept.append(stage)
    return kept, ""


def fork_run(source: str | Path, cfg: DistillConfig, log: Callable[[str], None]) -> list[str]:
    """Start `cfg.out` from `source`'s finished stages that `cfg` (as edgekd.distill.prepare resolved it) shares;
    returns the stages taken over. A target that already is a run folder is left as it is (the caller resumes
    it); nothing is written when the source cannot be forked (one ConfigError names every problem)."""
    src, dst = RunFolder(Path(source)), RunFolder(Path(cfg.out))
    if dst.config.is_file():
        log(f"--from: {dst.root} is already a run; resuming it (--from only starts a new one)")
        return dst.finished()
    problems = []
    if not src.config.is_file():
        problems.append(f"--from {src.root}: not a run folder (no {src.config.name}); give a folder written by "
                        "`edgekd distill --out`")
    if src.root.resolve() == dst.root.resolve():
        problems.append(f"--from {src.root} is --out itself; give a new --out for the variant")
    if dst.root.exists() and any(dst.root.iterdir()):
        problems.append(f"--out {dst.root} is a folder that is not a run; --from starts a new run: give an empty "
                        "or new folder")
    if problems:
        raise ConfigError(problems)
    old, new = DistillConfig.load(src.config).to_dict(), cfg.to_dict()
    shared = [k for k in new if k not in RESUMABLE_KEYS and k not in STAGE_OPTIONS.values()]
    differ = [k for k in shared if old.get(k) != new[k]]
    if differ:
        raise ConfigError([f"--from {src.root}: a variant keeps the source's data, student and seed; "
                           f"{'; '.join(config_changes(old, new, differ))} changed. Only the stages' options "
                           f"({', '.join(sorted(set(STAGE_OPTIONS.values())))}) and --stages may differ"])
    kept, why = stages_to_take(old, new, src.finished())
    teacher_kept = "teacher" in kept or ("teacher" not in new["stages"] and "teacher" not in src.finished())
    dst.take_over(src, kept, teacher_kept, cfg.save)
    rest = [s for s in STAGES if s in new["stages"] and s not in kept]
    log(f"--from {src.root}: took over {', '.join(kept) or 'no stage'} (the same files)"
        + (f"; {why}: {', '.join(rest)} {'trains' if len(rest) == 1 else 'train'} afresh" if rest else ""))
    return kept
