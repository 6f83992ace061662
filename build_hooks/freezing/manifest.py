"""The build-time manifest of an artifact, and the one check of its ``data/`` against the plan.

Each build writes ``<dist>.manifest.json`` beside the dist right after building,
hashing every file once, and checks the data copies against the plan from the
same hashes (:func:`data_problems`): the model is hashed once per build.
verify-artifact runs the same data check against a plan it makes anew, and
holds the rest of the dist to the manifest file by file (missing, extra,
changed); ``SHA256SUMS`` is written from the verified manifest rather than from
whatever the dist holds when verify runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from build_hooks.freezing.plan import BuildPlan
from build_hooks.freezing.target import manifest_path
from embedding_runtime.build_api import DATA_FOLDER, FileDigest, read_json_record, sha256_file

BUILD_MANIFEST_SCHEMA = 1
# The build's own records (manifest, SBOM, stamp, plan) are far smaller; anything larger is not one.
RECORD_MAX_BYTES = 64 * 2**20
# What a digest function returns, instead of a sha256, for a file that cannot be read.
UNREADABLE = "unreadable"


def dist_entries(dist: Path) -> dict[str, FileDigest]:
    """Every file of ``dist`` (by posix path inside it) with its size and sha256, each hashed once."""
    entries = {}
    for path in sorted(p for p in dist.rglob("*") if p.is_file() or p.is_symlink()):
        entries[path.relative_to(dist).as_posix()] = FileDigest(path.lstat().st_size, sha256_file(path))
    return entries


def manifest_document(plan: BuildPlan, dist: Path, entries: Mapping[str, FileDigest]) -> bytes:
    """The manifest of ``dist`` from its entries (:func:`dist_entries`), with where each data file came
    from, relative to the project: two clones in two folders write one manifest."""
    data_root = plan.target.data_root(dist).relative_to(dist)
    project = plan.target.config.project_root
    sources = {(data_root / f.dest).as_posix(): Path(os.path.relpath(f.source, project)).as_posix() for f in plan.data}
    files: dict[str, dict[str, object]] = {}
    for relative, entry in entries.items():
        files[relative] = {"size": entry.size, "sha256": entry.sha256}
        if relative in sources:
            files[relative]["source"] = sources[relative]
    document = {"schema": BUILD_MANIFEST_SCHEMA, "builder": plan.builder, "pin": str(plan.pin), "files": files}
    return json.dumps(document, indent=1, sort_keys=True).encode() + b"\n"


def read_build_manifest(dist: Path) -> dict[str, FileDigest] | None:
    """The files the build recorded for ``dist``; ``None`` when there is no valid manifest."""
    raw = read_json_record(manifest_path(dist), RECORD_MAX_BYTES)
    try:
        if not isinstance(raw, dict) or raw.get("schema") != BUILD_MANIFEST_SCHEMA:
            return None
        return {str(k): FileDigest(int(v["size"]), str(v["sha256"])) for k, v in raw["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def data_problems(
    plan: BuildPlan,
    dist: Path,
    entries: Mapping[str, FileDigest],
    by_content: Mapping[str, Callable[[], list[str]]] | None = None,
) -> list[str]:
    """The one data check: the dist's ``data/`` holds exactly the plan's files, each with the plan's
    size and sha256. ``entries`` maps files by their path inside ``dist`` to their digests (the
    manifest's, or verify's own); problems name each file by that path. A file of ``by_content``
    (its destination in ``data/`` -> its check) that differs from the plan's bytes is held to that
    check instead: verify's probe record, computed on another CPU than the build's.

    It catches what Nuitka's ``--include-data-dir`` drops by suffix, a spec that lost a ``datas``
    entry, a file changed between the plan and the copy, and anything no plan lists.
    """
    root = plan.target.data_root(dist).relative_to(dist).as_posix()
    root = "" if root == "." else root + "/"
    expected = {root + f.dest: f for f in plan.data}
    shipped = {rel: entry for rel, entry in entries.items() if rel.startswith(f"{root}{DATA_FOLDER}/")}
    problems = [f"{rel} is missing from {root}{DATA_FOLDER}/" for rel in sorted(expected.keys() - shipped.keys())]
    for rel in sorted(expected.keys() & shipped.keys()):
        if expected[rel].matches(shipped[rel]):
            continue
        if (check := (by_content or {}).get(expected[rel].dest)) is not None:
            problems += [f"{rel} {problem}" for problem in check()]
        else:
            problems.append(f"{rel} is not the plan's (size or sha256 differs: {_which(plan, expected[rel].dest)})")
    problems += [f"{rel} is not part of the plan" for rel in sorted(shipped.keys() - expected.keys())]
    return problems


def dist_changes(
    dist: Path, recorded: Mapping[str, FileDigest], hash_file: Callable[[Path], str] = sha256_file, *, skip: str = ""
) -> list[str]:
    """Every file missing, extra or changed against the manifest (``hash_file`` may share a cache);
    files under ``skip`` (a path prefix inside ``dist``) are left to another check."""
    problems: list[str] = []
    present = {p.relative_to(dist).as_posix(): p for p in dist.rglob("*") if p.is_file() or p.is_symlink()}
    present = {rel: path for rel, path in present.items() if not (skip and rel.startswith(skip))}
    recorded = {rel: entry for rel, entry in recorded.items() if not (skip and rel.startswith(skip))}
    for relative in sorted(set(recorded) - set(present)):
        problems.append(f"{relative} is missing (the build recorded it)")
    for relative in sorted(set(present) - set(recorded)):
        problems.append(f"{relative} was not in the build (an extra file)")
    for relative in sorted(set(present) & set(recorded)):
        path, entry = present[relative], recorded[relative]
        if path.lstat().st_size != entry.size:
            problems.append(f"{relative} has {path.lstat().st_size} bytes, the build recorded {entry.size}")
        elif (actual := hash_file(path)).startswith(UNREADABLE):
            problems.append(f"{relative} cannot be checked: {actual}")
        elif actual != entry.sha256:
            problems.append(f"{relative} changed after the build (sha256 differs)")
    return problems


def _which(plan: BuildPlan, dest: str) -> str:
    """What the plan's file is, for the message: a generated file, or the copy of a source file."""
    if dest in plan.generated:
        return "the build generates it from the pin and the configuration"
    source = next(f.source for f in plan.data if f.dest == dest)
    return f"its source is {source}"
