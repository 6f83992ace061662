"""Crash-safe file system primitives: atomic writes, renames that survive Windows."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

# Windows refuses to rename a folder while another process (an antivirus
# scanner, an indexer) holds a handle in it; those handles go away quickly.
_WINDOWS_RENAME_ATTEMPTS = 10
_WINDOWS_RENAME_PAUSE = 0.2
SHARED_FILE_MODE = 0o644


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; these files ship inside artifacts that other users run.
        Path(tmp).chmod(SHARED_FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        replace(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_files(files: Mapping[Path, bytes]) -> None:
    """:func:`atomic_write_bytes` each file, in the mapping's order (the one a reader trusts last)."""
    for path, data in files.items():
        atomic_write_bytes(path, data)


def remove_all(paths: Iterable[Path]) -> None:
    """Remove each path, a folder with everything in it; what is already gone is no error."""
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    if sys.platform == "win32":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rename(
    src: Path,
    dst: Path,
    *,
    platform: str = sys.platform,
    _rename: Callable[[Path, Path], None] = os.rename,
    _sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Rename ``src`` to a ``dst`` that does not exist, retrying transient Windows locks."""
    _retrying_windows_locks(lambda: _rename(src, dst), platform, _sleep)


def replace(
    src: Path,
    dst: Path,
    *,
    platform: str = sys.platform,
    _replace: Callable[[Path, Path], None] = os.replace,
    _sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Move ``src`` over ``dst`` in one step. Windows refuses ("Access is denied") while another
    process has ``dst`` open, since Python opens files without delete sharing: a reader (another
    step, a scanner) is done in moments, so that is retried like a locked rename."""
    _retrying_windows_locks(lambda: _replace(src, dst), platform, _sleep)


def _retrying_windows_locks(operation: Callable[[], None], platform: str, sleep: Callable[[float], None]) -> None:
    attempts = _WINDOWS_RENAME_ATTEMPTS if platform == "win32" else 1
    for attempt in range(1, attempts + 1):
        try:
            operation()
            return
        except PermissionError:
            if attempt == attempts:
                raise
            sleep(_WINDOWS_RENAME_PAUSE)


def remove_tree(path: Path) -> None:
    """Delete ``path`` (file or folder) if it exists, including read-only files."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=_make_writable_and_retry)
        else:
            shutil.rmtree(path, onerror=_make_writable_and_retry)


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (no extra disk), copying where links are not possible."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _make_writable_and_retry(func: Callable[[str], object], path: str, _exc: object) -> None:
    Path(path).chmod(0o700)
    func(path)


def folder_bytes(folder: Path) -> int:
    """The bytes of every file under ``folder`` (an artifact's size): a symlink counts as a link (as an
    archive holds it), not as a second copy of its target."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
