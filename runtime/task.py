"""The one record of a task: what a model answers, and how its rows leave early.

A `Task` is written once by the run folder (edgekd/run_folder.py, `task.json`), nested in the bundle manifest
(`manifest.task`, schema 4; schemas 1-3 kept these fields at the manifest's top level and are read into the
same record), and read by every room: the runtime (how to answer, which rule to exit by), calibration and the
bench (which metrics), the card, serve and the JS runtime (js/src/core.js reads both shapes).

The pair input keeps one name per layer of the stack: `text_pair` in records and Python arguments, `textPair`
in JS, `token_type_ids` in the graphs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from runtime.exits import AT_THRESHOLDS, PROBLEMS, REGRESSION_PATIENCE, RULE_NAMES, TOKENS, ExitRule, patience_problem
from runtime.records import decode

# the metrics of each problem type, the main one first (what calibration budgets and checkpoints are chosen on);
# binary single-label tasks add the positive class's F1 beside accuracy where they are reported
METRICS: dict[str, tuple[str, ...]] = {"single-label": ("accuracy",), "multi-label": ("micro_f1", "macro_f1"),
                                       "regression": ("pearson", "spearman"),
                                       TOKENS: ("entity_f1", "entity_precision", "entity_recall",
                                                "entity_f1_strict")}

# What u is for each problem type's exit rule, as the record says it (runtime/exits.py computes it)
_U = {
    "single-label": "-sum(p log p) / log C of the softmax",
    "multi-label": "max over labels of H(sigmoid z) / log 2: a row leaves when every label is confident",
    "regression": "the largest of the last `patience` gaps g_l = min(1, |y_l - y_(l-1)| / scale), g_1 = 1; "
                  "scale = the training targets' standard deviation",
    TOKENS: "max over the sentence's tokens (not padding, not special tokens) of -sum(p log p) / log C of the "
            "tag softmax: a sentence leaves when every token is sure",
}
_U_AT_THRESHOLDS = ("max over labels of H(sigmoid(z - logit t)) / log 2, t the label's threshold: a row leaves when "
                    "every label is confident on its side of its own threshold")
_WHY = {
    "regression": "PABEE's agreement of consecutive heads (a regression head has no distribution); patience 1 "
                  "measured best on STS-B dev (benchmarks/results/stsb_exit_rules.json)",
}


def exit_rule_record(problem: str, scale: float | None = None, patience: int | None = None,
                     at_thresholds: bool = False) -> dict[str, Any]:
    """The exit rule of `problem` as the manifest records it: its name, what u is, and for regression its
    patience, scale and why; `at_thresholds`: the multi-label rule centred on the task's thresholds."""
    if at_thresholds:
        if problem != "multi-label":
            raise ValueError(f"the rule at thresholds is multi-label's; this task is {problem}")
        return {"name": AT_THRESHOLDS, "u": _U_AT_THRESHOLDS,
                "why": "fewer layers within the calibration budget than the entropy at 0.5 on GoEmotions: 2.59 of 4 "
                       "against 2.75 on test (benchmarks/results/goemotions_exits_int8.md)"}
    record: dict[str, Any] = {"name": RULE_NAMES[problem], "u": _U[problem]}
    if problem == "regression":
        record["patience"] = REGRESSION_PATIENCE if patience is None else patience
        if scale is not None:
            record["scale"] = scale
    if problem in _WHY:
        record["why"] = _WHY[problem]
    return record


@dataclass(frozen=True)
class Task:
    """What a model answers: the problem type, its labels, single texts or pairs, the exit rule, a multi-label
    model's thresholds and a regression model's target scale."""

    problem: str = "single-label"  # one of runtime.exits.PROBLEMS
    labels: list[str] = field(default_factory=list)  # the outputs' names, in order (regression: one)
    label_values: list[str] | None = None  # the training data's own spellings of `labels` (e.g. "0", "1")
    text_pair: bool = False  # each input is (text, text_pair); the token graphs take token_type_ids
    # regression: the training targets' standard deviation (the exit rule's scale) and mean (where new heads start)
    target_scale: float | None = None
    target_mean: float | None = None
    # multi-label: a label is on when its probability reaches its threshold (one per label), and how they were
    # chosen; None = 0.5 for every label
    thresholds: list[float] | None = None
    threshold_choice: dict[str, Any] | None = None
    exit_rule: dict[str, Any] | None = None  # exit_rule_record(): name, u, patience, scale, why
    why: str = ""  # how the problem type was found (the teacher's config, --problem, the labels)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The problem type's metrics, the main one first."""
        return METRICS[self.problem]

    @property
    def main_metric(self) -> str:
        return METRICS[self.problem][0]

    def rule(self) -> ExitRule:
        """The exit rule this task's outputs leave by."""
        record = self.exit_rule or {}
        at = tuple(self.thresholds or ()) if record.get("name") == AT_THRESHOLDS else None
        return ExitRule(self.problem, self.target_scale or 1.0, record.get("patience", 1), at or None)

    def with_rule(self) -> Task:
        """This task with its exit-rule record filled in where it has none."""
        if self.exit_rule is not None:
            return self
        return replace(self, exit_rule=exit_rule_record(self.problem, self.target_scale))

    def problems(self) -> list[str]:
        """What is wrong with the record (empty when nothing)."""
        out = []
        if self.problem not in PROBLEMS:
            out.append(f"problem {self.problem!r} is not one of {', '.join(PROBLEMS)}")
        if not isinstance(self.labels, list) or len(self.labels) < 1 or \
                not all(isinstance(x, str) for x in self.labels):
            out.append("labels must be a list of names")
        if self.problem == "regression" and not (isinstance(self.target_scale, (int, float))
                                                 and self.target_scale > 0):
            out.append(f"a regression task needs target_scale > 0 (its exit rule's scale), got {self.target_scale!r}")
        wrong = patience_problem((self.exit_rule or {}).get("patience", 1), self.problem)
        if wrong:
            out.append(f"exit_rule.patience {wrong}")
        name = (self.exit_rule or {}).get("name")
        if name is not None and name not in (RULE_NAMES.get(self.problem), AT_THRESHOLDS):
            out.append(f"exit_rule.name {name!r} is not a rule this runtime knows for {self.problem} (a bundle made by "
                       "a newer edgekd? upgrade edgekd-runtime)")
        elif name == AT_THRESHOLDS and self.problem != "multi-label":
            out.append(f"exit_rule.name {AT_THRESHOLDS!r} belongs to multi-label tasks, not {self.problem}")
        if self.thresholds is not None and (not isinstance(self.labels, list) or
                                            len(self.thresholds) != len(self.labels) or
                                            not all(0 < t < 1 for t in self.thresholds)):
            out.append(f"thresholds must hold one number in (0, 1) per label ({len(self.labels)})")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "task") -> tuple[Task | None, list[str]]:
        """The record and the problems found (types from the dataclass, unknown keys refused)."""
        problems: list[str] = []
        task = decode(cls, data, where, problems)
        return task, problems


# the manifest fields that schemas 1-3 kept at the top level and schema 4 nests in `task`
FLAT_FIELDS = ("problem", "labels", "label_values", "text_pair", "target_scale", "thresholds", "threshold_choice",
               "exit_rule")


def nest_flat_fields(data: dict[str, Any]) -> dict[str, Any]:
    """A schema 1-3 manifest dict with its task fields moved into `task` (the schema-4 shape)."""
    data = dict(data)
    task = {k: data.pop(k) for k in FLAT_FIELDS if k in data}
    data["task"] = {"problem": "single-label", **{k: v for k, v in task.items() if v is not None or k == "labels"}}
    return data
