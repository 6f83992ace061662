"""File digests in one read pass: sha256 (LFS oid) and the git blob id."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 4 * 2**20


@dataclass(frozen=True)
class FileDigest:
    size: int
    sha256: str
    git_blob_id: str

    def matches(self, *, sha256: str | None, git_blob_id: str | None) -> bool:
        """True when every hash the source published equals ours."""
        if sha256 is None and git_blob_id is None:
            return False
        return (sha256 is None or sha256 == self.sha256) and (
            git_blob_id is None or git_blob_id == self.git_blob_id
        )


def digest_file(path: Path) -> FileDigest:
    """Hash ``path`` once for both the sha256 and the git blob sha1 the hub publishes."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            sha256.update(view[:n])
            blob.update(view[:n])
    return FileDigest(size=size, sha256=sha256.hexdigest(), git_blob_id=blob.hexdigest())


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of ``path``."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
