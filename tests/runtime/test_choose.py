"""The one chooser (runtime.choose.fastest) behind export --optimize, --int8 auto and calibrate's engine and
thread choices: best of rounds, order reversed, agreement bar, the reason."""

from __future__ import annotations

from runtime.choose import fastest


def timers(script: dict[str, list[dict[str, float]]], calls: list[str]):
    """Timers that return the scripted measurements in turn and log the order they ran in."""
    def make(name):
        def run():
            calls.append(name)
            return script[name].pop(0)
        return run
    return {name: make(name) for name in script}


def test_best_of_rounds_in_reversed_order_and_relative_to_the_baseline():
    calls: list[str] = []
    script = {"a": [{"b1": 2.0, "b32": 10.0}, {"b1": 1.0, "b32": 12.0}],
              "b": [{"b1": 1.5, "b32": 4.0}, {"b1": 3.0, "b32": 6.0}]}
    choice = fastest(timers(script, calls), rounds=2)
    assert calls == ["a", "b", "b", "a"]
    assert choice.ms == {"a": {"b1": 1.0, "b32": 10.0}, "b": {"b1": 1.5, "b32": 4.0}}
    assert choice.relative == {"a": 1.0, "b": (1.5 + 0.4) / 2}
    assert choice.chosen == "b" and choice.eligible and "0.95x" in choice.why()


def test_total_and_relative_rank_differently_when_shapes_differ_in_size():
    script = {"a": [{"b1": 1.0, "b32": 100.0}], "b": [{"b1": 0.5, "b32": 110.0}]}
    assert fastest(timers({k: list(v) for k, v in script.items()}, []), rounds=1).chosen == "b"  # 0.5x, 1.1x
    assert fastest(timers({k: list(v) for k, v in script.items()}, []), rounds=1, by="total").chosen == "a"


def test_the_agreement_bar_and_the_best_agreeing_fallback():
    script = {"dyn": [{"x": 2.0}], "fast": [{"x": 1.0}], "ok": [{"x": 1.5}]}
    choice = fastest(timers(script, []), {"dyn": 0.995, "fast": 0.97, "ok": 0.992}, 0.99, rounds=1)
    assert choice.chosen == "ok" and choice.eligible
    script = {"dyn": [{"x": 2.0}], "fast": [{"x": 1.0}]}
    choice = fastest(timers(script, []), {"dyn": 0.95, "fast": 0.97}, 0.99, rounds=1)
    assert choice.chosen == "fast" and not choice.eligible and "best-agreeing" in choice.why()
