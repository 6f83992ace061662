"""Downloads that outlive a killed run: one partial file per wanted file, resumed by the next run.

Each partial ``<path>.part`` in the download folder has a record ``<path>.part.json``
naming what it is a prefix of: repo, pinned commit, file, size and published hash.
A run resumes a partial only when the record names exactly the file it wants now;
any other partial, record or leftover in the download folder is removed
(:func:`sweep_download_dir`), so a kill leaves at most one partial per file and
never a pile. The bytes already on disk are hashed once when a partial is
reopened and the rest as they arrive: every byte is read from disk and hashed
once, and the size and hash are checked at the end whatever happened between.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from build_hooks import fsutil
from build_hooks.errors import OutputLocationError
from build_hooks.prepare_model.hashing import Digester, DownloadDigest, feed
from build_hooks.prepare_model.sources import RemoteFile
from embedding_runtime.build_api import RecordProblem, read_json_record

PART_SUFFIX = ".part"
RECORD_SUFFIX = ".part.json"


class PartialFile:
    """The bytes of one remote file received so far, hashed as they are written.

    Sources append with ``write`` from ``offset`` on, or ``restart`` from byte 0.
    """

    def __init__(self, path: Path, record: Path, digester: Digester) -> None:
        self.path = path
        self.record = record  # what the partial is a prefix of: pin, file, size, hash
        self.resumed = digester.size  # bytes found on disk when the partial was opened
        self._digester = digester
        with _writing(path):
            self._fh = path.open("ab")

    @classmethod
    def open(cls, folder: Path, remote: RemoteFile, pin: str) -> PartialFile:
        """The partial of ``remote`` in ``folder``: resumed when its record names the same pin and file."""
        path = folder / (remote.path + PART_SUFFIX)
        record = folder / (remote.path + RECORD_SUFFIX)
        wanted = _record(remote, pin)
        digester = Digester(git_blob_size=remote.size if remote.sha256 is None else None)
        if _read_json(record) == wanted and path.is_file() and path.stat().st_size <= remote.size:
            feed(digester, path)
        else:
            path.unlink(missing_ok=True)
            with _writing(record):
                fsutil.atomic_write_bytes(record, json.dumps(wanted, sort_keys=True).encode())
        return cls(path, record, digester)

    @property
    def offset(self) -> int:
        """How many bytes of the file are here: the next byte a source must deliver."""
        return self._digester.size

    def write(self, data: bytes | memoryview) -> int:
        with _writing(self.path):
            written = self._fh.write(data)
        self._digester.update(data)
        return written

    def restart(self) -> None:
        """Drop what is here and start from byte 0 (a server that ignored the Range sends it all)."""
        with _writing(self.path):
            self._fh.truncate(0)
        self._digester.reset()

    def finish(self) -> DownloadDigest:
        """Close the file and return the digest of everything in it."""
        with _writing(self.path):
            self._fh.close()
        return self._digester.result()

    def discard(self) -> None:
        """Delete the partial and its record (its bytes are not the published ones)."""
        self._fh.close()
        self.path.unlink(missing_ok=True)
        self.record.unlink(missing_ok=True)


def sweep_download_dir(folder: Path, keep: Iterable[str]) -> list[Path]:
    """Remove everything in ``folder`` but the partials (and records) of the files in ``keep``.

    Returns what was removed: partials of another pin or of files no longer
    wanted, temp files of killed copies, anything a former version left.
    """
    kept = {name + suffix for name in keep for suffix in (PART_SUFFIX, RECORD_SUFFIX)}
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in sorted(folder.rglob("*"), reverse=True):  # children before their folders
        relative = path.relative_to(folder).as_posix()
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        elif relative not in kept:
            fsutil.remove_tree(path)
            removed.append(path)
    return removed


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    # A full or read-only disk is the user's to fix, not a failure of the source to retry.
    try:
        yield
    except OSError as err:
        raise OutputLocationError(
            f"cannot write {path} ({err.strerror or err}): free some space or pass another --output-root"
        ) from err


def _record(remote: RemoteFile, pin: str) -> dict[str, Any]:
    return {
        "pin": pin,
        "path": remote.path,
        "size": remote.size,
        "sha256": remote.sha256,
        "git_blob_id": remote.git_blob_id,
    }


def _read_json(path: Path) -> object:
    raw = read_json_record(path, 64 * 1024)  # a record is a few hundred bytes
    return None if isinstance(raw, RecordProblem) else raw
