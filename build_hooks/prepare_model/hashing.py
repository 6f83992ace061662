"""File digests in one read pass: sha256 (LFS oid) and the git blob id.

A plain sha256 is the runtime's ``sha256_file``; this module adds the one-pass
pair that checking hub downloads needs, fed from a file or from a download as
its bytes arrive.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from embedding_runtime.build_api import FileDigest

_CHUNK = 4 * 2**20


@dataclass(frozen=True)
class DownloadDigest(FileDigest):
    """A file's digest as checking a hub download needs it: with the git blob id, when asked for."""

    git_blob_id: str | None = None

    def agrees_with(self, *, sha256: str | None, git_blob_id: str | None) -> bool:
        """True when every hash the source published equals ours."""
        if sha256 is None and git_blob_id is None:
            return False
        return (sha256 is None or sha256 == self.sha256) and (git_blob_id is None or git_blob_id == self.git_blob_id)


class Digester:
    """The digests of a byte stream fed in pieces: sha256, and the git blob id when asked.

    The git blob id hashes a header with the total size first, so ``size`` must be
    known up front (the hub publishes it with the id).
    """

    size: int
    _sha256: hashlib._Hash
    _sha1: hashlib._Hash | None

    def __init__(self, *, git_blob_size: int | None = None) -> None:
        self._git_blob_size = git_blob_size
        self.reset()

    def reset(self) -> None:
        """Start over, as for an empty stream."""
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._sha1 = None
        if self._git_blob_size is not None:
            self._sha1 = hashlib.sha1(f"blob {self._git_blob_size}\0".encode(), usedforsecurity=False)

    def update(self, data: bytes | memoryview) -> None:
        self._sha256.update(data)
        if self._sha1 is not None:
            self._sha1.update(data)
        self.size += len(data)

    def result(self) -> DownloadDigest:
        blob_id = self._sha1.hexdigest() if self._sha1 is not None and self.size == self._git_blob_size else None
        return DownloadDigest(size=self.size, sha256=self._sha256.hexdigest(), git_blob_id=blob_id)


def digest_file(path: Path, *, git_blob_id: bool = False) -> DownloadDigest:
    """Hash ``path`` in one pass: always its sha256, and its git blob sha1 when asked.

    The git blob id is what the hub publishes for files kept in git (not LFS);
    it costs a second hash function, so only those files pay for it.
    """
    digester = Digester(git_blob_size=path.stat().st_size if git_blob_id else None)
    feed(digester, path)
    return digester.result()


def feed(digester: Digester, path: Path) -> None:
    """Pass the bytes of ``path`` through ``digester``."""
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            digester.update(view[:n])
