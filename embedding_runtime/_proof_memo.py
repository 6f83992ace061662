"""Remembered canaries: a folder proven once is not proven in full at every launch.

At the pinned model's size the canary (``_probe``) is most of an app's time to
its first vector. Once a folder has passed it, the runtime notes the proof in
the app's own data folder (``<app data>/.embedding-runtime/proven.json``) under
a key made of everything the verdict depends on: each file the variant loads
(and the marker) as the OS describes it (device, inode, size, modified and
changed times: a write moves a file's change time, which no program sets back),
the folder's real path, the probe record, the contract, the session options,
the onnxruntime and tokenizers versions and the CPU. A later launch with the
same key re-proves the folder with its shortest probe text instead of all of
them: weights that no longer compute are still caught, while a changed,
replaced or re-linked file (a new override, a re-installed app, a repair)
changes the key and gets the whole canary again. (Windows' stat has no change
time: there a same-size rewrite that also sets the modified time back keeps
the key, and the one probe text is what stands in its way.)

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
from collections.abc import Iterable, Mapping
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


def proof_key(folder: Path, files: Iterable[str], facts: Mapping[str, object]) -> str | None:
    """The key of a proof of ``folder`` loading ``files`` under ``facts`` (everything else the verdict
    depends on, JSON-serialisable); ``None`` when a file cannot be described (nothing is remembered)."""
    try:
        described = {}
        for name in files:
            path = folder / name
            if not os.path.lexists(path):  # an optional file (an int8 without a sidecar)
                continue
            st = path.stat()
            described[name] = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        document = {"folder": os.path.realpath(folder), "files": described, **facts}
        text = json.dumps(document, sort_keys=True, default=str)
    except (OSError, ValueError, TypeError):
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
