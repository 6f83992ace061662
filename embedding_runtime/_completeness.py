"""Is a profile folder complete for a variant? A problem string, or None.

The checks are the seed's failure cases: missing tokenizer, missing sidecar,
zero-byte residue of an interrupted download, only the other variant present;
plus sizes (and, on request, hashes: of every file, or only of those whose
mtime changed since prepare recorded them) against ``.prepared.json`` where it
exists, and no link that leads out of the folder: a symlink, or on Windows any
reparse point that names another path (a directory junction, ``mklink /J``, needs
no administrator and is not a symlink to ``stat``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

from embedding_runtime._hashing import sha256_file
from embedding_runtime._layout import MARKER_NAME, VARIANT_FILES, marker_or_problem

# Windows: FILE_ATTRIBUTE_REPARSE_POINT, and the tag bit of reparse points that name another path
# ("name surrogates": junctions, symlinks); OneDrive's placeholders and dedup files lack it.
_FILE_ATTRIBUTE_REPARSE_POINT = 0x400
_REPARSE_TAG_NAME_SURROGATE = 0x20000000

Lstat = Callable[[Path], os.stat_result]


def leads_elsewhere(st: os.stat_result) -> bool:
    """Is this ``lstat`` result a link to another path: a symlink, or a Windows junction?"""
    if stat.S_ISLNK(st.st_mode):
        return True
    attributes = getattr(st, "st_file_attributes", 0)  # both only exist on Windows
    tag = getattr(st, "st_reparse_tag", 0)
    return bool(attributes & _FILE_ATTRIBUTE_REPARSE_POINT and tag & _REPARSE_TAG_NAME_SURROGATE)


def folder_problem(
    folder: Path, variant: str, *, verify: bool = False, rehash_touched: bool = False, lstat: Lstat = os.lstat
) -> str | None:
    """Why ``folder`` cannot serve ``variant``, or ``None`` when it can. Never raises.

    ``verify`` hashes every file; ``rehash_touched`` only those whose mtime differs
    from the marker's record (what a build's preflight needs: it hashes every copy
    it ships anyway). The folder may be a user's (an override): whatever is wrong
    with it (no permission, a file in its place, a loop, junk in the marker) is a
    reason to skip it, and the next folder is tried. ``lstat`` is the OS's (a test simulates another OS's).
    """
    try:
        return _folder_problem(folder, variant, verify=verify, rehash_touched=rehash_touched, lstat=lstat)
    except RecursionError:
        return "cannot be checked: paths nest too deeply"
    except (OSError, ValueError) as err:  # permission, not a directory, loops, names too long, bad bytes
        return f"cannot be read ({_describe(err)})"


def _folder_problem(folder: Path, variant: str, *, verify: bool, rehash_touched: bool, lstat: Lstat) -> str | None:
    try:
        st = lstat(folder)
    except FileNotFoundError:
        return "folder does not exist"
    if leads_elsewhere(st):
        return "folder is a symlink or junction (refused: it could lead anywhere)"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder (a file is in its place)"
    marker = marker_or_problem(folder)
    if isinstance(marker, str):
        return marker
    for name in VARIANT_FILES[variant]:
        if problem := _file_problem(folder, name, lstat):
            return problem
        if marker is None:
            continue
        recorded = marker.files.get(name)
        if recorded is None:
            return f"{name} is not recorded in {MARKER_NAME} (prepared for {'+'.join(marker.variants)})"
        st = (folder / name).stat()
        if st.st_size != recorded.size:
            return f"{name} has {st.st_size} bytes, {MARKER_NAME} records {recorded.size}"
        touched = rehash_touched and st.st_mtime_ns != recorded.mtime_ns
        if (verify or touched) and sha256_file(folder / name) != recorded.sha256:
            return f"{name} does not match its sha256 in {MARKER_NAME}"
    return None


def loaded_bytes_problem(folder: Path, digests: Mapping[str, str]) -> str | None:
    """Why the bytes a model was made from (``digests``: sha256 by path in ``folder``) are not the
    ones the folder's ``.prepared.json`` records, or ``None`` (also when there is no marker)."""
    marker = marker_or_problem(folder)
    if marker is None or isinstance(marker, str):
        return None if marker is None else marker
    for name, digest in digests.items():
        recorded = marker.files.get(name)
        if recorded is None or recorded.sha256 != digest:
            return f"{name} as loaded does not match its sha256 in {MARKER_NAME}"
    return None


def _describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    return f"{type(err).__name__}: {err}"


def _file_problem(folder: Path, name: str, lstat: Lstat) -> str | None:
    path = folder / name
    # Walk each component with lstat: a linked file or sub-folder is refused
    # rather than followed, so nothing outside the folder can be loaded.
    current = folder
    for part in Path(name).parts:
        current = current / part
        try:
            st = lstat(current)
        except FileNotFoundError:
            return f"{name} is missing"
        except NotADirectoryError:
            return f"{name} is missing (a file stands where its folder should be)"
        if leads_elsewhere(st):
            return f"{name} is (or sits under) a symlink or junction (refused)"
    st = lstat(path)
    if not stat.S_ISREG(st.st_mode):
        return f"{name} is not a regular file"
    if st.st_size == 0:
        return f"{name} is empty (an interrupted download?)"
    with path.open("rb"):  # readable by this user, or skipped now rather than failing the load later
        pass
    return None
