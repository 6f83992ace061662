"""Third-party files anchored to the lock: the ``.whl`` (or sdist) files whose sha256 ``uv.lock`` records.

An installed environment anchors nothing: a library and its RECORD can be
rewritten together, and uv's cache holds unpacked trees hard-linked into
site-packages, not wheels. So verify derives what the freezers make from a *lock
tree* instead: every build-group distribution of the verifying environment that
``uv.lock`` pins, unpacked from the wheel the lock names for this interpreter
(the first of its tags, in ``packaging.tags.sys_tags()`` order, as an installer
picks), the wheel's bytes checked against the lock's sha256, and every unpacked
file, on every use, against the member the archive holds. A distribution the
lock has only as an sdist (Nuitka) is unpacked from the sdist's package folder.
The tree is kept beside the wheelhouse, one per lock, shared by every project.

The files come from a *wheelhouse* (``build/wheelhouse/`` by default), filled by
``embedding-pipeline wheelhouse`` from the lock's URLs: that command is the only
one here that needs the network. Offline with an empty wheelhouse, verify says
which wheel it lacks, in one line.

The suite's own modules (``build_hooks`` and ``embedding_runtime``) are the
verifier: they are copied beside the tree, not taken from it. The interpreter and
its standard library are the verifying one's (build-info records the build's,
which verify compares).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tarfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from filelock import FileLock
from packaging.tags import Tag, sys_tags
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from build_hooks import fsutil
from build_hooks.errors import AnchorUnavailableError, UsageError
from build_hooks.versions import locked_packages

WHEELHOUSE_ENV = "EMBEDDING_PIPELINE_WHEELHOUSE"
SUITE_DISTRIBUTIONS = ("desktop-embedding-pipeline", "embedding-runtime")
_TREE_DONE = ".lock-tree.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LockedFile:
    """One file ``uv.lock`` pins for one distribution on this interpreter."""

    name: str  # canonical distribution name
    version: str
    filename: str
    url: str
    sha256: str
    kind: str  # "wheel" or "sdist"


def default_wheelhouse(project_root: Path, env: dict[str, str] | None = None) -> Path:
    """``$EMBEDDING_PIPELINE_WHEELHOUSE``, else ``build/wheelhouse/`` of the project."""
    value = (os.environ if env is None else env).get(WHEELHOUSE_ENV, "").strip()
    return Path(value) if value else project_root / "build" / "wheelhouse"


BUILD_GROUP = "build"
"""The dependency group the pipeline's sessions install (the suite, the freezers, the app's needs)."""


def installed_names() -> set[str]:
    """The distributions of the verifying environment (which of the lock's packages it needs)."""
    return {canonicalize_name(d.metadata["Name"]) for d in metadata.distributions() if d.metadata["Name"]}


def build_closure(lock: Path, group: str = BUILD_GROUP) -> set[str]:
    """Every package the lock resolves for the project's ``group`` and its own dependencies, markers
    aside (the verifying environment's installer evaluated them: :func:`needed_names` keeps what it has)."""
    packages = _packages(lock)
    by_name = {canonicalize_name(str(p.get("name", ""))): p for p in packages}
    roots = [p for p in packages if {"editable", "virtual"} & set(p.get("source", {})) and p["source"].get(
        "editable", p["source"].get("virtual")) == "."]  # fmt: skip
    if not roots:
        raise UsageError(f"{lock} has no package for the project itself: run `uv lock` in its folder")
    todo = [d["name"] for d in roots[0].get("dependencies", [])]
    todo += [d["name"] for d in roots[0].get("dev-dependencies", {}).get(group, [])]
    seen: set[str] = set()
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo += [d["name"] for d in by_name[name].get("dependencies", [])]
        for extra in by_name[name].get("optional-dependencies", {}).values():
            todo += [d["name"] for d in extra]
    return seen


def needed_names(lock: Path) -> set[str]:
    """The lock's build-group packages this environment holds: what the freezers read here."""
    return build_closure(lock) & installed_names()


def _packages(lock: Path) -> list[dict[str, Any]]:
    packages = locked_packages(lock)
    if packages is None:
        raise UsageError(f"{lock} is missing: verify anchors third-party files to it; run `uv lock` in {lock.parent}")
    return packages


def locked_files(lock: Path, names: Iterable[str], tags: Iterable[Tag] | None = None) -> list[LockedFile]:
    """For each of ``names`` the lock pins from an index: the wheel it names for this interpreter, or
    its sdist when no wheel fits. Names the lock has from a path, a git checkout or not at all are
    not third-party files (the app's and the suite's own sources), nor are the suite's distributions
    wherever they come from (they are the verifier)."""
    packages = _packages(lock)
    wanted = {canonicalize_name(n) for n in names}
    order = {tag: rank for rank, tag in enumerate(tags if tags is not None else sys_tags())}
    chosen: list[LockedFile] = []
    for package in packages:
        name = canonicalize_name(str(package.get("name", "")))
        # The suite's own distributions are the verifier (copied beside the tree): an app locks them from
        # a folder of wheels, with no hash to anchor to.
        if name not in wanted or name in SUITE_DISTRIBUTIONS or "registry" not in package.get("source", {}):
            continue
        version = str(package.get("version"))
        wheels = [{**w, "url": _url(lock, w)} for w in package.get("wheels", [])]
        fitting = [
            (min(order[t] for t in parse_wheel_filename(_filename(w["url"]))[3] if t in order), w)
            for w in wheels
            if any(t in order for t in parse_wheel_filename(_filename(w["url"]))[3])
        ]
        if fitting:
            best = min(fitting, key=lambda pair: pair[0])[1]
            chosen.append(_locked(name, version, best, "wheel"))
        elif "sdist" in package:
            chosen.append(_locked(name, version, {**package["sdist"], "url": _url(lock, package["sdist"])}, "sdist"))
        else:
            raise AnchorUnavailableError(f"uv.lock has no wheel of {name} {version} for this interpreter and no sdist")
    return sorted(chosen, key=lambda f: f.name)


def _url(lock: Path, entry: dict[str, Any]) -> str:
    """Where a locked file is: its URL, or (a find-links folder) its path from the lock's folder."""
    if "url" in entry:
        return str(entry["url"])
    return (lock.parent / str(entry.get("path", ""))).resolve().as_uri()


def _filename(url: str) -> str:
    return PurePosixPath(urllib.request.url2pathname(url.rsplit("/", 1)[-1])).name


def _locked(name: str, version: str, entry: dict[str, str], kind: str) -> LockedFile:
    algorithm, _, value = str(entry.get("hash", "")).partition(":")
    if algorithm != "sha256" or len(value) != 64:
        raise AnchorUnavailableError(f"uv.lock records no sha256 for {name} {version}: run `uv lock` again")
    return LockedFile(name, version, _filename(entry["url"]), entry["url"], value, kind)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(files: Iterable[LockedFile], wheelhouse: Path, log: Callable[[str], None] = lambda _: None) -> list[Path]:
    """Download each file the lock pins into ``wheelhouse`` by its URL, unless a copy with the lock's
    sha256 is there; a download with another sha256 is refused (nothing is left under its name)."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    fetched = []
    for locked in files:
        path = wheelhouse / locked.filename
        if path.is_file() and sha256_of(path) == locked.sha256:
            fetched.append(path)
            continue
        log(f"fetching {locked.filename}")
        tmp = wheelhouse / f".{locked.filename}.download"
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(locked.url, timeout=120) as response, tmp.open("wb") as out:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != locked.sha256:
                raise AnchorUnavailableError(
                    f"{locked.url} has sha256 {digest.hexdigest()}, not the {locked.sha256} uv.lock records: "
                    "refusing it (a changed index, or a proxy rewriting downloads)"
                )
            fsutil.replace(tmp, path)
        except OSError as err:
            raise AnchorUnavailableError(f"cannot fetch {locked.url} ({err}): check the network or the index") from err
        finally:
            tmp.unlink(missing_ok=True)
        fetched.append(path)
    return fetched


def anchored_file(locked: LockedFile, wheelhouse: Path) -> Path:
    """The wheelhouse's copy of ``locked``, its sha256 the lock's; one line naming what is missing."""
    path = wheelhouse / locked.filename
    if not path.is_file():
        raise AnchorUnavailableError(
            f"{locked.filename} ({locked.name} {locked.version}, as uv.lock pins it) is not in {wheelhouse}: "
            "run `embedding-pipeline wheelhouse` (it downloads from the index) or pass --wheelhouse"
        )
    if (actual := sha256_of(path)) != locked.sha256:
        raise AnchorUnavailableError(
            f"{path} has sha256 {actual}, not the {locked.sha256} uv.lock pins: remove it and run "
            "`embedding-pipeline wheelhouse` again"
        )
    return path


def archive_members(locked: LockedFile, path: Path) -> Iterator[tuple[str, bytes]]:
    """(path in the tree, bytes) of every importable file of a wheel, or of an sdist's package folder,
    one at a time. The archive is anchored by the lock's sha256, so each member is as it holds it."""
    if locked.kind == "wheel":
        with zipfile.ZipFile(path) as wheel:
            for name in wheel.namelist():
                if not name.endswith("/") and (target := _wheel_target(name)) is not None:
                    yield target, wheel.read(name)
        return
    name, _version = parse_sdist_filename(locked.filename)
    package = canonicalize_name(str(name)).replace("-", "_")
    with tarfile.open(path, "r:gz") as sdist:
        for info in sdist:
            parts = PurePosixPath(info.name).parts
            # Nuitka's layout (and setuptools'): <name>-<version>/<package>/...; its metadata is not imported.
            if info.isreg() and len(parts) >= 3 and parts[1] == package:
                yield PurePosixPath(*parts[1:]).as_posix(), sdist.extractfile(info).read()  # type: ignore[union-attr]


@functools.lru_cache(maxsize=512)
def _archive_digests(locked: LockedFile, path: Path, size: int, mtime_ns: int) -> tuple[tuple[str, str], ...]:
    """Each member's sha256, once per process for an archive (whose own sha256 was just checked)."""
    return tuple((rel, hashlib.sha256(data).hexdigest()) for rel, data in archive_members(locked, path))


def _digests(locked: LockedFile, path: Path) -> dict[str, str]:
    info = path.stat()
    return dict(_archive_digests(locked, path, info.st_size, info.st_mtime_ns))


def _wheel_target(name: str) -> str | None:
    """Where an installer puts a wheel's member, relative to site-packages (``None``: not importable:
    scripts, headers, data)."""
    parts = PurePosixPath(name).parts
    if parts[0].endswith(".data"):
        return PurePosixPath(*parts[2:]).as_posix() if len(parts) > 2 and parts[1] in ("purelib", "platlib") else None
    return name


@dataclass(frozen=True)
class LockTree:
    """The lock's distributions unpacked: ``path`` goes on the import path instead of site-packages."""

    path: Path
    suite: Path  # the verifier's own modules, beside the tree
    record: dict[Path, str]  # every file of the tree -> the sha256 its anchored archive gives it
    files: tuple[LockedFile, ...]
    owners: dict[Path, str]  # every file of the tree -> the distribution it came from
    # Files taken from the environment (``patched``) whose bytes are not the lock's: they anchor nothing.
    patched: frozenset[Path] = frozenset()

    def import_path(self) -> list[str]:
        return [str(self.suite), str(self.path)]


def lock_tree(
    lock: Path, wheelhouse: Path, work: Path, names: Iterable[str] | None = None, patched: Iterable[str] = ()
) -> LockTree:
    """The lock tree for the verifying environment's distributions, beside the wheelhouse (else in
    ``work``), kept between runs so PyInstaller's analysis stays incremental; every file is checked
    against its anchor on each use, and unpacked again when one differs. A distribution named in
    ``patched`` is taken from this environment as it is installed (patched on purpose: the Wine
    smoke's numpy): its files whose bytes are not the locked wheel's anchor nothing
    (``LockTree.patched``), and verify lists the artifact's copies of them as not anchored."""
    files = tuple(locked_files(lock, needed_names(lock) if names is None else names))
    wanted = {canonicalize_name(n) for n in patched}
    archives = [(locked, anchored_file(locked, wheelhouse)) for locked in files]
    owners: dict[str, str] = {}
    expected: dict[str, str] = {}
    differing: set[str] = set()
    for locked, path in archives:
        digests = _digests(locked, path)
        if locked.name in wanted:
            for rel, data in installed_members(locked.name):
                expected[rel], owners[rel] = hashlib.sha256(data).hexdigest(), locked.name
                if digests.get(rel) != expected[rel]:
                    differing.add(rel)
        else:
            expected |= digests
            owners |= dict.fromkeys(digests, locked.name)
    key = hashlib.sha256(json.dumps([[f.sha256 for f in files], sorted(wanted)]).encode())
    if wanted:
        key.update(json.dumps(sorted(expected.items())).encode())
    folder = _trees_folder(wheelhouse, work)
    tree = folder / f"lock-tree-{key.hexdigest()[:16]}"
    with FileLock(folder / f".{tree.name}.lock"):
        if _tree_problems(tree / "site", expected):
            shutil.rmtree(tree, ignore_errors=True)
            for locked, path in archives:
                members = installed_members(locked.name) if locked.name in wanted else archive_members(locked, path)
                for rel, data in members:
                    target = tree / "site" / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
            if problems := _tree_problems(tree / "site", expected):
                raise AnchorUnavailableError(f"the lock tree in {tree} cannot be made: {problems[0]}")
        suite = _copy_suite(tree / "suite")
    site = (tree / "site").resolve()
    record = {site / rel: digest for rel, digest in expected.items()}
    return LockTree(
        tree / "site", suite, record, files, {site / rel: name for rel, name in owners.items()},
        frozenset(site / rel for rel in differing),
    )  # fmt: skip


def _trees_folder(wheelhouse: Path, work: Path) -> Path:
    """Where lock trees are kept: beside the wheelhouse, so every project verified with it shares one
    tree at one path (the Nuitka rebuild's compiler cache then hits across projects); ``work`` when
    that place cannot be written."""
    for folder in (wheelhouse.parent / "lock-trees", work):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / ".writable").touch()
        except OSError:
            continue
        return folder
    raise AnchorUnavailableError(f"neither {wheelhouse.parent / 'lock-trees'} nor {work} can be written")


