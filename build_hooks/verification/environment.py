"""The environment verify derives artifacts from: the lock tree's distributions (or, for tests of the
rules, this interpreter's installed ones), this interpreter's library folders and the system's.

Never a source checkout or the working directory: a file of the suite's own clone, or of the
folder verify runs in, anchors nothing.
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from build_hooks.freezing.selection import NATIVE_BACKED, UNSHIPPED_NATIVES, is_native

_SYSTEM_LIBRARY_DIRS = (
    *(f"{prefix}/lib/{arch}-linux-gnu" for prefix in ("", "/usr") for arch in ("x86_64", "aarch64")),
    *("/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib"),
)


@dataclass(frozen=True)
class BuildEnvironment:
    """Where an artifact's files came from: the installed distributions (with their RECORD hashes),
    this interpreter's library folders and the system's."""

    import_path: tuple[Path, ...]  # site-packages and the standard library, never a checkout or the cwd
    library_dirs: tuple[Path, ...]  # lib-dynload, libpython's folder, the system's
    record: dict[Path, str]  # installed file -> its sha256 in its distribution's RECORD
    by_name: dict[str, list[Path]]  # native library file name -> installed files of that name
    # Every native library of the native-backed distributions an artifact must ship: (path in the
    # distribution, installed file).
    required: tuple[tuple[str, Path], ...] = ()

    @classmethod
    def current(cls) -> BuildEnvironment:
        """This interpreter's installed distributions (read once per process)."""
        paths = sysconfig.get_paths()
        return _of(tuple(Path(paths[name]) for name in ("purelib", "platlib") if name in paths))

    @classmethod
    def of_lock_tree(cls, site: Path, record: dict[Path, str]) -> BuildEnvironment:
        """The lock tree's distributions (:mod:`~build_hooks.verification.lock`), with the sha256 the
        lock's archives give each file as its record."""
        return replace(_of((site,)), record=record)


def installed_roots() -> tuple[Path, ...]:
    """This environment's site-packages: with lock anchors, no artifact file may come from there."""
    paths = sysconfig.get_paths()
    found = (Path(paths[name]).resolve() for name in ("purelib", "platlib") if name in paths)
    return tuple(dict.fromkeys(found))


@functools.lru_cache(maxsize=4)
def _of(site: tuple[Path, ...]) -> BuildEnvironment:
    paths = sysconfig.get_paths()
    path = [*site, *(Path(paths[name]) for name in ("stdlib", "platstdlib") if name in paths)]
    libs = [sysconfig.get_config_var("DESTSHARED"), sysconfig.get_config_var("LIBDIR"), *_SYSTEM_LIBRARY_DIRS]
    record: dict[Path, str] = {}
    by_name: dict[str, list[Path]] = {}
    found = list(metadata.distributions(path=[str(p) for p in site]))
    for dist in found:
        base = Path(str(dist.locate_file(""))).resolve()  # once per distribution: lookups are by resolved path
        for file in dist.files or ():
            located = base / str(file)
            if file.hash is not None and file.hash.mode == "sha256":
                record[located] = base64.urlsafe_b64decode(file.hash.value + "==").hex()
            if is_native(located.name):
                by_name.setdefault(located.name, []).append(located)
    return BuildEnvironment(
        import_path=tuple(dict.fromkeys(p.resolve() for p in path if p.is_dir())),
        library_dirs=tuple(dict.fromkeys(Path(d) for d in libs if d and Path(d).is_dir())),
        record=record,
        by_name=by_name,
        required=tuple(_required_natives(found)),
    )


def _required_natives(found: list[metadata.Distribution]) -> Iterator[tuple[str, Path]]:
    """(path in its distribution, installed file) of every native library every artifact must ship."""
    by_name = {canonicalize_name(d.metadata["Name"] or ""): d for d in reversed(found)}
    for name in NATIVE_BACKED:
        distribution = by_name.get(canonicalize_name(name))
        if distribution is None:
            continue
        for file in distribution.files or ():
            rel = str(file).replace("\\", "/")
            if is_native(Path(rel).name) and not any(fnmatch.fnmatch(rel, p) for p in UNSHIPPED_NATIVES):
                yield rel, Path(str(distribution.locate_file(file)))
