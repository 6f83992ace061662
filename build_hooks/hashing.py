"""File digests in one read pass: sha256 (LFS oid) and the git blob id.

A plain sha256 is the runtime's ``sha256_file``; this module adds the one-pass
pair that checking hub downloads needs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 4 * 2**20


@dataclass(frozen=True)
class FileDigest:
    size: int
    sha256: str
    git_blob_id: str | None = None

    def matches(self, *, sha256: str | None, git_blob_id: str | None) -> bool:
        """True when every hash the source published equals ours."""
        if sha256 is None and git_blob_id is None:
            return False
        return (sha256 is None or sha256 == self.sha256) and (git_blob_id is None or git_blob_id == self.git_blob_id)


def digest_file(path: Path, *, git_blob_id: bool = False) -> FileDigest:
    """Hash ``path`` in one pass: always its sha256, and its git blob sha1 when asked.

    The git blob id is what the hub publishes for files kept in git (not LFS);
    it costs a second hash function, so only those files pay for it.
    """
    size = path.stat().st_size
    hashers = [hashlib.sha256()]
    if git_blob_id:
        hashers.append(hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False))
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            for hasher in hashers:
                hasher.update(view[:n])
    blob_id = hashers[1].hexdigest() if git_blob_id else None
    return FileDigest(size=size, sha256=hashers[0].hexdigest(), git_blob_id=blob_id)