def installed_members(name: str) -> Iterator[tuple[str, bytes]]:
    """(path in the tree, bytes) of every importable file of an installed distribution."""
    try:
        distribution = metadata.distribution(name)
    except metadata.PackageNotFoundError as err:
        raise AnchorUnavailableError(f"--allow-patched {name}: it is not installed here") from err
    base = Path(str(distribution.locate_file("")))
    for file in distribution.files or ():
        rel = PurePosixPath(str(file).replace("\\", "/"))
        if rel.parts and rel.parts[0] != ".." and "__pycache__" not in rel.parts and (base / str(file)).is_file():
            yield rel.as_posix(), (base / str(file)).read_bytes()


# Trees this process hashed in full and found right, with every file's (size, mtime, inode) then: a
# later verify in the same process re-hashes only when one of those changed (the test suite verifies
# hundreds of times; a fresh process always hashes every file).
_CHECKED: dict[Path, dict[str, tuple[int, int, int]]] = {}


def _tree_problems(site: Path, expected: dict[str, str]) -> list[str]:
    if not site.is_dir():
        return ["not unpacked yet"]
    found = {p.relative_to(site).as_posix(): p for p in site.rglob("*") if p.is_file() or p.is_symlink()}
    problems = [f"{rel} is not from the lock" for rel in sorted(found.keys() - expected.keys())]
    problems += [f"{rel} is missing" for rel in sorted(expected.keys() - found.keys())]
    if problems:
        return problems
    snapshot = {rel: _identity(path) for rel, path in found.items()}
    if _CHECKED.get(site) == snapshot:
        return []
    problems += [f"{rel} differs from its wheel" for rel in sorted(found)
                 if found[rel].is_symlink() or sha256_of(found[rel]) != expected[rel]]  # fmt: skip
    if not problems:
        _CHECKED[site] = snapshot
    return problems


