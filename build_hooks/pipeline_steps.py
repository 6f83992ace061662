"""Guards and reporting shared by the nox sessions (kept here so they are tested)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StepOutcome:
    step: str
    seconds: float
    result: str


def result_table(outcomes: Sequence[StepOutcome], steps: Sequence[str]) -> str:
    """A fixed-width table of every step: ran ones with time and result, the rest as not run."""
    by_step = {o.step: o for o in outcomes}
    rows = [("step", "time", "result")]
    for step in steps:
        outcome = by_step.get(step)
        if outcome is None:
            rows.append((step, "-", "not run"))
        else:
            rows.append((step, f"{outcome.seconds:.1f} s", outcome.result.splitlines()[0][:100]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
