"""The on-disk contract of a profile folder, shared by the build and the runtime.

A profile folder holds the tokenizer and one or both ONNX variants, plus the
``.prepared.json`` marker written last by the prepare step. The marker names
the upstream repo for provenance only: the runtime keys everything on the
profile id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from embedding_runtime._hashing import FileDigest
from embedding_runtime._records import RecordProblem, read_json_record

DEFAULT_PROFILE_ID = "local-text-retrieval-v1"
MARKER_NAME = ".prepared.json"
MARKER_SCHEMA = 1

TOKENIZER_FILE = "tokenizer.json"
VARIANT_FILES: Mapping[str, tuple[str, ...]] = {
    "fp32": (TOKENIZER_FILE, "onnx/model.onnx", "onnx/model.onnx_data"),
    "int8": (TOKENIZER_FILE, "onnx/model_quantized.onnx", "onnx/model_quantized.onnx_data"),
}
VARIANTS: tuple[str, ...] = tuple(VARIANT_FILES)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A real marker is under 2 KiB; anything far larger is not one, and is not worth parsing.
MARKER_MAX_BYTES = 64 * 1024


def files_for_variants(variants: Iterable[str]) -> tuple[str, ...]:
    """Return the allow-listed files of ``variants``, tokenizer first, without duplicates."""
    ordered: dict[str, None] = {}
    for variant in variants:
        for name in VARIANT_FILES[variant]:
            ordered[name] = None
    return tuple(ordered)


@dataclass(frozen=True)
class MarkerFile(FileDigest):
    """A profile file as prepare installed it: its bytes, and its mtime then (a later change shows)."""

    mtime_ns: int


@dataclass(frozen=True)
class PreparedMarker:
    """What ``.prepared.json`` records about a complete profile folder."""

    profile_id: str
    repo: str
    revision: str
    variants: tuple[str, ...]
    files: Mapping[str, MarkerFile]
    source: str = ""
    license: str = ""


def read_marker(profile_dir: Path) -> PreparedMarker | None:
    """Parse ``profile_dir/.prepared.json``; ``None`` when absent or not a valid marker.

    A marker that does not name exactly the allow-listed files of its variants
    is invalid: such a folder is never trusted as prepared.
    """
    marker = marker_or_problem(profile_dir)
    return marker if isinstance(marker, PreparedMarker) else None


def marker_or_problem(profile_dir: Path) -> PreparedMarker | str | None:
    """The marker of ``profile_dir``, why it cannot be trusted, or ``None`` when there is none.

    Never raises: the folder may be anyone's (a user's override), so a marker
    that is unreadable, oversized, not JSON or of the wrong shape is a reason,
    not an error.
    """
    raw = read_json_record(profile_dir / MARKER_NAME, MARKER_MAX_BYTES)
    if isinstance(raw, RecordProblem):
        return None if raw.missing else str(raw)
    return _parse_marker(raw)


def _parse_marker(raw: object) -> PreparedMarker | str:
    problem = f"{MARKER_NAME} is not a prepare-model marker"
    if not isinstance(raw, dict) or raw.get("schema") != MARKER_SCHEMA:
        return f"{problem} (schema {MARKER_SCHEMA} expected)"
    variants, files_raw = raw.get("variants"), raw.get("files")
    if not isinstance(variants, list) or not variants or not all(v in VARIANTS for v in variants):
        return f"{problem} (variants must list fp32 and/or int8)"
    if not isinstance(files_raw, dict) or not all(_is_file_entry(entry) for entry in files_raw.values()):
        return f"{problem} (files must map each path to its size, sha256 and mtime_ns)"
    files = {
        str(path): MarkerFile(entry["size"], entry["sha256"], entry["mtime_ns"]) for path, entry in files_raw.items()
    }
    if set(files) != set(files_for_variants(variants)):
        return f"{problem} (it must list exactly the files of {'+'.join(variants)})"
    if not all(isinstance(raw.get(key, ""), str) for key in ("profile_id", "repo", "revision", "source", "license")):
        return f"{problem} (profile_id, repo and revision must be text)"
    return PreparedMarker(
        profile_id=str(raw.get("profile_id", "")),
        repo=str(raw.get("repo", "")),
        revision=str(raw.get("revision", "")),
        variants=tuple(variants),
        files=files,
        source=str(raw.get("source", "")),
        license=str(raw.get("license", "")),
    )


def _is_file_entry(entry: object) -> bool:
    if not isinstance(entry, dict):
        return False
    size, sha256, mtime = entry.get("size"), entry.get("sha256"), entry.get("mtime_ns")
    return (
        type(size) is int
        and size > 0
        and type(mtime) is int
        and isinstance(sha256, str)
        and _SHA256.match(sha256) is not None
    )
