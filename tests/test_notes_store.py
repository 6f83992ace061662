"""The launcher's notes store on its own: Windows' refusal to replace a file a reader holds (W7),
writers that take turns and merge, and what a failed write leaves (the built artifacts are tested
in test_artifacts_hostile.py)."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest
from notes_store import Note, NotesError, NotesStore

NOTE = Note("a note", "fixture-v1-32d-int8-mlen64-in1", "AAAA")


class WindowsReader:
    """What Windows does while another program holds notes.json open for reading: ``MoveFileEx``
    fails with ERROR_ACCESS_DENIED, which Python raises as PermissionError. The reader lets go
    after ``holds`` attempts (never, with None)."""

    def __init__(self, holds: int | None) -> None:
        self.holds, self.attempts = holds, 0

    def replace(self, source: str, target: str) -> None:
        self.attempts += 1
        if self.holds is None or self.attempts <= self.holds:
            raise PermissionError(errno.EACCES, "Access is denied", target)
        Path(source).replace(target)


def store(path: Path, lines: list[str], reader: WindowsReader | None = None, patience: float = 10.0) -> NotesStore:
    if reader is None:
        return NotesStore(path, say=lines.append)
    return NotesStore(path, say=lines.append, replace=reader.replace, platform="win32", patience=patience)


def test_a_windows_reader_holding_the_notes_delays_the_write_and_loses_nothing(tmp_path: Path) -> None:
    notes, lines = tmp_path / "notes.json", list[str]()
    store(notes, lines).add(NOTE)
    reader = WindowsReader(holds=3)
    store(notes, lines, reader).add(Note("another", NOTE.stamp, "AAAA"))
    assert reader.attempts == 4
    assert lines == ["notes.json is open in another program; saving as soon as it lets go (up to 10 s)"]
    assert [n["text"] for n in json.loads(notes.read_text())] == ["a note", "another"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.json", "notes.json.lock"], "no temp file left"


def test_a_reader_that_never_lets_go_is_one_line_and_the_notes_stay(tmp_path: Path) -> None:
    notes, lines = tmp_path / "notes.json", list[str]()
    store(notes, lines).add(NOTE)
    kept = notes.read_bytes()
    with pytest.raises(NotesError, match=r"another program keeps .* open, so Windows refuses to replace it"):
        store(notes, lines, WindowsReader(holds=None), patience=0.2).add(Note("lost?", NOTE.stamp, "AAAA"))
    assert notes.read_bytes() == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.json", "notes.json.lock"], "no temp file left"


def test_elsewhere_a_permission_error_is_the_folders_and_not_waited_on(tmp_path: Path) -> None:
    reader = WindowsReader(holds=None)
    linux = NotesStore(tmp_path / "notes.json", say=print, replace=reader.replace, platform="linux")
    with pytest.raises(NotesError, match="check the folder's permissions"):
        linux.add(NOTE)
    assert reader.attempts == 1


def test_writers_take_turns_and_each_keeps_what_the_others_wrote(tmp_path: Path) -> None:
    notes = tmp_path / "notes.json"
    writers = [
        threading.Thread(target=lambda n=n: store(notes, []).add(Note(f"note {n}", NOTE.stamp, "AAAA")))
        for n in range(16)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    assert sorted(n["text"] for n in json.loads(notes.read_text())) == sorted(f"note {n}" for n in range(16))


def test_a_refresh_keeps_a_note_added_since_the_search_read_the_file(tmp_path: Path) -> None:
    notes, lines = tmp_path / "notes.json", list[str]()
    first = store(notes, lines)
    first.add(NOTE)
    read = first.notes()
    store(notes, lines).add(Note("added meanwhile", NOTE.stamp, "AAAA"))
    first.refresh({read[0]: Note(NOTE.text, NOTE.stamp, "BBBB")})
    assert [(n["text"], n["vector"]) for n in json.loads(notes.read_text())] == [
        ("a note", "BBBB"),
        ("added meanwhile", "AAAA"),
    ]


def test_a_fifo_in_place_of_the_notes_is_set_aside_not_waited_on(tmp_path: Path) -> None:
    notes, lines = tmp_path / "notes.json", list[str]()
    os.mkfifo(notes)
    assert store(notes, lines).notes() == []
    assert len(lines) == 1 and "not a regular file" in lines[0]
    assert not notes.exists() and len(list(tmp_path.glob("notes.json.damaged-*"))) == 1
