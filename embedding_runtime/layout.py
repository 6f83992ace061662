"""The on-disk contract of a profile folder, shared by the build and the runtime.

A profile folder holds the tokenizer and one or both ONNX variants, plus the
``.prepared.json`` marker written last by the prepare step. The marker names
the upstream repo for provenance only: the runtime keys everything on the
profile id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def files_for_variants(variants: Iterable[str]) -> tuple[str, ...]:
    """Return the allow-listed files of ``variants``, tokenizer first, without duplicates."""
    ordered: dict[str, None] = {}
    for variant in variants:
        for name in VARIANT_FILES[variant]:
            ordered[name] = None
    return tuple(ordered)


@dataclass(frozen=True)
class MarkerFile:
    size: int
    sha256: str
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

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": MARKER_SCHEMA,
            "profile_id": self.profile_id,
            "repo": self.repo,
            "revision": self.revision,
            "variants": list(self.variants),
            "source": self.source,
            "license": self.license,
            "files": {
                path: {"size": f.size, "sha256": f.sha256, "mtime_ns": f.mtime_ns}
                for path, f in sorted(self.files.items())
            },
        }


def read_marker(profile_dir: Path) -> PreparedMarker | None:
    """Parse ``profile_dir/.prepared.json``; ``None`` when absent or not a valid marker.

    A marker that does not name exactly the allow-listed files of its variants
    is invalid: such a folder is never trusted as prepared.
    """
    try:
        raw = json.loads((profile_dir / MARKER_NAME).read_text(encoding="utf-8"))
        return _parse_marker(raw)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _parse_marker(raw: dict[str, Any]) -> PreparedMarker | None:
    if raw.get("schema") != MARKER_SCHEMA:
        return None
    variants = tuple(raw["variants"])
    if not variants or any(v not in VARIANT_FILES for v in variants):
        return None
    files = {
        str(path): MarkerFile(int(entry["size"]), str(entry["sha256"]), int(entry["mtime_ns"]))
        for path, entry in raw["files"].items()
    }
    if set(files) != set(files_for_variants(variants)):
        return None
    if any(not _SHA256.match(f.sha256) or f.size <= 0 for f in files.values()):
        return None
    return PreparedMarker(
        profile_id=str(raw["profile_id"]),
        repo=str(raw["repo"]),
        revision=str(raw["revision"]),
        variants=variants,
        files=files,
        source=str(raw.get("source", "")),
        license=str(raw.get("license", "")),
    )
