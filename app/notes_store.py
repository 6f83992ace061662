"""The launcher's notes: one JSON file that every command reads and writes, and that never loses a note.

- Writers take turns (a file lock beside the notes). Each write reads what is on disk again under
  the lock and adds to it, so two windows adding at once both keep their note.
- A write goes to a temp file in the same folder and replaces the notes in one step. On Windows,
  where a reader holding the file makes the replace fail, it is retried for a while. Whatever
  fails, the temp file is removed and the notes on disk stay as they were; one left by a writer
  that was killed (or Ctrl-C'd) mid-write is removed by the next write.
- A notes file that cannot be read as notes is never overwritten or added to: it is moved aside
  under a dated name, the user is told where in one line, and the app starts with no notes.
- A note whose stored vector cannot be used (another model's stamp, damaged bytes) is still a
  note: the caller re-embeds its text once and saves the new vector (:meth:`NotesStore.refresh`).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

# A writer waits this long for another one; past that, something is stuck and the user is told.
LOCK_TIMEOUT_SECONDS = 60.0
# Windows: how long a replace is retried while another program reads the notes (W7).
REPLACE_RETRY_SECONDS = 10.0
_NOTE_KEYS = ("text", "stamp", "vector")

Say = Callable[[str], None]
Replace = Callable[[str, str], None]


_FIRST_PAUSE = 0.02  # Windows: the first wait for a reader to let go; doubled up to 0.5 s


class NotesError(Exception):
    """One line for the user: what went wrong with the notes and what to do. Nothing was lost."""


@dataclass(frozen=True)
class Note:
    text: str
    stamp: str  # the model stamp the vector was made with
    vector: str  # packed (embedding_runtime.pack_vector)

    def to_json(self) -> dict[str, str]:
        return {"text": self.text, "stamp": self.stamp, "vector": self.vector}


class NotesStore:
    """The notes in ``path`` (see the module docstring). ``say`` prints a line for the user."""

    def __init__(
        self,
        path: Path,
        *,
        say: Say,
        replace: Replace = os.replace,
        platform: str = sys.platform,
        patience: float = REPLACE_RETRY_SECONDS,
    ) -> None:
        self.path = path
        self._say = say
        self._replace = replace  # the OS's; a test gives Windows' behaviour with a reader holding the file
        self._platform = platform
        self._patience = patience  # Windows: how long a replace is retried while a reader holds the file

    def notes(self) -> list[Note]:
        """The notes now on disk (none yet: an empty list). A damaged file is moved aside first."""
        notes = _parse(self._read())
        if isinstance(notes, str):
            with self._locked():
                return self._current()  # again under the lock: another writer may have just fixed it
        return notes

    def add(self, note: Note) -> None:
        """Add ``note`` to what is on disk now."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise NotesError(_why_not_saved(err, self.path)) from None
        with self._locked():
            self._write([*self._current(), note])

    def refresh(self, renewed: Mapping[Note, Note]) -> None:
        """Replace each note that is still on disk as a key of ``renewed`` by its value (a new vector)."""
        if not renewed:
            return
        with self._locked():
            current = self._current()
            updated = [renewed.get(note, note) for note in current]
            if updated != current:
                self._write(updated)

    # -- internals ------------------------------------------------------------

    def _locked(self) -> _Turn:
        return _Turn(FileLock(self.path.with_name(self.path.name + ".lock"), timeout=LOCK_TIMEOUT_SECONDS), self.path)

    def _read(self) -> bytes | str | None:
        """The file's bytes; ``None`` when there is none; why, when it is not a file one can read
        as notes (a FIFO would block: only a regular file is read)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            return "a folder, not a file"
        except OSError as err:
            raise NotesError(f"cannot read {self.path} ({err.strerror}); check the folder's permissions") from None
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return "not a regular file"
            return fh.read()

    def _current(self) -> list[Note]:
        """What is on disk, read under the lock; a damaged file is moved aside and counts as none."""
        notes = _parse(self._read())
        if isinstance(notes, str):
            aside = self._set_aside()
            self._say(
                f"{self.path} could not be read as notes ({notes}); it was moved to {aside}, and the notes start empty"
            )
            return []
        return notes

    def _set_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(1000):
            aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}" + (f"-{n}" if n else ""))
            if aside.exists():
                continue
            try:
                return self.path.rename(aside)  # under the lock: nobody else names one now
            except OSError as err:
                why = err.strerror or type(err).__name__
                break
        else:
            why = "too many damaged copies beside it"
        raise NotesError(f"{self.path} is damaged and cannot be moved aside ({why}); move it away and try again")

    def _write(self, notes: Iterable[Note]) -> None:
        data = json.dumps([n.to_json() for n in notes], ensure_ascii=False).encode("utf-8")
        # Under the lock, any temp file here is an earlier writer's that was killed mid-write.
        for orphan in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with suppress(OSError):
                orphan.unlink()
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            self._replace_retrying(tmp)
        except BaseException as err:
            with suppress(OSError):  # cleaning up must not hide why the write failed
                Path(tmp).unlink()
            if isinstance(err, PermissionError) and self._platform == "win32":
                raise NotesError(
                    f"another program keeps {self.path} open, so Windows refuses to replace it; "
                    "close that program and try again (the notes were not changed)"
                ) from None
            if isinstance(err, OSError):
                raise NotesError(_why_not_saved(err, self.path)) from None
            raise

    def _replace_retrying(self, tmp: str) -> None:
        deadline = time.monotonic() + self._patience
        pause = _FIRST_PAUSE
        while True:
            try:
                self._replace(tmp, str(self.path))
                return
            except PermissionError:
                # Windows refuses to replace a file another program has open ("Access is denied");
                # elsewhere a PermissionError is the folder's, and waiting changes nothing.
                if self._platform != "win32" or time.monotonic() >= deadline:
                    raise
                if pause == _FIRST_PAUSE:  # once: the user sees why the app is waiting
                    self._say(
                        f"{self.path.name} is open in another program; saving as soon as it lets go "
                        f"(up to {self._patience:.0f} s)"
                    )
                time.sleep(pause)
                pause = min(pause * 2, 0.5)


class _Turn:
    """The lock, with a line for the user when another writer holds it too long."""

    def __init__(self, lock: FileLock, path: Path) -> None:
        self._lock, self._path = lock, path

    def __enter__(self) -> None:
        try:
            self._lock.acquire()
        except Timeout:
            raise NotesError(
                f"another local-notes has been writing {self._path} for {LOCK_TIMEOUT_SECONDS:.0f} s; "
                "close it or try again"
            ) from None
        except OSError as err:
            raise NotesError(_why_not_saved(err, self._path)) from None

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _parse(data: bytes | str | None) -> list[Note] | str:
    """The notes in ``data``, or why it is not a notes file."""
    if data is None:
        return []
    if isinstance(data, str):
        return data
    try:
        raw = json.loads(data.decode("utf-8"))
    except RecursionError:
        return "nested too deeply"
    except (UnicodeDecodeError, ValueError) as err:
        return f"not JSON: {type(err).__name__}"
    if not isinstance(raw, list):
        return f"a JSON {type(raw).__name__}, not a list of notes"
    notes = []
    for position, entry in enumerate(raw):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in _NOTE_KEYS):
            return f"entry {position} is not a note with text, stamp and vector"
        notes.append(Note(entry["text"], entry["stamp"], entry["vector"]))
    return notes


def _why_not_saved(err: OSError, path: Path) -> str:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the disk holding {path.parent}; the notes were not changed"
    if isinstance(err, PermissionError):
        return f"cannot write in {path.parent} ({err.strerror}); check the folder's permissions"
    return f"cannot write {path} ({err.strerror or type(err).__name__}); the notes were not changed"
