"""The one sha256 helper, and the one record of a file's bytes (the build side uses both)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


def sha256_file(path: Path) -> str:
    """The hex sha256 of ``path``, read in large blocks."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True)
class FileDigest:
    """A file's size and sha256: the record every list of files holds (the profile's marker, the
    tiktoken manifest, a build's plan and manifest), extended where a list knows more."""

    size: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> FileDigest:
        """The digest of the file at ``path`` (read once)."""
        return cls(path.stat().st_size, sha256_file(path))

    def matches(self, other: FileDigest) -> bool:
        """The same bytes (size and sha256), whatever else either record holds."""
        return (self.size, self.sha256) == (other.size, other.sha256)
