"""The one table of the pipeline's steps and the suite's other commands, and the reporting around them.

Every door reads it: the nox sessions (one per step, and ``nightly`` running
them in order), the ``embedding-pipeline`` console script and
``python -m build_hooks.cli`` (one sub-command per command), and the seed's
``scripts/*.py``. A command ``name`` runs ``build_hooks.cli.<name, underscored>.main``.

This module imports nothing but the standard library and the suite's errors:
nox's own interpreter reads it, and has neither numpy nor the runtime.
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from build_hooks.errors import UsageError

CONSOLE_SCRIPT = "embedding-pipeline"


@dataclass(frozen=True)
class Command:
    """One command of the suite: a pipeline step, or a helper around the steps."""

    name: str  # the sub-command, and for a step its nox session
    summary: str  # one line for --help, `nox -l` and the console script's list
    script: str | None = None  # scripts/<script> runs it too (the seed's command names)
    tools: tuple[str, ...] = ()  # distributions whose versions a session logs before the step
    runs: str | None = None  # run another command's module, with ``args`` added
    args: tuple[str, ...] = ()
    before: tuple[str, ...] = ()  # commands a step's session runs first (verify: fetch the wheelhouse)

    @property
    def module(self) -> str:
        return f"build_hooks.cli.{(self.runs or self.name).replace('-', '_')}"


STEPS: tuple[Command, ...] = (
    Command("prepare-model", "mirror and verify the pinned model profile", "prepare_embedding_model.py"),
    Command("warm-tiktoken", "warm the verified, offline tiktoken cache", "warm_tiktoken.py"),
    Command("build-nuitka", "build the app with Nuitka (standalone)", "build_nuitka.py", ("nuitka", "onnxruntime")),
    Command(
        "build-pyinstaller",
        "build the app with PyInstaller (onedir)",
        "build_pyinstaller.py",
        ("pyinstaller", "onnxruntime"),
    ),
    Command(
        "verify-artifact",
        "prove each built artifact complete, intact and offline",
        "verify_artifact.py",
        before=("wheelhouse",),
    ),
    Command(
        "archive-artifact", "pack each verified artifact with its records, as users download it", "archive_artifact.py"
    ),
)
COMMANDS: tuple[Command, ...] = (
    *STEPS,
    Command(
        "nuitka-options",
        "print the Nuitka options for the app, one per line",
        runs="build-nuitka",
        args=("--print-options",),
    ),
    Command("ci-outputs", "print what the reusable workflow reads of the app, as $GITHUB_OUTPUT lines"),
    Command("check-project", "check the app names this suite's version everywhere and uses nothing it removed"),
    Command("sizes", "print the size of every built artifact, as JSON"),
    Command("wheelhouse", "fetch the locked wheels verify anchors third-party files to (uses the index)"),
    Command("clean", "remove builds and leftovers (--profile: the prepared profile too)"),
)
PIN_FLAGS = ("--repo", "--revision", "--profile-id")


def command(name: str) -> Command:
    """The command called ``name``; :class:`UsageError` naming the known ones otherwise."""
    for known in COMMANDS:
        if known.name == name:
            return known
    raise UsageError(f"unknown command {name!r}: pick one of {', '.join(c.name for c in COMMANDS)} (see --help)")


def run_command(name: str, argv: Sequence[str], prog: str) -> int:
    """Run command ``name`` with ``argv``; ``prog`` is how the user called it, for its --help."""
    chosen = command(name)
    module = importlib.import_module(chosen.module)
    return int(module.main([*argv, *chosen.args], prog=prog))


def run_script(path: str, argv: Sequence[str]) -> int:
    """What ``scripts/<name>.py`` runs: the command whose script it is, under the script's name."""
    name = Path(path).name
    chosen = next(c for c in COMMANDS if c.script == name)
    return run_command(chosen.name, argv, prog=name)


@dataclass(frozen=True)
class StepOutcome:
    step: str
    seconds: float
    result: str


def pin_args(posargs: Sequence[str]) -> list[str]:
    """The pin override of a whole-pipeline run (``nightly -- --revision SHA``), as every step's flags.

    Only the pin may be given to every step at once: the steps' other flags differ.
    """
    parser = argparse.ArgumentParser(prog="nox -s nightly --", add_help=False, exit_on_error=False)
    for flag in PIN_FLAGS:
        parser.add_argument(flag)
    try:
        args, unknown = parser.parse_known_args(posargs)
    except argparse.ArgumentError as err:
        raise UsageError(f"{err}: pass {', '.join(PIN_FLAGS)} with a value") from err
    if unknown:
        raise UsageError(
            f"the pipeline takes only the pin ({', '.join(PIN_FLAGS)}), not {' '.join(unknown)}; "
            "run the steps one by one for their own flags"
        )
    return [arg for flag in PIN_FLAGS if (value := getattr(args, flag[2:].replace("-", "_"))) for arg in (flag, value)]


def run_pipeline(steps: Sequence[Command], run: Callable[[Command], object]) -> list[StepOutcome]:
    """Run ``steps`` in order with ``run``, stop at the first failure; what happened to each."""
    outcomes: list[StepOutcome] = []
    for step in steps:
        started = time.monotonic()
        try:
            run(step)
        except Exception as err:  # nox raises its own types for failed commands and session.error
            outcomes.append(StepOutcome(step.name, time.monotonic() - started, f"FAILED: {err}"))
            break
        outcomes.append(StepOutcome(step.name, time.monotonic() - started, "ok"))
    return outcomes


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Fixed-width columns, the first row a header underlined with dashes."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def result_table(outcomes: Sequence[StepOutcome], steps: Sequence[str], sizes: Mapping[str, int] | None = None) -> str:
    """Every step: ran ones with time and result, the rest as not run; then the artifacts' sizes."""
    by_step = {o.step: o for o in outcomes}
    rows = [("step", "time", "result")]
    for step in steps:
        outcome = by_step.get(step)
        if outcome is None:
            rows.append((step, "-", "not run"))
        else:
            rows.append((step, f"{outcome.seconds:.1f} s", outcome.result.splitlines()[0][:100]))
    sizes_lines = [f"artifact {name}: {size / 2**20:.0f} MiB" for name, size in (sizes or {}).items()]
    return "\n".join([format_table(rows), *sizes_lines])
