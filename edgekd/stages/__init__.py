"""The stages of `edgekd distill`, one module each; `edgekd.pipeline` runs them in the order of
`edgekd.config.STAGES`.

Each is a small object: `name`, `needs` and `writes` (run-folder items, for readers and
error messages) and `run(ctx) -> metrics`, where `ctx` is the run's shared
`RunContext` (config, data, tokenizer, teacher, run folder).
"""

from __future__ import annotations

from edgekd.config import STAGES
from edgekd.stages.attention import AttentionStage
from edgekd.stages.baseline import BaselineStage
from edgekd.stages.branches import BranchesStage
from edgekd.stages.context import RunContext
from edgekd.stages.finetune import FinetuneStage
from edgekd.stages.refine import RefineStage
from edgekd.stages.teacher import TeacherStage

_ALL = {s.name: s for s in (TeacherStage(), RefineStage(), AttentionStage(), BaselineStage(), FinetuneStage(),
                            BranchesStage())}
assert set(_ALL) == set(STAGES), "edgekd.config.STAGES and the stage modules must name the same stages"
REGISTRY = {name: _ALL[name] for name in STAGES}  # in run order

__all__ = ["REGISTRY", "RunContext"]
