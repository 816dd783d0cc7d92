"""The stages of `edgekd distill`, one module each; `edgekd.distill.pipeline` runs them in the order of
`edgekd.config.STAGES`.

Each is a small object with a `name` and `run(ctx) -> metrics`, where `ctx` is the run's shared
`RunContext` (config, data, tokenizer, teacher, run folder).
"""

from __future__ import annotations

from edgekd.config import STAGES
from edgekd.distill.stages.attention import AttentionStage
from edgekd.distill.stages.baseline import BaselineStage
from edgekd.distill.stages.branches import BranchesStage
from edgekd.distill.stages.context import RunContext
from edgekd.distill.stages.finetune import FinetuneStage
from edgekd.distill.stages.refine import RefineStage
from edgekd.distill.stages.teacher import TeacherStage

_ALL = {s.name: s for s in (TeacherStage(), RefineStage(), AttentionStage(), BaselineStage(), FinetuneStage(),
                            BranchesStage())}
assert set(_ALL) == set(STAGES), "edgekd.config.STAGES and the stage modules must name the same stages"
REGISTRY = {name: _ALL[name] for name in STAGES}  # in run order

__all__ = ["REGISTRY", "RunContext"]
