"""Is a profile folder complete for a variant? A problem string, or None.

The checks are the seed's failure cases: missing tokenizer, missing sidecar,
zero-byte residue of an interrupted download, only the other variant present;
plus sizes (and, on request, hashes) against ``.prepared.json`` where it exists,
and no symlink or path that leads out of the folder.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from embedding_runtime.layout import MARKER_NAME, VARIANT_FILES, read_marker


def folder_problem(folder: Path, variant: str, *, verify: bool = False) -> str | None:
    """Why ``folder`` cannot serve ``variant``, or ``None`` when it can."""
    if not folder.is_dir():
        return "folder does not exist"
    if folder.is_symlink():
        return "folder is a symlink (refused: it could lead anywhere)"
    marker = read_marker(folder)
    if (folder / MARKER_NAME).exists() and marker is None:
        return f"{MARKER_NAME} is unreadable or invalid"
    for name in VARIANT_FILES[variant]:
        if problem := _file_problem(folder, name):
            return problem
        if marker is None:
            continue
        recorded = marker.files.get(name)
        if recorded is None:
            return f"{name} is not recorded in {MARKER_NAME} (prepared for {'+'.join(marker.variants)})"
        size = (folder / name).stat().st_size
        if size != recorded.size:
            return f"{name} has {size} bytes, {MARKER_NAME} records {recorded.size}"
        if verify and _sha256(folder / name) != recorded.sha256:
            return f"{name} does not match its sha256 in {MARKER_NAME}"
    return None


def _file_problem(folder: Path, name: str) -> str | None:
    path = folder / name
    # Walk each component with lstat: a symlinked file or sub-folder is refused
    # rather than followed, so nothing outside the folder can be loaded.
    current = folder
    for part in Path(name).parts:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return f"{name} is missing"
        if stat.S_ISLNK(st.st_mode):
            return f"{name} is (or sits under) a symlink (refused)"
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        return f"{name} is not a regular file"
    if st.st_size == 0:
        return f"{name} is empty (an interrupted download?)"
    return None


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
