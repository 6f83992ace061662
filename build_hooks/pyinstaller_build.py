"""`nox -s build-pyinstaller`: run specs/launcher.spec unless nothing that goes into the artifact changed.

The spec itself does the preflight and the bundling, so `pyinstaller
specs/launcher.spec` by hand builds the same artifact (always, without this
up-to-date check).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from build_hooks.build_stamp import inputs_digest, is_up_to_date, write_stamp
from build_hooks.bundle import plan_for
from build_hooks.config import load_config

SPEC = Path(__file__).resolve().parent.parent / "specs" / "launcher.spec"


def build(dist_root: Path, extra_args: Sequence[str] = ()) -> int:
    config = load_config()
    plan = plan_for(config)
    dist = dist_root / config.app_name
    force = "--force" in extra_args
    options = [a for a in extra_args if a != "--force"]
    work = config.project_root / "build" / "pyinstaller"
    command = [
        sys.executable,
        "-m",
        "PyInstaller",
        str(SPEC),
        "--noconfirm",
        f"--distpath={dist_root}",
        f"--workpath={work}",
    ]
    digest = inputs_digest(plan, "pyinstaller", [*command[3:], *options])
    # The spec runs the preflight (and refuses) itself: hashing the profile once is enough.
    if not force and is_up_to_date(dist, digest):
        print(f"{dist} is up to date (no input changed; pass --force to rebuild)", flush=True)
        return 0
    if subprocess.run([*command, *options], check=False).returncode != 0:
        return 1
    write_stamp(dist, digest)
    return 0


if __name__ == "__main__":
    sys.exit(build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("dist/pyinstaller"), sys.argv[2:]))
