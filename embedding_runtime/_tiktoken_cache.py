"""The bundled tiktoken cache: where it is, whether it is intact, and pointing tiktoken at it.

tiktoken downloads its encoding files on first use and has no offline switch;
it does read ``TIKTOKEN_CACHE_DIR`` (files named by the sha1 of their URL), so
a frozen app sets that variable to the bundled cache before the first
``get_encoding``. The manifest written by the warm step lists each file's
sha256, so the cache can be checked without tiktoken installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedding_runtime._artifact import DATA_FOLDER, TIKTOKEN_FOLDER
from embedding_runtime._hashing import FileDigest, sha256_file
from embedding_runtime._locations import ProcessFacts, bundled_data_roots, source_folder
from embedding_runtime._records import read_json_record

CACHE_ENV = "TIKTOKEN_CACHE_DIR"
TIKTOKEN_MANIFEST_NAME = "tiktoken-cache-manifest.json"
TIKTOKEN_MANIFEST_SCHEMA = 1
_MANIFEST_MAX_BYTES = 1024 * 1024  # a real one lists a few encodings in under 2 KiB


@dataclass(frozen=True)
class CachedBlob(FileDigest):
    """One encoding's file in the cache: its bytes, its encoding, and the URL tiktoken names it after."""

    encoding: str
    url: str
    file: str  # sha1 of the URL, as tiktoken names it


def bundled_cache_dir(facts: ProcessFacts | None = None, source_root: Path | None = None) -> Path | None:
    """The cache shipped inside a frozen or compiled app; for source runs the warmed cache
    of the app's project (``source_root``) when there is one (``None`` otherwise)."""
    if bundled := bundled_data_roots(facts):
        return bundled[0] / DATA_FOLDER / TIKTOKEN_FOLDER
    if source_root is None:
        return None
    source_cache = source_folder(source_root, "tiktoken-cache", f"{DATA_FOLDER}/{TIKTOKEN_FOLDER}")
    return source_cache if (source_cache / TIKTOKEN_MANIFEST_NAME).is_file() else None


def use_bundled_tiktoken_cache(
    env: MutableMapping[str, str] | None = None,
    facts: ProcessFacts | None = None,
    source_root: Path | None = None,
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


def read_tiktoken_manifest(folder: Path) -> list[CachedBlob] | None:
    """The blobs the manifest in ``folder`` lists, or ``None`` when it is absent or invalid."""
    raw = read_json_record(folder / TIKTOKEN_MANIFEST_NAME, _MANIFEST_MAX_BYTES)
    try:
        if not isinstance(raw, dict) or raw.get("schema") != TIKTOKEN_MANIFEST_SCHEMA:
            return None
        return [
            CachedBlob(
                size=int(b["size"]),
                sha256=str(b["sha256"]),
                encoding=str(b["encoding"]),
                url=str(b["url"]),
                file=str(b["file"]),
            )
            for b in raw["blobs"]
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def encoding_problems(folder: Path, encodings: Iterable[str]) -> dict[str, list[str]]:
    """For each encoding, why the cache in ``folder`` cannot serve it (an empty list: intact).

    The one check of a tiktoken cache: the warm step, the builds' preflight,
    verify-artifact and the app's doctor report all use it.
    """
    blobs = read_tiktoken_manifest(folder)
    if blobs is None:
        return {name: [f"{folder} has no valid {TIKTOKEN_MANIFEST_NAME}"] for name in encodings}
    return _blob_problems(folder, encodings, blobs)


def _blob_problems(folder: Path, encodings: Iterable[str], blobs: list[CachedBlob]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for name in encodings:
        mine = [b for b in blobs if b.encoding == name]
        problems[name] = [p for b in mine if (p := blob_problem(folder, b))] if mine else ["not in the manifest"]
    return problems


def cache_report(folder: Path, encodings: list[str] | None = None) -> dict[str, Any]:
    """Whether every encoding (default: every one in the manifest) is present and intact."""
    blobs = read_tiktoken_manifest(folder)
    if blobs is None:
        return {"folder": str(folder), "ok": False, "problem": f"no valid {TIKTOKEN_MANIFEST_NAME}", "encodings": {}}
    wanted = encodings or sorted({b.encoding for b in blobs})
    status = {name: "; ".join(p) or "ok" for name, p in _blob_problems(folder, wanted, blobs).items()}
    return {"folder": str(folder), "ok": all(v == "ok" for v in status.values()), "problem": None, "encodings": status}


def blob_problem(folder: Path, blob: CachedBlob) -> str | None:
    """Why the cached file of ``blob`` is unusable, or ``None``."""
    path = folder / blob.file
    try:
        if path.is_symlink() or not path.is_file():
            return f"{blob.file} is missing"
        if path.stat().st_size != blob.size:
            return f"{blob.file} has {path.stat().st_size} bytes, expected {blob.size}"
        actual = sha256_file(path)
    except OSError as err:
        return f"{blob.file} cannot be read: {err}"
    return None if actual == blob.sha256 else f"{blob.file} sha256 is {actual}, expected {blob.sha256}"
