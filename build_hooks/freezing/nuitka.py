"""The Nuitka standalone build: plan, compile unless no input changed, then the records.

The command line comes from the plan (:mod:`build_hooks.freezing.nuitka_options`);
after the build the dist's ``data/`` is checked against the plan with the
manifest's hashes (:mod:`build_hooks.freezing.records`): a file that did not
arrive, or arrived changed, fails the build by name and leaves no dist behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from build_hooks import fsutil
from build_hooks.errors import BuildFailedError
from build_hooks.freezing.collection import nuitka_collection
from build_hooks.freezing.nuitka_options import nuitka_command, options_for_project
from build_hooks.freezing.plan import make_plan, write_plan
from build_hooks.freezing.records import write_records
from build_hooks.freezing.stamp import build_message, rebuild_reason, void_records
from build_hooks.freezing.target import Target, nuitka_report_path

__all__ = ["build", "options_for_project"]

Log = Callable[[str], None]


def build(
    target: Target, dist_root: Path, extra_args: Sequence[str] = (), *, force: bool = False, log: Log = print
) -> Path:
    """Plan (refusing what must not ship), compile unless nothing changed, check the dist; the dist."""
    plan = make_plan(target, "nuitka", dist=target.dist_dir("nuitka", dist_root), options=extra_args)
    write_plan(plan)
    dist = plan.dist
    why = "--force" if force else rebuild_reason(dist, plan.inputs)
    if why is None:
        log(f"{dist} is up to date (no input changed; pass --force to rebuild)")
        return dist
    log(build_message(dist, why))
    ccache = shutil.which("ccache")
    log(f"ccache: {'used, ' + ccache if ccache else 'not found (install the build group to speed up rebuilds)'}")
    void_records(dist)
    shutil.rmtree(dist, ignore_errors=True)
    started = time.monotonic()
    # The app's packages import from its source root (src/ in a src layout), installed or not.
    path = os.pathsep.join(filter(None, [str(target.config.source_root), os.environ.get("PYTHONPATH", "")]))
    if subprocess.run(nuitka_command(plan, extra_args), check=False, env={**os.environ, "PYTHONPATH": path}).returncode:
        raise BuildFailedError("Nuitka failed (see its output above)")
    # What Nuitka put in, and where from: its compilation report names every module and source.
    collected = nuitka_collection(nuitka_report_path(dist), Path.cwd())
    write_records(plan, collected, log)
    log(f"built {dist} in {time.monotonic() - started:.0f} s, {fsutil.folder_bytes(dist) / 2**20:.0f} MiB")
    return dist
