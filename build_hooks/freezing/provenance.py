"""Where an artifact's code came from: the commit of the checkout holding the app's entry (and whether
it was dirty), and the interpreter whose standard library and libpython it ships.

build-info records both; the archive's entry times come from the commit time. Outside a git
checkout (or without git) there is no commit, and the build says so.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from build_hooks.errors import UsageError


def git(checkout: Path, *args: str) -> str | None:
    """``git -C checkout args``, stripped; ``None`` without git, outside a checkout, on any failure."""
    try:
        result = subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def source_revision(checkout: Path) -> dict[str, Any]:
    """``{"commit": <sha> | None, "dirty": bool | None}`` of the checkout: dirty when a tracked file
    differs from the commit (untracked files, such as builds, do not count)."""
    commit = git(checkout, "rev-parse", "HEAD")
    if not commit:
        return {"commit": None, "dirty": None}
    status = git(checkout, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def source_date_epoch(checkout: Path, env: Mapping[str, str] | None = None) -> int | None:
    """The time a reproducible record carries: ``SOURCE_DATE_EPOCH``, else the commit time of the checkout
    holding the app (two clones of one commit agree), else ``None`` (not a checkout: the caller decides).
    :class:`UsageError` for a ``SOURCE_DATE_EPOCH`` that is not a whole number of seconds."""
    env = os.environ if env is None else env
    if (value := env.get("SOURCE_DATE_EPOCH", "").strip()).isdigit():
        return int(value)
    if value:
        raise UsageError(f"SOURCE_DATE_EPOCH={value!r} is not a whole number of seconds: unset it or fix it")
    return commit_time(checkout)


def commit_time(checkout: Path) -> int | None:
    """The commit time of the checkout's HEAD (seconds since the epoch), ``None`` outside a checkout."""
    value = git(checkout, "log", "-1", "--format=%ct")
    return int(value) if value and value.isdigit() else None


@functools.cache
def interpreter_facts() -> dict[str, Any]:
    """What an artifact's standard library and libpython come from: this interpreter, by version and by
    the sha256 of its libpython and of its standard library's sources (each ``.py`` by path and sha256).
    build-info records the build's; verify, which anchors them to its own interpreter, compares."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    listing = hashlib.sha256()
    for path in sorted(stdlib.rglob("*.py")) if stdlib.is_dir() else []:
        relative = path.relative_to(stdlib)
        if relative.parts[0] in ("site-packages", "dist-packages") or "__pycache__" in relative.parts:
            continue
        listing.update(f"{relative.as_posix()} {hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return {
        "implementation": sys.implementation.name,
        "version": platform.python_version(),
        "stdlib_sha256": listing.hexdigest() if stdlib.is_dir() else None,
        "libpython_sha256": _libpython_sha256(),
    }


def _libpython_sha256() -> str | None:
    """The shared libpython (Linux, macOS) or pythonXY.dll (Windows) the frozen app runs on; ``None``
    for a static build."""
    candidates = []
    if sys.platform == "win32":
        candidates.append(Path(sys.base_prefix) / f"python{sys.version_info[0]}{sys.version_info[1]}.dll")
    elif sysconfig.get_config_var("Py_ENABLE_SHARED"):
        candidates.append(Path(str(sysconfig.get_config_var("LIBDIR"))) / str(sysconfig.get_config_var("LDLIBRARY")))
    for path in candidates:
        if path.is_file():
            return hashlib.sha256(path.read_bytes()).hexdigest()
    return None
