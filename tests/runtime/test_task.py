"""The one record of the task (runtime/task.py): nested in schema-4 manifests, read from the flat fields of
schemas 1-3 and from run folders made before the record."""

from __future__ import annotations

import pytest

from runtime.exits import REGRESSION_PATIENCE
from runtime.task import METRICS, Task, exit_rule_record, nest_flat_fields


def test_the_rule_record_and_metrics_follow_the_problem_type():
    assert Task("single-label", ["a", "b"]).with_rule().exit_rule["name"] == "normalized-entropy"
    reg = Task("regression", ["score"], target_scale=0.5).with_rule()
    assert reg.exit_rule == exit_rule_record("regression", 0.5)
    assert reg.exit_rule["patience"] == REGRESSION_PATIENCE and reg.rule().scale == 0.5
    assert Task("multi-label", ["x"]).metrics == METRICS["multi-label"] and reg.main_metric == "pearson"
    kept = Task("regression", ["s"], target_scale=1.0, exit_rule={"name": "consecutive-gap", "patience": 2})
    assert kept.with_rule() is kept and kept.rule().patience == 2


@pytest.mark.parametrize("task, wrong", [
    (Task("ordinal", ["a"]), "problem 'ordinal'"),
    (Task("single-label", []), "labels must be a list"),
    (Task("regression", ["s"]), "target_scale > 0"),
    (Task("multi-label", ["a", "b"], thresholds=[0.5]), "thresholds must hold one number"),
    (Task("regression", ["s"], target_scale=1.0, exit_rule={"patience": 0}), "exit_rule.patience"),
])
def test_a_bad_record_names_its_problem(task, wrong):
    assert any(wrong in p for p in task.problems())


def test_flat_fields_of_old_manifests_are_nested():
    flat = {"schema_version": 3, "labels": ["n", "p"], "problem": "single-label", "text_pair": True,
            "thresholds": None, "max_length": 8}
    nested = nest_flat_fields(flat)
    assert nested["task"] == {"problem": "single-label", "labels": ["n", "p"], "text_pair": True}
    assert "labels" not in nested and nested["max_length"] == 8 and "labels" in flat  # the input is not changed
    assert nest_flat_fields({"schema_version": 2, "labels": ["a"]})["task"] == {"problem": "single-label",
                                                                                "labels": ["a"]}
    task, problems = Task.from_dict(nested["task"])
    assert not problems and task.text_pair is True


def test_a_run_folder_task_of_either_shape_is_read(tmp_path):
    from edgekd.run_folder import read_task
    from runtime.errors import EdgeKDError

    old = read_task({"problem": "regression", "why": "the labels", "target_mean": 2.5, "target_std": 1.5})
    assert (old.problem, old.target_scale, old.target_mean, old.why) == ("regression", 1.5, 2.5, "the labels")
    new = Task("multi-label", ["a", "b"], text_pair=True).with_rule()
    assert read_task(new.to_dict()) == new
    with pytest.raises(EdgeKDError, match="task record is malformed"):
        read_task({"problem": "single-label", "labels": "ab"})
