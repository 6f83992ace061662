"""The launcher's notes store on its own: Windows' refusal to replace a file a reader holds (W7),
writers that take turns and merge, and what a failed write leaves (the built artifacts are tested
in test_artifacts_hostile.py)."""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Callable
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


class WindowsHolder:
    """What Windows does while another program holds notes.json open sharing nothing (share mode 0):
    ``CreateFile`` fails with ERROR_SHARING_VIOLATION (winerror 32), which Python raises as
    PermissionError. The program lets go after ``holds`` attempts (never, with None)."""

    def __init__(self, holds: int | None) -> None:
        self.holds, self.attempts = holds, 0

    def open(self, path: str, flags: int) -> int:
        if not path.endswith("notes.json"):  # the journal beside it: not held
            return os.open(path, flags)
        self.attempts += 1
        if self.holds is None or self.attempts <= self.holds:
            refused = PermissionError(errno.EACCES, "The process cannot access the file", path)
            refused.winerror = 32  # type: ignore[attr-defined]  # set by Python on Windows only
            raise refused
        return os.open(path, flags)


def test_a_windows_program_sharing_nothing_is_waited_for_not_blamed_on_permissions(tmp_path: Path) -> None:
    notes, lines = tmp_path / "notes.json", list[str]()
    store(notes, lines).add(NOTE)
    holder = WindowsHolder(holds=3)
    held = NotesStore(notes, say=lines.append, opener=holder.open, platform="win32")
    held.add(Note("another", NOTE.stamp, "AAAA"))
    assert holder.attempts == 4
    assert lines == ["notes.json is open in another program; reading it as soon as it lets go (up to 10 s)"]
    assert [n["text"] for n in json.loads(notes.read_text())] == ["a note", "another"]


def test_a_windows_program_that_never_lets_go_is_one_line_and_the_notes_stay(tmp_path: Path) -> None:
    notes, lines = tmp_path / "notes.json", list[str]()
    store(notes, lines).add(NOTE)
    kept = notes.read_bytes()
    held = NotesStore(notes, say=lines.append, opener=WindowsHolder(None).open, platform="win32", patience=0.2)
    with pytest.raises(NotesError, match=r"another program keeps .* open and lets no one read it; close that"):
        held.add(Note("lost?", NOTE.stamp, "AAAA"))
    assert notes.read_bytes() == kept


def test_a_folder_where_the_notes_should_be_is_set_aside(tmp_path: Path) -> None:
    notes, lines = tmp_path / "notes.json", list[str]()
    (notes / "inside").mkdir(parents=True)
    store(notes, lines).add(NOTE)
    assert len(lines) == 1 and "(a folder, not a file)" in lines[0]
    aside = list(tmp_path.glob("notes.json.damaged-*"))
    assert len(aside) == 1 and (aside[0] / "inside").is_dir(), "the folder is kept, under another name"
    assert [n["text"] for n in json.loads(notes.read_text())] == ["a note"]