def _identity(path: Path) -> tuple[int, int, int]:
    info = path.lstat()
    return info.st_size, info.st_mtime_ns, info.st_ino


def _copy_suite(folder: Path) -> Path:
    """The verifier's own packages, copied beside the tree (never the environment's site-packages)."""
    import build_hooks
    import embedding_runtime

    wanted: dict[Path, Path] = {}
    for package in (build_hooks, embedding_runtime):
        source = Path(str(package.__file__)).parent
        for path in source.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                wanted[folder / source.name / path.relative_to(source)] = path
    for path in (
        [p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts] if folder.is_dir() else []
    ):
        if path not in wanted and ".generated" not in path.relative_to(folder).parts:
            path.unlink()
    for name in SUITE_DISTRIBUTIONS:  # their metadata: the suite's PyInstaller hooks are an entry point of it
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        info = folder / f"{canonicalize_name(name).replace('-', '_')}-{distribution.version}.dist-info"
        for file in ("METADATA", "entry_points.txt"):
            if (text := distribution.read_text(file)) is not None:
                generated = folder / ".generated" / info.name / file
                generated.parent.mkdir(parents=True, exist_ok=True)
                if not generated.is_file() or generated.read_text(encoding="utf-8") != text:
                    generated.write_text(text, encoding="utf-8")
                wanted[info / file] = generated
    for copy, source in wanted.items():  # copied only when it differs: the analysis stays incremental
        if not copy.is_file() or copy.read_bytes() != source.read_bytes():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy)
    return folder
