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
  note: its text is embedded again once and the new vector saved (:meth:`NotesStore.renew`), a few
  hundred at a time, saved every 10 to 30 s, so a Ctrl-C (which ends the program at once) loses only
  what was made since; the progress shows on stderr when that is a terminal. Those saves append the
  new vectors to ``notes.json.renewed`` (a line each, naming the note it replaces by a hash), which
  every read applies; the rewrite at the end folds them into notes.json and removes it. So 100,000
  notes made again write each vector about twice, not the whole file every 30 s. A line cut short
  by a kill, or one that does not parse, is ignored: it costs only that vector, made again next time.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from filelock import FileLock, Timeout

# Notes embedded again: this many at a time; saved once at least SAVE_EVERY_MIN seconds have passed
# and the last save took at most a twentieth of the time since, and at the latest SAVE_EVERY_MAX apart
# (appended to the journal: about 2 KiB a note at 768 dimensions).
RENEW_CHUNK = 256
JOURNAL_SUFFIX = ".renewed"
SAVE_EVERY_MIN, SAVE_EVERY_MAX = 10.0, 30.0
# A writer waits this long for another one; past that, something is stuck and the user is told.
LOCK_TIMEOUT_SECONDS = 60.0
# Windows: how long a replace is retried while another program reads the notes (W7).
REPLACE_RETRY_SECONDS = 10.0
_NOTE_KEYS = ("text", "stamp", "vector")

