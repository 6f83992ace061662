"""What an artifact folder holds, as the file system says, without following a single link.

Every path is one :class:`Entry`: a regular file, a symlink (with what it stands for:
the regular file inside the artifact it leads to, or why it leads to none: outside
the artifact, nowhere, a loop, a folder), or something else (a FIFO, a socket, a
device: nothing verify may open). Folders are walked, never listed as entries, and
a link to a folder is never walked through. Nothing here raises for what the folder
holds: a path that cannot be looked at is an entry with its problem.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["file", "symlink", "other"]


@dataclass(frozen=True)
class Entry:
    """One path of an artifact (``rel``: POSIX, inside the artifact folder)."""

    rel: str
    kind: Kind
    size: int  # of the file itself (a link: of its text)
    link: str | None = None  # what a symlink says, as written
    resolved: str | None = None  # a symlink: the artifact's regular file it stands for
    problem: str | None = None  # why the entry cannot be read as a regular file of the artifact

    def path(self, dist: Path) -> Path:
        return dist / self.rel


def list_artifact(dist: Path) -> dict[str, Entry]:
    """Every path under ``dist`` (sorted), each with what it is."""
    found: dict[str, Entry] = {}
    real_dist = os.path.realpath(dist)
    pending = [dist]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as scan:
                children = sorted(scan, key=lambda e: e.name)
        except OSError as err:
            rel = Path(folder).relative_to(dist).as_posix()
            found[rel] = Entry(rel, "other", 0, problem=f"cannot be listed ({err.strerror or err})")
            continue
        for child in children:
            rel = Path(child.path).relative_to(dist).as_posix()
            try:
                st = child.stat(follow_symlinks=False)
            except OSError as err:
                found[rel] = Entry(rel, "other", 0, problem=f"cannot be looked at ({err.strerror or err})")
                continue
            if stat.S_ISLNK(st.st_mode):
                found[rel] = _symlink(Path(child.path), rel, st.st_size, dist, real_dist)
            elif stat.S_ISDIR(st.st_mode):
                pending.append(Path(child.path))
            elif stat.S_ISREG(st.st_mode):
                found[rel] = Entry(rel, "file", st.st_size)
            else:  # a FIFO would block whoever opens it
                found[rel] = Entry(rel, "other", st.st_size, problem="is not a regular file (a pipe, socket or device)")
    return dict(sorted(found.items()))


def _symlink(path: Path, rel: str, size: int, dist: Path, real_dist: str) -> Entry:
    try:
        link = str(path.readlink())
    except OSError as err:
        return Entry(rel, "symlink", size, problem=f"is a symlink that cannot be read ({err.strerror or err})")
    try:
        target = os.path.realpath(path, strict=True)  # a loop is ELOOP, a dangling link ENOENT
        st = Path(target).stat()
    except OSError as err:
        if err.errno == errno.ELOOP or getattr(err, "winerror", None) == 1921:  # Windows: CANT_RESOLVE_FILENAME
            return Entry(rel, "symlink", size, link, problem=f"is a symlink loop ({link})")
        return Entry(rel, "symlink", size, link, problem=f"is a symlink to nothing ({link})")
    if os.path.commonpath([real_dist, target]) != real_dist:
        return Entry(rel, "symlink", size, link, problem=f"is a symlink leading outside the artifact ({link})")
    if not stat.S_ISREG(st.st_mode):
        return Entry(rel, "symlink", size, link, problem=f"is a symlink to something not a regular file ({link})")
    return Entry(rel, "symlink", size, link, resolved=Path(os.path.relpath(target, real_dist)).as_posix())
