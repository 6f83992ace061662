"""Remembered canaries: a folder proven once is not proven in full at every launch.

At the pinned model's size the canary (``_probe``) is most of an app's time to
its first vector. Once a model has passed it, the runtime notes the proof in the
app's own data folder (``<app data>/.embedding-runtime/proven.json``) under a key
made of everything the verdict depends on: the sha256 of every file the model was
made from, as the tokenizer and the session were built from those very bytes
(``_model_bytes``), the probe record, the contract, the session options, the
onnxruntime and tokenizers versions and the CPU. A later launch with the same key
re-proves the model with its shortest probe text instead of all of them.

So no change to the files, at any moment, can leave a proof standing for other
bytes: a same-size rewrite with its times set back (a backup restore; on
Windows, where stat has no change time), or files swapped while onnxruntime was
loading the right ones, give other hashes, and the whole canary runs again.

What it defends against: accidents, partial writes, wrong or noisy models,
restores that keep sizes and times, and races. What no local check can defend
against: someone who can write the user's app data can write this note too, as
they can any record kept there (a forged note gets a model that passes the one
probe text served): that is out of its reach, and of any local check's.

The note is a cache and nothing else: missing, unreadable, damaged or not
writable (a read-only HOME, a full disk) is the same as empty, and the full
canary runs. It is written whole to a temp name and renamed, so two launches
at once cannot damage it; the later one wins, and at worst the other's proof
is made again next time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from embedding_runtime._records import read_json_record

logger = logging.getLogger(__name__)

MEMO_FOLDER = ".embedding-runtime"
MEMO_FILE = "proven.json"
MEMO_SCHEMA = 1
_KEPT = 16  # proofs remembered (folders x variants x CPUs an app meets); the oldest is dropped
_MAX_BYTES = 64 * 1024


def memo_path(app_data: Path) -> Path:
    """Where the proofs of the app whose data folder is ``app_data`` are noted."""
    return app_data / MEMO_FOLDER / MEMO_FILE


def proof_key(digests: Mapping[str, str], facts: Mapping[str, object]) -> str | None:
    """The key of a proof of the bytes whose sha256 ``digests`` holds (by path in the folder), under
    ``facts`` (everything else the verdict depends on, JSON-serialisable); ``None`` when ``facts``
    cannot be written down (nothing is remembered)."""
    try:
        text = json.dumps({"files": dict(digests), **facts}, sort_keys=True, default=str)
    except (ValueError, TypeError):
        return None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_proven(path: Path, key: str) -> bool:
    """Was the proof ``key`` noted at ``path``? Anything unreadable counts as no."""
    return key in _proven(path)


def remember(path: Path, key: str) -> None:
    """Note the proof ``key`` at ``path`` (most recent last). Never raises: a note that cannot be
    written only costs the next launch a full canary."""
    kept = [*[k for k in _proven(path) if k != key][-(_KEPT - 1) :], key]
    data = json.dumps({"schema": MEMO_SCHEMA, "proven": kept}, indent=1).encode("ascii")
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        tmp.replace(path)
        tmp = None
    except OSError as err:  # read-only, full, another user's, a file where the folder should be
        logger.debug("the canary's proof is not remembered: %s", err)
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _proven(path: Path) -> list[str]:
    document = read_json_record(path, _MAX_BYTES)
    if not isinstance(document, dict) or document.get("schema") != MEMO_SCHEMA:
        return []
    proven = document.get("proven")
    if not isinstance(proven, list):
        return []
    return [k for k in proven if isinstance(k, str)]
