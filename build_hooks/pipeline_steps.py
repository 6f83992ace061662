"""The pipeline's step table, the pin override they share, and the reporting around them.

``nightly``, ``demo`` and the tests run the same table in the same order; each
step is a script in ``scripts/`` over ``build_hooks.cli.<module>.main``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from build_hooks.bundle import BUILDERS, BundlePlan
from build_hooks.config import load_config
from build_hooks.errors import UsageError


@dataclass(frozen=True)
class Step:
    name: str  # the nox session
    script: str  # scripts/<script>
    module: str  # build_hooks.cli.<module>, whose main(argv) the script runs


STEPS: tuple[Step, ...] = (
    Step("prepare-model", "prepare_embedding_model.py", "build_hooks.cli.prepare_model"),
    Step("warm-tiktoken", "warm_tiktoken.py", "build_hooks.cli.warm_tiktoken"),
    Step("build-nuitka", "build_nuitka.py", "build_hooks.cli.build_nuitka"),
    Step("build-pyinstaller", "build_pyinstaller.py", "build_hooks.cli.build_pyinstaller"),
    Step("verify-artifact", "verify_artifact.py", "build_hooks.cli.verify_artifact"),
)
PIN_FLAGS = ("--repo", "--revision", "--profile-id")


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


def run_pipeline(steps: Sequence[Step], run: Callable[[Step], object]) -> list[StepOutcome]:
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


def artifact_sizes(plan: BundlePlan, dist_root: Path | None = None) -> dict[str, int]:
    """Bytes of every artifact the builds produced, by ``<builder>/<folder>``."""
    sizes = {}
    for builder in BUILDERS:
        folder = plan.dist_dir(builder, dist_root)
        if folder.is_dir():
            sizes[f"{builder}/{folder.name}"] = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return sizes


def clean_targets(project_root: Path, *, with_profile: bool = False) -> list[Path]:
    """What `nox -s clean` removes: builds, the prepare step's working folders, temp files.

    The prepared profile and the tiktoken cache stay unless ``with_profile``: they
    cost a download to recreate.
    """
    config = load_config(project_root / "pyproject.toml")
    targets = [project_root / "dist", project_root / "build"]
    root = config.output_root
    if root.is_dir():
        targets += [
            p
            for p in root.iterdir()
            if p.name.startswith(".") and p.name.endswith((".staging", ".download", ".previous"))
        ]
        targets += [p for p in root.rglob("*.tmp")] + [p for p in root.rglob("*.incomplete")]
        if with_profile:
            targets += [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if config.tiktoken_cache.is_dir():
        targets += list(config.tiktoken_cache.glob(".*.tmp"))
    return [t for t in targets if t.exists()]


def result_table(outcomes: Sequence[StepOutcome], steps: Sequence[str], sizes: Mapping[str, int] | None = None) -> str:
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
    lines += [f"artifact {name}: {size / 2**20:.0f} MiB" for name, size in (sizes or {}).items()]
    return "\n".join(lines)
