"""The bundled tiktoken cache: where it is, whether it is intact, and pointing tiktoken at it.

tiktoken downloads its encoding files on first use and has no offline switch;
it does read ``TIKTOKEN_CACHE_DIR`` (files named by the sha1 of their URL), so
a frozen app sets that variable to the bundled cache before the first
``get_encoding``. The manifest written by the warm step lists each file's
sha256, so the cache can be checked without tiktoken installed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedding_runtime.locations import SOURCE_TREE_ROOT, ProcessFacts, bundled_data_roots

CACHE_ENV = "TIKTOKEN_CACHE_DIR"
CACHE_FOLDER = "tiktoken_cache"
MANIFEST_NAME = "tiktoken-cache-manifest.json"
MANIFEST_SCHEMA = 1


@dataclass(frozen=True)
class CachedBlob:
    encoding: str
    url: str
    file: str  # sha1 of the URL, as tiktoken names it
    size: int
    sha256: str


def bundled_cache_dir(facts: ProcessFacts | None = None, source_root: Path = SOURCE_TREE_ROOT) -> Path | None:
    """The cache shipped inside a frozen or compiled app; for source runs the
    project's warmed cache when there is one (``None`` otherwise)."""
    if bundled := bundled_data_roots(facts):
        return bundled[0] / "data" / CACHE_FOLDER
    source_cache = source_root / "data" / CACHE_FOLDER
    return source_cache if (source_cache / MANIFEST_NAME).is_file() else None


def use_bundled_tiktoken_cache(
    env: MutableMapping[str, str] | None = None,
    facts: ProcessFacts | None = None,
    source_root: Path = SOURCE_TREE_ROOT,
) -> Path | None:
    """Point tiktoken at the bundled cache, unless the user chose a cache folder.

    Call before the first ``tiktoken.get_encoding``. Returns the folder tiktoken
    will use, or ``None`` when there is none (a source run without a warmed cache).
    """
    env = os.environ if env is None else env
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV])
    folder = bundled_cache_dir(facts, source_root)
    if folder is None:
        return None
    env[CACHE_ENV] = str(folder)
    return folder


def read_manifest(folder: Path) -> list[CachedBlob] | None:
    """The blobs the manifest in ``folder`` lists, or ``None`` when it is absent or invalid."""
    try:
        raw = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        if raw.get("schema") != MANIFEST_SCHEMA:
            return None
        return [
            CachedBlob(str(b["encoding"]), str(b["url"]), str(b["file"]), int(b["size"]), str(b["sha256"]))
            for b in raw["blobs"]
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cache_report(folder: Path, encodings: list[str] | None = None) -> dict[str, Any]:
    """Whether every encoding (default: every one in the manifest) is present and intact."""
    blobs = read_manifest(folder)
    if blobs is None:
        return {"folder": str(folder), "ok": False, "problem": f"no valid {MANIFEST_NAME}", "encodings": {}}
    wanted = encodings or sorted({b.encoding for b in blobs})
    status = {name: _encoding_problem(folder, name, blobs) or "ok" for name in wanted}
    return {"folder": str(folder), "ok": all(v == "ok" for v in status.values()), "problem": None, "encodings": status}


def blob_problem(folder: Path, blob: CachedBlob) -> str | None:
    """Why the cached file of ``blob`` is unusable, or ``None``."""
    path = folder / blob.file
    try:
        if path.is_symlink() or not path.is_file():
            return f"{blob.file} is missing"
        if path.stat().st_size != blob.size:
            return f"{blob.file} has {path.stat().st_size} bytes, expected {blob.size}"
        with path.open("rb") as fh:
            actual = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as err:
        return f"{blob.file} cannot be read: {err}"
    return None if actual == blob.sha256 else f"{blob.file} sha256 is {actual}, expected {blob.sha256}"


def _encoding_problem(folder: Path, encoding: str, blobs: list[CachedBlob]) -> str | None:
    mine = [b for b in blobs if b.encoding == encoding]
    if not mine:
        return "not in the manifest"
    problems = [p for b in mine if (p := blob_problem(folder, b))]
    return "; ".join(problems) or None


def manifest_json(blobs: list[CachedBlob], tiktoken_version: str) -> dict[str, Any]:
    return {
        "schema": MANIFEST_SCHEMA,
        "tiktoken_version": tiktoken_version,
        "blobs": [b.__dict__ for b in sorted(blobs, key=lambda b: (b.encoding, b.url))],
    }
