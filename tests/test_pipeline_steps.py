"""Guards and the result table that the nox sessions use."""

from __future__ import annotations

from build_hooks.pipeline_steps import StepOutcome, result_table

STEPS = ["prepare-model", "warm-tiktoken", "build-nuitka"]


def test_result_table_lists_every_step_with_what_happened() -> None:
    table = result_table(
        [StepOutcome("prepare-model", 1.234, "ok"), StepOutcome("warm-tiktoken", 0.5, "FAILED: no cache\ndetail")],
        STEPS,
    )
    lines = table.splitlines()
    assert lines[0].split() == ["step", "time", "result"]
    assert lines[2].split() == ["prepare-model", "1.2", "s", "ok"]
    assert lines[3].split()[:4] == ["warm-tiktoken", "0.5", "s", "FAILED:"] and "detail" not in table
    assert lines[4].split() == ["build-nuitka", "-", "not", "run"]
