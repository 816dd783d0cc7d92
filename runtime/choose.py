"""One chooser for every "measure the candidates, keep the fastest that agrees" decision: the layer
graphs of `edgekd export --optimize auto`, the int8 method of `--int8 auto`, and the engine and
thread use that `edgekd calibrate` records.

Each candidate is a timer (a function returning ms per timed shape); the timers run in `rounds`
rounds with the order reversed every other round, so no candidate pays for going first, and the
best time per shape is kept. Candidates whose agreement with the reference is below the bar are
not eligible; of the eligible, the one with the lowest time relative to the baseline (the first
candidate), averaged over the shapes, wins; when none is eligible, the best-agreeing one. Every
candidate's times and agreement are in the returned record, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

Timer = Callable[[], dict[str, float]]  # one measurement: shape -> ms (lower is better)


@dataclass
class Choice:
    chosen: str
    eligible: bool  # the chosen one passed the agreement bar (always True without one)
    ms: dict[str, dict[str, float]]  # candidate -> shape -> best ms
    relative: dict[str, float]  # candidate -> mean over shapes of its ms / the baseline's ms

    def why(self, bar: str = "") -> str:
        if not self.eligible:
            return f"none agrees with the reference{bar}; the best-agreeing one"
        return f"fastest here{' of those agreeing' + bar if bar else ''} ({self.relative[self.chosen]:.2f}x the " \
               f"baseline's time)"


def fastest(timers: dict[str, Timer], agreement: dict[str, float] | None = None, min_agreement: float = 0.0,
            rounds: int = 2, baseline: str | None = None, by: str = "relative") -> Choice:
    """Time every candidate, keep the fastest whose `agreement` (share agreeing with the reference, e.g. the
    lowest over exits) is at least `min_agreement`; without `agreement` every candidate is eligible.
    `by`: "relative" ranks by the mean over shapes of the time relative to the baseline (each shape counts
    alike), "total" by the sum of the times."""
    names = list(timers)
    ms: dict[str, dict[str, float]] = {n: {} for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            for shape, value in timers[name]().items():
                ms[name][shape] = min(ms[name].get(shape, float("inf")), value)
    base = ms[baseline or names[0]]
    relative = {n: sum(ms[n][s] / base[s] for s in ms[n]) / max(len(ms[n]), 1) for n in names}
    score = relative if by == "relative" else {n: sum(ms[n].values()) for n in names}
    ok = [n for n in names if agreement is None or agreement[n] >= min_agreement]
    if ok:
        return Choice(min(ok, key=score.get), True, ms, relative)
    return Choice(max(names, key=agreement.get), False, ms, relative)