class Clock:
    """A clock that moves only when the embedding it stands beside says so (no test waits on it)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def embedding(self, seconds: float, interrupted_at: str | None = None) -> Callable[[list[str]], list[str]]:
        """An embedding whose every chunk takes ``seconds`` on this clock; a Ctrl-C at the chunk that
        starts with ``interrupted_at``."""

        def embed(texts: list[str]) -> list[str]:
            self.now += seconds
            if texts[0] == interrupted_at:
                raise KeyboardInterrupt
            return [f"vector of {t}" for t in texts]

        return embed


def stale_notes(count: int) -> list[Note]:
    return [Note(f"old note {n}", "another-model-v9", "AAAA") for n in range(count)]


def test_notes_embedded_again_are_saved_as_they_come_not_only_at_the_end(tmp_path: Path) -> None:
    """Each chunk takes 4 s: the first save comes once 10 s have passed (after the third chunk); the
    sixth is interrupted (a Ctrl-C ends the program at once): the three saved chunks stay saved, in
    the journal (notes.json itself is not rewritten), and the next write folds them in."""
    notes, lines = tmp_path / "notes.json", list[str]()
    stale = stale_notes(6 * 256)
    notes.write_text(json.dumps([n.to_json() for n in stale]))
    before = notes.stat()
    clock = Clock()
    embed = clock.embedding(4.0, interrupted_at="old note 1280")

    with pytest.raises(KeyboardInterrupt):
        NotesStore(notes, say=lines.append).renew(stale, embed, lambda vector: ("fixture-v1", vector), clock=clock)
    assert (notes.stat().st_ino, notes.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "not rewritten"
    assert len((tmp_path / "notes.json.renewed").read_bytes().splitlines()) == 3 * 256
    saved = NotesStore(notes, say=lines.append).notes()
    assert [n.stamp for n in saved[: 3 * 256]] == ["fixture-v1"] * (3 * 256), "saved at 12 s, not at the end"
    assert [n.vector for n in saved[:2]] == ["vector of old note 0", "vector of old note 1"]
    assert [n.stamp for n in saved[3 * 256 :]] == ["another-model-v9"] * (3 * 256), (
        "made since that save: lost with the Ctrl-C, made again next time"
    )
    NotesStore(notes, say=lines.append).add(NOTE)  # any rewrite folds the journal in and removes it
    assert [n["stamp"] for n in json.loads(notes.read_text())[: 3 * 256]] == ["fixture-v1"] * (3 * 256)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.json", "notes.json.lock"]
    assert lines == []


def test_a_renewal_that_ends_folds_everything_into_the_notes(tmp_path: Path) -> None:
    notes, lines = tmp_path / "notes.json", list[str]()
    stale = stale_notes(3 * 256 + 7)
    notes.write_text(json.dumps([n.to_json() for n in stale]))
    clock = Clock()
    embed = clock.embedding(11.0)  # a save (an append) after every chunk

    made = NotesStore(notes, say=lines.append).renew(stale, embed, lambda v: ("fixture-v1", v), clock=clock)
    assert len(made) == len(stale) and lines == []
    saved = json.loads(notes.read_text())
    assert [n["vector"] for n in saved] == [f"vector of {n.text}" for n in stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.json", "notes.json.lock"], "journal folded in"


@pytest.mark.parametrize("damage", ["cut short", "garbage", "not a line of ours", "a folder"])
def test_a_damaged_journal_costs_only_its_vectors_never_a_note(tmp_path: Path, damage: str) -> None:
    notes, lines = tmp_path / "notes.json", list[str]()
    stale = stale_notes(300)
    notes.write_text(json.dumps([n.to_json() for n in stale]))
    journal = tmp_path / "notes.json.renewed"
    clock = Clock()
    embed = clock.embedding(11.0, interrupted_at="old note 256")

    if damage == "a folder":
        journal.mkdir()
    with pytest.raises(KeyboardInterrupt):
        NotesStore(notes, say=lines.append).renew(stale, embed, lambda v: ("fixture-v1", v), clock=clock)
    if damage == "a folder":
        assert lines == [f"WARNING: the vectors made again are saved only at the end: {journal} is a folder; remove it"]
    else:
        assert lines == []
        kept = journal.read_bytes().splitlines(keepends=True)
        assert len(kept) == 256
        if damage == "cut short":  # a writer killed mid-append: its last line has no end
            journal.write_bytes(b"".join(kept[:-1]) + kept[-1][:40])
        elif damage == "garbage":
            journal.write_bytes(b"".join(kept[:-1]) + b"\xff\x00 not json\n")
        else:
            journal.write_bytes(b"".join(kept[:-1]) + b'{"replaces": 1, "stamp": [], "vector": "v"}\n')
    saved = NotesStore(notes, say=lines.append).notes()
    assert [n.text for n in saved] == [n.text for n in stale], "every note is still there"
    expected = 0 if damage == "a folder" else 255  # the damaged line's vector is made again next time
    assert sum(n.stamp == "fixture-v1" for n in saved) == expected
    assert all(n.vector == f"vector of {n.text}" for n in saved if n.stamp == "fixture-v1")


def test_progress_shows_on_a_terminal_and_ends_with_a_line(tmp_path: Path) -> None:
    import io

    notes = tmp_path / "notes.json"
    stale = stale_notes(600)
    notes.write_text(json.dumps([n.to_json() for n in stale]))
    shown = io.StringIO()
    clock = Clock()
    embed = clock.embedding(1.0)

    made = NotesStore(notes, say=print).renew(stale, embed, lambda v: ("s", v), clock=clock, progress=shown)
    assert len(made) == 600
    text = shown.getvalue()
    assert "\rembedding notes made with another model again: 256 of 600, about 1 s left" in text
    *_, before, last = text.split("\r")
    assert last.endswith("\n") and last.rstrip() == "600 notes embedded again in 3 s"
    assert len(last) - 1 >= len(before), "the last line covers the one before it"
