"""An artifact held to its reference: what its freezer makes of the build's sources, derived at verify time.

A :class:`Reference` says, for every path a freezer writes into the artifact, what
must be there: a file equal to a source (byte for byte, or on Linux an ELF file
as its source less symbols and debug data, :func:`~build_hooks.freezing.elf_strip.strip_problem`;
a ``.pyc`` as the code its source compiles to; PyInstaller's executable as its bootloader made into this
archive), or a symlink with the freezer's text. It comes from the freezer itself,
never from anything beside the artifact: PyInstaller's analysis re-run
(:mod:`~build_hooks.verification.pyinstaller_reference`), or Nuitka's program
built again (:mod:`~build_hooks.verification.nuitka_reference`).

:func:`reference_problems` then holds the artifact to it, path by path: a path the
freezer does not make is an extra file wherever an identical copy may exist; a
path it makes that is not there is missing; a symlink stands for its own path and
is checked as the freezer wrote it, or as the file it is (a link where a file
belongs fails); a file the source came from must still match its distribution's
RECORD. ``data/`` is the plan's (:func:`build_hooks.freezing.manifest.data_problems`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from build_hooks.freezing.elf_strip import is_elf, strip_problem, strips
from build_hooks.freezing.target import Builder
from build_hooks.verification.code_objects import code_differences, load_code
from build_hooks.verification.listing import Entry

Digest = Callable[[Path], str]
Compare = Literal["bytes", "code"]
# PyInstaller's header of the .pyc files it writes: the magic, "unchecked hash-based", no hash.
PYC_HEADER_LENGTH = 16

# The share of an artifact's bytes verify must hold to an independent anchor, by builder and OS:
# every file on every OS, now that PyInstaller's analysis and Nuitka's program are re-made at verify
# time. ``--no-rebuild`` leaves Nuitka's program to the manifest: NO_REBUILD_FLOOR then.
COVERAGE_FLOORS: Mapping[tuple[Builder, str], float] = {
    (builder, os_name): 1.0 for builder in ("pyinstaller", "nuitka") for os_name in ("linux", "win32", "darwin")
}
NO_REBUILD_FLOOR = 0.80


@dataclass(frozen=True)
class Expected:
    """What the freezer puts at one path."""

    kind: Literal["file", "symlink"]
    source: Path | None = None  # a file: what it must equal
    compare: Compare = "bytes"  # "code": a .pyc, compared as the code object it holds
    link: str | None = None  # a symlink: its text, as the freezer writes it
    origin: Path | None = None  # the installed file behind ``source``: held to its distribution's RECORD
    label: str | None = None  # what the file is, when its source is verify's own (a licence text)

    def describe(self) -> str:
        if self.label is not None:
            return self.label
        return f"a symlink to {self.link}" if self.kind == "symlink" else f"from {self.origin or self.source}"


@dataclass
class Reference:
    """Every path one freezer writes into one artifact, and what must be there."""

    builder: Builder
    files: dict[str, Expected]
    how: str  # how it was derived, for the report: "PyInstaller 6.22.3's analysis re-run (2.1 s)"
    # Paths no source can exist for here, with why: held to the manifest only, counted against the floor.
    unanchored: dict[str, str] = field(default_factory=dict)
    # Extra checks of single files (PyInstaller's executable and its archive), by path: problems or [].
    checks: dict[str, Callable[[Path], list[str]]] = field(default_factory=dict)
    floor: float = 1.0
    # (path or module name, source file) of everything the freezer put in: whose licences ship.
    sources: list[tuple[str, Path]] = field(default_factory=list)
    complete: bool = True  # False: the sources are a rule's guess (``--no-rebuild``), not the freezer's own


@dataclass
class Coverage:
    """How much of an artifact verify held to an independent anchor. A file is anchored (it matched),
    unanchored (no source can exist for it here: held to the manifest only, and named), or failed (a
    failure line says why); the floor gates the unanchored share."""

    anchored_files: int = 0
    anchored_bytes: int = 0
    manifest_only_files: int = 0
    manifest_only_bytes: int = 0
    failed_bytes: int = 0
    unanchored: list[str] = field(default_factory=list)  # checked only against the manifest, and why
    floor: float = 1.0
    # Differ from the lock's file but allowed by name (``--allow-patched``): not anchored, said so.
    allowed_files: int = 0
    allowed_bytes: int = 0
    allowed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.anchored_bytes + self.manifest_only_bytes + self.failed_bytes + self.allowed_bytes

    @property
    def share(self) -> float:
        return self.anchored_bytes / self.total if self.total else 1.0

    def count(
        self, rel: str, size: int, outcome: Literal["anchored", "unanchored", "failed", "allowed"], why: str = ""
    ) -> None:
        if outcome == "allowed":
            self.allowed_files += 1
            self.allowed_bytes += size
            self.allowed.append(f"{rel}: {why}")
        elif outcome == "anchored":
            self.anchored_files += 1
            self.anchored_bytes += size
        elif outcome == "unanchored":
            self.manifest_only_files += 1
            self.manifest_only_bytes += size
            self.unanchored.append(f"{rel}: {why}")
        else:
            self.failed_bytes += size

    def floor_problem(self) -> str | None:
        """Too much held to the manifest alone (failed files have their own failure lines)."""
        # Files allowed by name are outside the floor: they are listed as not anchored instead.
        gated = self.total - self.allowed_bytes
        held = 1 - (self.manifest_only_bytes / gated if gated else 0.0)
        if held + 1e-12 >= self.floor:
            return None
        return (
            f"{self.manifest_only_bytes / self.total:.2%} of the artifact's bytes have no anchor here, more than the "
            f"floor of {self.floor:.0%} anchored allows (unanchored: {'; '.join(self.unanchored)})"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "anchored_files": self.anchored_files,
            "anchored_bytes": self.anchored_bytes,
            "manifest_only_files": self.manifest_only_files,
            "manifest_only_bytes": self.manifest_only_bytes,
            "failed_bytes": self.failed_bytes,
            "anchored_share_of_bytes": round(self.share, 4),
            "floor": self.floor,
            "unanchored": self.unanchored,
            "allowed_unanchored_files": self.allowed_files,
            "allowed_unanchored": self.allowed,
        }

    def summary(self) -> str:
        allowed = f"; NOT ANCHORED, allowed by name: {self.allowed_files} files" if self.allowed_files else ""
        return (
            f"{self.anchored_files} files, {self.share:.2%} of bytes anchored (floor {self.floor:.0%}); "
            f"{self.manifest_only_files} files ({self.manifest_only_bytes / 2**20:.1f} MiB) by the manifest only"
            + allowed
        )


def coverage_floor(builder: Builder, platform: str = sys.platform) -> float:
    os_name = "linux" if platform.startswith("linux") else platform
    return COVERAGE_FLOORS.get((builder, os_name), 1.0)


def reference_problems(
    dist: Path,
    listing: Mapping[str, Entry],
    reference: Reference,
    *,
    data_prefix: str,
    data_ok: bool,
    digest: Digest,
    record: Mapping[Path, str],
    foreign: tuple[Path, ...] = (),
    allowed: Mapping[Path, str] | None = None,
) -> tuple[list[str], Coverage]:
    """Every path of ``listing`` (the artifact ``dist``) against ``reference``, and what is missing;
    ``data/`` (under ``data_prefix``) counts as anchored when the plan's data check passed. ``allowed``
    maps source files (the lock tree's) whose artifact copies may differ to why: such a file is counted
    as allowed and not anchored, never as a pass."""
    problems: list[str] = []
    coverage = Coverage(floor=reference.floor)
    for rel in sorted(set(listing) | set(reference.files) | set(reference.unanchored)):
        entry, expected = listing.get(rel), reference.files.get(rel)
        if rel.startswith(data_prefix):
            if entry is not None:  # the data check names what is missing, extra or changed there
                coverage.count(rel, entry.size, "anchored" if data_ok else "failed")
            continue
        if entry is None:
            if expected is not None:
                problems.append(f"{rel} is missing (the freezer makes it {expected.describe()})")
            continue
        if expected is None:
            if rel in reference.unanchored and entry.problem is None:
                coverage.count(rel, entry.size, "unanchored", reference.unanchored[rel])
            else:
                coverage.count(rel, entry.size, "failed")
                why = f": it {entry.problem}" if entry.problem else ""
                problems.append(f"{rel} was not collected by the freezer (an extra file{why})")
            continue
        try:
            problem = _extra_check(dist, rel, reference) or _path_problem(
                dist, entry, expected, digest, record, foreign
            )
        except Exception as err:  # whatever a damaged file makes a reader raise is a finding about that file
            problem = f"cannot be checked ({type(err).__name__}: {err})"
        source = (expected.origin or expected.source or Path()).resolve() if expected.kind == "file" else None
        allowance = (allowed or {}).get(source) if source is not None else None
        if allowance is not None and problem is None:  # it is the patched file: said, never counted anchored
            coverage.count(rel, entry.size, "allowed", allowance)
            continue
        coverage.count(rel, entry.size, "anchored" if problem is None else "failed")
        if problem is not None:
            problems.append(f"{rel} {problem}")
    if (below := coverage.floor_problem()) is not None:
        problems.append(below)
    return problems, coverage


def _extra_check(dist: Path, rel: str, reference: Reference) -> str | None:
    check = reference.checks.get(rel)
    found = check(dist / rel) if check is not None else []
    return "; ".join(found) if found else None


def _path_problem(
    dist: Path, entry: Entry, expected: Expected, digest: Digest, record: Mapping[Path, str], foreign: tuple[Path, ...]
) -> str | None:
    if entry.problem is not None:
        return entry.problem
    if expected.kind == "symlink":
        if entry.kind != "symlink":
            return f"is a file; the freezer makes it a symlink to {expected.link}"
        if _link_text(entry.link) != _link_text(expected.link):
            return f"is a symlink to {entry.link}; the freezer makes it one to {expected.link}"
        return None
    if entry.kind == "symlink":
        return f"is a symlink to {entry.link}; the freezer writes a file there ({expected.describe()})"
    assert expected.source is not None
    if (problem := origin_problem(expected.origin or expected.source, digest, record, foreign)) is not None:
        return problem
    path = entry.path(dist)
    if expected.compare == "code":
        return pyc_problem(path.read_bytes(), expected.source)
    shipped, wanted = digest(path), digest(expected.source)
    if not is_sha256(shipped):
        return f"cannot be read ({shipped})"
    if not is_sha256(wanted):
        return f"cannot be compared: its source {expected.source} cannot be read ({wanted})"
    if shipped != wanted:
        if strips() and is_elf(expected.source):  # the build strips ELF files: equal modulo strip, or not at all
            if (why := strip_problem(path.read_bytes(), expected.source.read_bytes())) is None:
                return None
            return f"differs from {expected.source}, which the freezer makes it from, by more than a strip ({why})"
        return f"differs from {expected.source}, which the freezer makes it from"
    return None


def is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def origin_problem(
    origin: Path, digest: Digest, record: Mapping[Path, str], foreign: tuple[Path, ...] = ()
) -> str | None:
    """A file of a distribution must still be what its anchor (the lock's archive) says; none may come
    from ``foreign`` folders (the verifying environment's site-packages, which the lock does not anchor)."""
    resolved = origin.resolve()
    if any(resolved.is_relative_to(root) for root in foreign):
        return f"comes from {origin}, in the verifying environment's site-packages, which uv.lock does not anchor"
    recorded = record.get(resolved)
    if recorded is not None and digest(origin) != recorded:
        return f"comes from {origin}, which differs from the file uv.lock's archive holds"
    return None


def pyc_problem(shipped: bytes, expected_pyc: Path) -> str | None:
    """A PyInstaller ``.pyc`` against the one PyInstaller compiles from the same source now."""
    fresh = expected_pyc.read_bytes()
    if shipped == fresh:  # the same bytes hold the same code; other bytes may still (marshal's choices)
        return None
    if shipped[:PYC_HEADER_LENGTH] != fresh[:PYC_HEADER_LENGTH]:
        return "is not a .pyc of this interpreter (its header differs)"
    try:
        code = load_code(shipped[PYC_HEADER_LENGTH:])
    except (ValueError, EOFError, TypeError) as err:
        return f"is not valid bytecode ({err})"
    if differences := code_differences(code, load_code(fresh[PYC_HEADER_LENGTH:])):
        return f"is not its source compiled ({'; '.join(differences)})"
    return None


def _link_text(link: str | None) -> str:
    return (link or "").replace("\\", "/")
