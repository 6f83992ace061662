"""The build-time manifest of an artifact: every file in its dist, with size and sha256.

Each build writes ``<dist>.manifest.json`` beside the dist right after building,
hashing every file once, and checks the data copies against the plan from the
same hashes (:func:`data_copy_problems`): the model is hashed once per build.
verify-artifact checks the dist against the manifest file by file (missing,
extra, changed), so a change made after the build shows, and ``SHA256SUMS`` is
written from the verified manifest rather than from whatever the dist holds
when verify runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from build_hooks import fsutil
from build_hooks.bundle import Builder, BundlePlan
from embedding_runtime import sha256_file

MANIFEST_SCHEMA = 1


@dataclass(frozen=True)
class ManifestEntry:
    size: int
    sha256: str


def manifest_path(dist: Path) -> Path:
    return dist.with_name(dist.name + ".manifest.json")


def dist_entries(dist: Path) -> dict[str, ManifestEntry]:
    """Every file of ``dist`` (by posix path inside it) with its size and sha256, each hashed once."""
    entries = {}
    for path in sorted(p for p in dist.rglob("*") if p.is_file() or p.is_symlink()):
        entries[path.relative_to(dist).as_posix()] = ManifestEntry(path.lstat().st_size, sha256_file(path))
    return entries


def write_manifest(plan: BundlePlan, dist: Path, builder: Builder) -> dict[str, ManifestEntry]:
    """Hash every file of ``dist`` once and record it, with where each data file came from; the entries."""
    entries = dist_entries(dist)
    data_root = plan.data_root(dist).relative_to(dist)
    sources = {(data_root / dest).as_posix(): str(e.source) for dest, e in plan.expected_data().items()}
    files: dict[str, dict[str, object]] = {}
    for relative, entry in entries.items():
        files[relative] = {"size": entry.size, "sha256": entry.sha256}
        if relative in sources:
            files[relative]["source"] = sources[relative]
    document = {"schema": MANIFEST_SCHEMA, "builder": builder, "pin": str(plan.pin), "files": files}
    fsutil.atomic_write_bytes(manifest_path(dist), json.dumps(document, indent=1, sort_keys=True).encode() + b"\n")
    return entries


def data_copy_problems(plan: BundlePlan, dist: Path, entries: Mapping[str, ManifestEntry]) -> list[str]:
    """Data files of the plan missing from ``dist`` or not the bytes they must be, by the hashes in ``entries``.

    Nuitka's ``--include-data-dir`` drops files by suffix and a spec can lose a
    ``datas`` entry: a file that did not arrive, or arrived changed, fails the build by name.
    """
    data_root = plan.data_root(dist).relative_to(dist)
    problems: list[str] = []
    for relative, expected in sorted(plan.expected_data().items()):
        entry = entries.get((data_root / relative).as_posix())
        if entry is None:
            problems.append(f"{relative} is missing from {dist}")
        elif (entry.size, entry.sha256) != (expected.size, expected.sha256):
            problems.append(f"{relative} in {dist} differs from its source (size or sha256)")
    return problems


def read_manifest(dist: Path) -> dict[str, ManifestEntry] | None:
    """The files the build recorded for ``dist``; ``None`` when there is no valid manifest."""
    try:
        raw = json.loads(manifest_path(dist).read_text(encoding="utf-8"))
        if raw.get("schema") != MANIFEST_SCHEMA:
            return None
        return {str(k): ManifestEntry(int(v["size"]), str(v["sha256"])) for k, v in raw["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def dist_changes(
    dist: Path, recorded: dict[str, ManifestEntry], hash_file: Callable[[Path], str] = sha256_file
) -> list[str]:
    """Every file missing, extra or changed against the manifest (``hash_file`` may share a cache)."""
    problems: list[str] = []
    present = {p.relative_to(dist).as_posix(): p for p in dist.rglob("*") if p.is_file() or p.is_symlink()}
    for relative in sorted(set(recorded) - set(present)):
        problems.append(f"{relative} is missing (the build recorded it)")
    for relative in sorted(set(present) - set(recorded)):
        problems.append(f"{relative} was not in the build (an extra file)")
    for relative in sorted(set(present) & set(recorded)):
        path, entry = present[relative], recorded[relative]
        if path.lstat().st_size != entry.size:
            problems.append(f"{relative} has {path.lstat().st_size} bytes, the build recorded {entry.size}")
        elif hash_file(path) != entry.sha256:
            problems.append(f"{relative} changed after the build (sha256 differs)")
    return problems