Say = Callable[[str], None]
Embed = Callable[[list[str]], Iterable[Any]]  # texts -> one vector each
Stamped = Callable[[Any], tuple[str, str]]  # a vector -> (the model's stamp, the vector packed)
Replace = Callable[[str, str], None]
Opener = Callable[[str, int], int]
# Windows' "the process cannot access the file because another process is using it" (a reader that
# opened notes.json sharing nothing) and "... has locked a portion of the file": worth waiting for.
_SHARING_VIOLATIONS = (32, 33)


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
        opener: Opener | None = None,
        platform: str = sys.platform,
        patience: float = REPLACE_RETRY_SECONDS,
    ) -> None:
        self.path = path
        self._say = say
        # The OS's; a test gives Windows' behaviour with another program holding the file.
        self._replace, self._open = replace, opener or (open_sharing if platform == "win32" else os.open)
        self._platform = platform
        self._patience = patience  # Windows: how long a read or a replace waits for another program

    @property
    def journal(self) -> Path:
        """Where the vectors made again wait to be folded into the notes (see the module docstring)."""
        return self.path.with_name(self.path.name + JOURNAL_SUFFIX)

    def notes(self) -> list[Note]:
        """The notes now on disk (none yet: an empty list). A damaged file is moved aside first."""
        notes = _parse(self._read())
        if isinstance(notes, str):
            with self._locked():
                return self._current()  # again under the lock: another writer may have just fixed it
        return self._with_renewed(notes)

    def add(self, note: Note) -> None:
        """Add ``note`` to what is on disk now."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise NotesError(_why_not_saved(err, self.path)) from None
        with self._locked():
            self._write([*self._current(), note])

    def refresh(self, renewed: Mapping[Note, Note]) -> None:
        """Replace each note that is still on disk as a key of ``renewed`` by its value (a new vector),
        and fold the journal in."""
        with self._locked():
            current = self._current()
            updated = [renewed.get(note, note) for note in current]
            if updated != current or os.path.lexists(self.journal):
                self._write(updated)

    def renew(
        self,
        stale: Sequence[Note],
        embed: Embed,
        stamped: Stamped,
        *,
        clock: Callable[[], float] = time.monotonic,
        progress: TextIO | None = None,
    ) -> dict[Note, Any]:
        """Vectors for the ``stale`` notes, embedded a chunk at a time and saved as they come (10 to
        30 s apart, and at the end): a Ctrl-C loses only what was made since the last save. The
        progress goes to ``progress`` (default: stderr when it is a terminal). A save that fails is
        one warning: the search still answers, and the vectors are made again next time."""
        stream = progress if progress is not None else _terminal(sys.stderr)
        shown = _Progress(len(stale), clock, stream) if stream is not None else None
        made: dict[Note, Any] = {}
        unsaved: dict[Note, Note] = {}
        journaling = True  # until an append fails: then all of it waits for the rewrite at the end
        last_save, save_took = clock(), 0.0
        for start in range(0, len(stale), RENEW_CHUNK):
            chunk = stale[start : start + RENEW_CHUNK]
            for note, vector in zip(chunk, embed([note.text for note in chunk]), strict=True):
                made[note] = vector
                unsaved[note] = Note(note.text, *stamped(vector))
            if shown is not None:
                shown.show(len(made))
            since = clock() - last_save
            if journaling and (since >= SAVE_EVERY_MAX or (since >= SAVE_EVERY_MIN and save_took <= since / 20)):
                saving = clock()
                try:
                    self._append_renewed(unsaved)
                    unsaved = {}
                except NotesError as err:
                    journaling = False
                    self._say(f"WARNING: the vectors made again are saved only at the end: {err}")
                last_save, save_took = clock(), clock() - saving
        try:
            self.refresh(unsaved)
        except NotesError as err:
            self._say(f"WARNING: the vectors made again were not saved: {err}")
        if shown is not None:
            shown.done()
        return made

    # -- internals ------------------------------------------------------------

    def _locked(self) -> _Turn:
        return _Turn(FileLock(self.path.with_name(self.path.name + ".lock"), timeout=LOCK_TIMEOUT_SECONDS), self.path)

    def _read(self) -> bytes | str | None:
        """The file's bytes; ``None`` when there is none; why, when it is not a file one can read
        as notes (a folder; a FIFO would block: only a regular file is read)."""
        fd = self._open_waiting()
        if fd is None:
            return None
        if isinstance(fd, str):
            return fd
        try:
            mode = os.fstat(fd).st_mode  # before fdopen, which raises for a folder (Linux opens one)
            if stat.S_ISDIR(mode):
                return "a folder, not a file"
            if not stat.S_ISREG(mode):
                return "not a regular file"
            with os.fdopen(fd, "rb", closefd=False) as fh:
                return fh.read()
        except OSError as err:
            raise NotesError(f"cannot read {self.path} ({err.strerror or type(err).__name__})") from None
        finally:
            os.close(fd)

    def _open_waiting(self) -> int | str | None:
        """The notes opened for reading; ``None`` when there are none; why, for a folder. On Windows
        another program that opened notes.json sharing nothing is waited for, like a reader at replace."""
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        deadline, pause = time.monotonic() + self._patience, _FIRST_PAUSE
        while True:
            try:
                return self._open(str(self.path), flags)
            except FileNotFoundError:
                return None
            except IsADirectoryError:
                return "a folder, not a file"
            except PermissionError as err:
                if self.path.is_dir():  # Windows refuses to open a folder as a file: "Access is denied"
                    return "a folder, not a file"
                if self._platform != "win32" or getattr(err, "winerror", None) not in _SHARING_VIOLATIONS:
                    raise NotesError(
                        f"cannot read {self.path} ({err.strerror}); check the file's permissions"
                    ) from None
                if time.monotonic() >= deadline:
                    raise NotesError(
                        f"another program keeps {self.path} open and lets no one read it; close that program "
                        "and try again (the notes were not changed)"
                    ) from None
                if pause == _FIRST_PAUSE:
                    self._say(
                        f"{self.path.name} is open in another program; reading it as soon as it lets go "
                        f"(up to {self._patience:.0f} s)"
                    )
                time.sleep(pause)
                pause = min(pause * 2, 0.5)
            except OSError as err:
                raise NotesError(f"cannot read {self.path} ({err.strerror or type(err).__name__})") from None

    def _current(self) -> list[Note]:
        """What is on disk, read under the lock; a damaged file is moved aside and counts as none."""
        notes = _parse(self._read())
        if isinstance(notes, str):
            aside = self._set_aside()
            self._say(
                f"{self.path} could not be read as notes ({notes}); it was moved to {aside}, and the notes start empty"
            )
            return []
        return self._with_renewed(notes)

    def _with_renewed(self, notes: list[Note]) -> list[Note]:
        """``notes`` with the journal's vectors in place of the ones they replace."""
        renewed = _parse_journal(self._read_journal())
        if not renewed:
            return notes
        updated = []
        for note in notes:
            found = renewed.get(_identity(note))
            updated.append(Note(note.text, *found) if found is not None else note)
        return updated

    def _read_journal(self) -> bytes:
        """The journal's bytes; none when there is none or it is not a regular file (then appending to
        it fails, with a warning, and the rewrite at the end saves everything)."""
        try:
            fd = self._open(str(self.journal), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        except OSError:
            return b""
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return b""
            with os.fdopen(fd, "rb", closefd=False) as fh:
                return fh.read()
        except OSError:
            return b""  # the vectors in it are made again: no note is lost
        finally:
            os.close(fd)

    def _append_renewed(self, renewed: Mapping[Note, Note]) -> None:
        """Under the lock, one line per note at the journal's end, on the disk before this returns."""
        if not renewed:
            return
        lines = b"".join(
            json.dumps({"replaces": _identity(old), "stamp": new.stamp, "vector": new.vector}).encode() + b"\n"
            for old, new in renewed.items()
        )
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        with self._locked():
            try:
                fd = os.open(self.journal, flags, 0o644)
                try:
                    if not stat.S_ISREG(os.fstat(fd).st_mode):
                        raise NotesError(f"{self.journal} is not a regular file; remove it")
                    view = memoryview(lines)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except IsADirectoryError:
                raise NotesError(f"{self.journal} is a folder; remove it") from None
            except OSError as err:
                raise NotesError(_why_not_saved(err, self.journal)) from None

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
        tmp: str | None = None
        try:
            # Inside: a folder made read-only, a disk out of space or of inodes fail here already.
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            self._replace_retrying(tmp)
            tmp = None
            if os.path.lexists(self.journal):  # folded in (notes come from _current): its work is done
                with suppress(OSError):  # left (Windows: held open), it changes nothing: its notes are gone
                    self.journal.unlink()
        except BaseException as err:
            if tmp is not None:
                with suppress(OSError):  # cleaning up must not hide why the write failed
                    Path(tmp).unlink()
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
                # Windows refuses to replace a file another program has open ("Access is denied", or
                # a sharing violation); elsewhere a PermissionError is the folder's, and waiting changes nothing.
                if self._platform != "win32":
                    raise
                if time.monotonic() >= deadline:
                    raise NotesError(
                        f"another program keeps {self.path} open, so Windows refuses to replace it; "
                        "close that program and try again (the notes were not changed)"
                    ) from None
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


class _Progress:
    """One line on a terminal, written over in place: how many notes are done, and how long is left."""

    def __init__(self, total: int, clock: Callable[[], float], stream: TextIO) -> None:
        self.total, self.clock, self.stream, self.started, self.width = total, clock, stream, clock(), 0

    def show(self, done: int) -> None:
        left = (self.clock() - self.started) / done * (self.total - done) if done else 0.0
        self._line(
            f"embedding notes made with another model again: {done:,} of {self.total:,}, about {left:.0f} s left"
        )

    def done(self) -> None:
        self._line(f"{self.total:,} notes embedded again in {self.clock() - self.started:.0f} s", end="\n")

    def _line(self, text: str, end: str = "") -> None:
        # Padded over the line before (no terminal escape sequence: a Windows console may not read them).
        print("\r" + text.ljust(self.width), end=end, file=self.stream, flush=True)
        self.width = len(text)


def open_sharing(path: str, flags: int) -> int:
    """Windows: open ``path`` for reading, sharing it with every other program, with Windows' own error
    (the C runtime's open says "Permission denied" for a program holding the file and for a denied
    read alike; CreateFile's error tells them apart: 32, a sharing violation)."""
    if sys.platform != "win32":
        return os.open(path, flags)
    import _winapi
    import msvcrt

    share_everything = 0x1 | 0x2 | 0x4  # FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE
    handle = _winapi.CreateFile(path, _winapi.GENERIC_READ, share_everything, 0, _winapi.OPEN_EXISTING, 0, 0)
    return msvcrt.open_osfhandle(handle, os.O_RDONLY)


def _terminal(stream: TextIO | None) -> TextIO | None:
    try:
        return stream if stream is not None and stream.isatty() else None
    except (OSError, ValueError):  # closed
        return None


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


def _identity(note: Note) -> str:
    """What a journal line names the note it replaces by (text, stamp and vector: a note, as stored)."""
    return hashlib.sha256(json.dumps([note.text, note.stamp, note.vector]).encode()).hexdigest()


def _parse_journal(data: bytes) -> dict[str, tuple[str, str]]:
    """The journal's lines: the identity of a note -> its new (stamp, vector). A line that is cut short
    (no newline: a writer killed mid-append) or does not parse is left out."""
    renewed: dict[str, tuple[str, str]] = {}
    for line in data.split(b"\n")[:-1]:
        try:
            entry = json.loads(line)
        except (UnicodeDecodeError, ValueError, RecursionError):
            continue
        if isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in ("replaces", "stamp", "vector")):
            renewed[entry["replaces"]] = (entry["stamp"], entry["vector"])
    return renewed


def _why_not_saved(err: OSError, path: Path) -> str:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the disk holding {path.parent}; the notes were not changed"
    if isinstance(err, PermissionError):
        return f"cannot write in {path.parent} ({err.strerror}); check the folder's permissions"
    return f"cannot write {path} ({err.strerror or type(err).__name__}); the notes were not changed"
