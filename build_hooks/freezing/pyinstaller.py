"""The onedir PyInstaller build: the app's own spec, run on the plan unless no input changed.

The build step makes the plan, writes it, and hands its path to the spec
(``pyinstaller <spec> -- --plan FILE``): the spec helper reads the plan and
nothing else, so the pin never travels through the environment. A hand-run
``pyinstaller <spec>`` makes the plan itself (:mod:`build_hooks.pyinstaller_spec`)
and builds the same artifact, without the up-to-date check.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from build_hooks.errors import BuildFailedError, UsageError
from build_hooks.freezing.plan import BuildPlan, make_plan, write_plan
from build_hooks.freezing.stamp import build_message, rebuild_reason
from build_hooks.freezing.target import Target
from build_hooks.versions import spec_problems

Log = Callable[[str], None]
PLAN_FLAG = "--plan"


def pyinstaller_command(
    plan: BuildPlan, plan_file: Path, extra_args: Sequence[str] = (), python: str = sys.executable
) -> list[str]:
    """PyInstaller on the app's own spec (``pyinstaller-spec`` in the table), given the plan file."""
    config = plan.target.config
    if config.pyinstaller_spec is None:
        raise UsageError("set pyinstaller-spec in [tool.embedding-pipeline] to the app's spec file")
    # One work folder per interpreter: PyInstaller's incremental checks keep a PYZ made by another
    # Python (its toc matched), and that Python's bytecode then fails to load ("Python magic pattern
    # mismatch!"). The stamp, not PyInstaller, decides that a build is needed.
    work = plan.target.build_dir / "pyinstaller" / (sys.implementation.cache_tag or "python")
    return [
        python, "-m", "PyInstaller", str(config.pyinstaller_spec), "--noconfirm",
        f"--distpath={plan.dist.parent}", f"--workpath={work}", *extra_args,
        "--", PLAN_FLAG, str(plan_file),
    ]  # fmt: skip


def build(
    target: Target, dist_root: Path, extra_args: Sequence[str] = (), *, force: bool = False, log: Log = print
) -> Path:
    """Plan (refusing what must not ship), run the spec on it unless nothing changed; the dist.
    The spec writes the manifest, the SBOM and the stamp after checking the copies."""
    if target.config.pyinstaller_spec is not None and (problems := spec_problems(target.config.pyinstaller_spec)):
        raise UsageError(problems[0])  # before a plan, and before any analysis
    plan = make_plan(target, "pyinstaller", dist=target.dist_dir("pyinstaller", dist_root), options=extra_args)
    plan_file = write_plan(plan)
    why = "--force" if force else rebuild_reason(plan.dist, plan.inputs)
    if why is None:
        log(f"{plan.dist} is up to date (no input changed; pass --force to rebuild)")
        return plan.dist
    log(build_message(plan.dist, why))
    if subprocess.run(pyinstaller_command(plan, plan_file, extra_args), check=False).returncode != 0:
        raise BuildFailedError("PyInstaller failed (see its output above)")
    return plan.dist
