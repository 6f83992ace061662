"""The build-time manifest of an artifact: every file in its dist, with size and sha256.

Each build writes ``<dist>.manifest.json`` beside the dist right after building,
hashing every file once. verify-artifact checks the dist against it file by
file (missing, extra, changed), so a change made after the build shows, and
``SHA256SUMS`` is written from the verified manifest rather than from whatever
the dist holds when verify runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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


def write_manifest(plan: BundlePlan, dist: Path, builder: Builder) -> Path:
    """Hash every file of ``dist`` once and record it, with where each data file came from."""
    sources = {dest: str(expected.source) for dest, expected in plan.expected_data().items()}
    files = {}
    for path in sorted(p for p in dist.rglob("*") if p.is_file() or p.is_symlink()):
        relative = path.relative_to(dist).as_posix()
        files[relative] = {"size": path.lstat().st_size, "sha256": sha256_file(path)}
        if relative in sources:
            files[relative]["source"] = sources[relative]
    document = {"schema": MANIFEST_SCHEMA, "builder": builder, "pin": str(plan.pin), "files": files}
    target = manifest_path(dist)
    fsutil.atomic_write_bytes(target, json.dumps(document, indent=1, sort_keys=True).encode() + b"\n")
    return target


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
