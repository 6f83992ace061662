"""The PyInstaller onedir build: run the spec unless nothing that goes into the artifact changed.

The spec itself does the preflight and the bundling (through
:func:`build_hooks.bundle.prepare_build`), so `pyinstaller specs/launcher.spec`
by hand builds the same artifact, always, without this up-to-date check. The
pin reaches the spec through the environment, the same way the CI passes it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from build_hooks.build_stamp import inputs_digest, is_up_to_date, write_stamp
from build_hooks.bundle import BundlePlan, prepare_build
from build_hooks.config import PIN_ENV
from build_hooks.errors import PipelineError, UsageError
from build_hooks.manifest import manifest_path
from build_hooks.sbom import sbom_path

Log = Callable[[str], None]


class PyInstallerFailedError(PipelineError):
    """PyInstaller (or the spec's refusal) failed; its output says why."""


def pyinstaller_command(plan: BundlePlan, dist_root: Path, python: str = sys.executable) -> list[str]:
    """PyInstaller on the app's own spec (``pyinstaller-spec`` in the table)."""
    spec = plan.config.pyinstaller_spec
    if spec is None:
        raise UsageError("set pyinstaller-spec in [tool.embedding-pipeline] to the app's spec file")
    work = plan.config.project_root / "build" / "pyinstaller"
    dist = plan.dist_dir("pyinstaller", dist_root)
    return [python, "-m", "PyInstaller", str(spec), "--noconfirm", f"--distpath={dist.parent}", f"--workpath={work}"]


def build(
    plan: BundlePlan, dist_root: Path, extra_args: Sequence[str] = (), *, force: bool = False, log: Log = print
) -> Path:
    """Build (unless up to date) and return the dist; :class:`PreflightError` before analysis."""
    dist = plan.dist_dir("pyinstaller", dist_root)
    command = [*pyinstaller_command(plan, dist_root), *extra_args]
    digest = inputs_digest(plan, "pyinstaller", command[3:])
    if not force and is_up_to_date(dist, digest) and manifest_path(dist).is_file() and sbom_path(dist).is_file():
        prepare_build(plan, "pyinstaller")  # the pin and the data must still hold, as the spec would check
        log(f"{dist} is up to date (no input changed; pass --force to rebuild)")
        return dist
    pin_env = {PIN_ENV["repo"]: plan.pin.repo, PIN_ENV["revision"]: plan.pin.revision}
    pin_env[PIN_ENV["profile_id"]] = plan.pin.profile_id
    if subprocess.run(command, check=False, env={**os.environ, **pin_env}).returncode != 0:
        raise PyInstallerFailedError("PyInstaller failed (see its output above)")
    write_stamp(dist, digest)
    return dist
