"""What PyInstaller collects into an app's artifact, derived at verify time by PyInstaller itself.

The app's own spec runs again, on the plan verify made anew, in a child process
(:mod:`~build_hooks.verification._pyinstaller_child`), up to the point where
COLLECT would copy files. That gives, for every path of the artifact, its source:
each binary as PyInstaller makes it (a copy on Linux and Windows; thinned,
re-linked and ad-hoc signed on macOS), each ``.pyc`` compiled now from its module,
each data file, each symlink's text. Nothing of the build's own working folder
(``build/``), and nothing beside the artifact, is read: a report there could be
forged with the manifest.

The analysis is PyInstaller's own incremental one, kept in ``build/verify/``:
verify's first run analyses in full (about as long as the build's analysis),
later runs only re-check what PyInstaller's guts files record (a source that
changed since is analysed again).

The executable is PyInstaller's bootloader made into the artifact's own archive
by PyInstaller's EXE, on this OS: the child replays it, and its bytes must equal
the artifact's; the archive itself is then held entry by entry to the fresh one
(:mod:`~build_hooks.verification.pyinstaller_archive`). On Windows the build time
stamp is the artifact's own (``SOURCE_DATE_EPOCH`` for the replay).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from filelock import FileLock

from build_hooks.errors import AnchorUnavailableError
from build_hooks.freezing.plan import BuildPlan, write_plan
from build_hooks.verification.lock import LockTree
from build_hooks.verification.pyinstaller_archive import ArchiveError, archive_problems, read_archive
from build_hooks.verification.reference import Expected, Reference, coverage_floor

ANALYSIS_TIMEOUT = 1800.0
_CHILD = "build_hooks.verification._pyinstaller_child"
SITE_ENV = "EMBEDDING_PIPELINE_VERIFY_SITE"  # the child's site-packages: the lock tree


def pyinstaller_reference(plan: BuildPlan, executable: Path, work: Path, tree: LockTree) -> Reference:
    """The artifact PyInstaller makes from ``plan`` with the app's spec, analysed in ``work`` with the
    lock's distributions (``tree``) in place of site-packages; ``executable`` is the artifact's, whose
    archive the replayed executable is made with."""
    spec = plan.target.config.pyinstaller_spec
    if spec is None:
        raise AnchorUnavailableError("set pyinstaller-spec in [tool.embedding-pipeline]: verify re-runs the spec")
    work.mkdir(parents=True, exist_ok=True)
    with FileLock(work / ".lock"):
        # Stable places for what the analysis reads: PyInstaller re-analyses when an input's path changes.
        analysed = plan.relocated(work / "dist" / plan.dist.name, work / "generated")
        plan_file = write_plan(analysed, work / "plan.json")
        recorded = _run_child(spec, plan_file, executable, work, plan.target.config.project_root, tree)
    contents = str(recorded["contents_directory"] or "")
    modules = {str(k): Path(v) for k, v in recorded["modules"].items()}
    files: dict[str, Expected] = {}
    executable_rel = ""
    for dest, made, typecode, source in recorded["toc"]:
        if typecode == "EXECUTABLE":
            executable_rel = dest
            files[dest] = Expected("file", Path(made))
            continue
        rel = PurePosixPath(contents, dest.replace("\\", "/")).as_posix()
        if typecode == "SYMLINK":
            files[rel] = Expected("symlink", link=made)
        elif typecode in ("BINARY", "EXTENSION"):
            files[rel] = Expected("file", Path(made), origin=Path(source))
        elif dest.endswith(".pyc") and (module := modules.get(_module_name(dest))) is not None:
            files[rel] = Expected("file", Path(made), compare="code", origin=module)
        else:
            files[rel] = Expected("file", Path(made))
    fresh_pkg = Path(recorded["fresh_pkg"])
    how = f"PyInstaller {recorded['pyinstaller']}'s analysis of {spec.name}, re-run ({recorded['seconds']:.1f} s)"
    reference = Reference("pyinstaller", files, f"{how}: {len(files)} paths", floor=coverage_floor("pyinstaller"))
    if executable_rel:
        reference.checks[executable_rel] = lambda path: executable_archive_problems(path, fresh_pkg)
    reference.sources = [(dest, Path(source)) for dest, _made, typecode, source in recorded["toc"]
                         if typecode != "SYMLINK" and source]  # fmt: skip
    reference.sources += [(name, source) for name, source in modules.items()]
    return reference


def executable_archive_problems(executable: Path, fresh_pkg: Path) -> list[str]:
    """The executable's archive against the one PyInstaller made now (its bytes around the archive are
    the replay's: compared with the replayed executable as a whole)."""
    try:
        shipped = read_archive(executable.read_bytes())
    except ArchiveError as err:
        return [f"holds no archive as PyInstaller writes one ({err})"]
    return archive_problems(shipped, read_archive(fresh_pkg.read_bytes()))


def _run_child(spec: Path, plan_file: Path, executable: Path, work: Path, cwd: Path, tree: LockTree) -> dict[str, Any]:
    out = work / "reference.json"
    out.unlink(missing_ok=True)
    # -S: no site-packages of this environment; PyInstaller, its hooks and the app's distributions all
    # import from the lock tree (PyInstaller's isolated helpers are sent this sys.path).
    command = [sys.executable, "-S", "-m", _CHILD, str(spec), str(plan_file), str(work), str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(tree.import_path()), SITE_ENV: str(tree.path)}
    if (archive := _shipped_archive(executable, work)) is not None:
        command.append(str(archive))
    if (stamp := pe_timestamp(executable)) is not None:
        env["SOURCE_DATE_EPOCH"] = str(stamp)  # the artifact's own build time (Windows writes it in)
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=ANALYSIS_TIMEOUT)
    if result.returncode != 0 or not out.is_file():
        last = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()][-1:] or ["no output"]
        raise AnchorUnavailableError(f"PyInstaller's analysis of {spec} could not be re-run: {last[0]}")
    recorded: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return recorded


def _shipped_archive(executable: Path, work: Path) -> Path | None:
    """The artifact executable's archive as a file of its own, for the replay (``None``: it holds none;
    the executable is then reported as such by its check)."""
    try:
        data = executable.read_bytes()
        archive = read_archive(data)
    except (OSError, ArchiveError):
        return None
    path = work / "shipped.pkg"
    path.write_bytes(data[archive.start : archive.end])
    return path


def pe_timestamp(executable: Path) -> int | None:
    """The build time a Windows executable's COFF header records (``None``: not a PE file)."""
    try:
        with executable.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    if head[:2] != b"MZ" or len(head) < 0x40:
        return None
    (offset,) = struct.unpack_from("<I", head, 0x3C)
    if offset + 12 > len(head) or head[offset : offset + 4] != b"PE\0\0":
        return None
    (stamp,) = struct.unpack_from("<I", head, offset + 8)
    return int(stamp)


def _module_name(dest: str) -> str:
    """``pkg/__init__.pyc`` -> ``pkg``; ``pkg/mod.pyc`` -> ``pkg.mod``."""
    parts = PurePosixPath(dest.replace("\\", "/")).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
