"""PyInstaller's archive inside an executable, read to the last byte and compared with a fresh one.

The executable of a onedir build carries a small archive (PyInstaller's CArchive, or
PKG): the bootstrap modules, the runtime hooks, the app's entry script, an empty or
small PYZ and the options. :func:`archive_problems` holds the artifact's archive to
the one PyInstaller makes now from the same sources:

- every byte of it is accounted for: the entries laid end to end from its start,
  each compressed one exactly as PyInstaller compresses it, then the table of
  contents as PyInstaller writes it, then the cookie (nothing hides in a gap);
- it has the same entries, in the same order, with the same options;
- each code entry is its source compiled (compared as code objects, see
  :mod:`~build_hooks.verification.code_objects`), every other entry byte for byte.

The bytes around the archive are the replayed executable's business
(:mod:`~build_hooks.verification.pyinstaller_reference`).
"""

from __future__ import annotations

import io
import marshal
import os
import struct
import zlib
from dataclasses import dataclass

from build_hooks.verification.code_objects import code_differences, load_code

_COOKIE_MAGIC = b"MEI\014\013\012\013\016"
_COOKIE = struct.Struct("!8sIIII64s")
_TOC_ENTRY = struct.Struct("!IIIIBc")
_PYZ_MAGIC = b"PYZ\0"
_PYZ_HEADER = 17  # magic, bytecode magic, TOC offset, 5 bytes of zeros
_CODE_TYPECODES = frozenset("smM")
_PYZ_TYPECODE = "z"


class ArchiveError(ValueError):
    """The bytes are not a PyInstaller archive written the way PyInstaller writes one."""


@dataclass(frozen=True)
class ArchiveEntry:
    name: str
    typecode: str
    compressed: bool
    payload: bytes  # decompressed


@dataclass(frozen=True)
class Archive:
    entries: tuple[ArchiveEntry, ...]
    python_version: int
    python_library: bytes
    start: int  # where the archive begins in the file that holds it
    end: int


def _compression_level(variable: str, default: int) -> int:
    return int(os.environ.get(variable, default))


def read_archive(data: bytes) -> Archive:
    """The archive at the end of ``data`` (an executable or a PKG file), every byte of it checked
    against how PyInstaller writes one (:class:`ArchiveError` otherwise)."""
    cookie_at = data.rfind(_COOKIE_MAGIC)
    if cookie_at < 0 or cookie_at + _COOKIE.size > len(data):
        raise ArchiveError("holds no PyInstaller archive (no cookie)")
    _magic, length, toc_offset, toc_length, pyvers, pylib = _COOKIE.unpack_from(data, cookie_at)
    end = cookie_at + _COOKIE.size
    start = end - length
    if start < 0 or toc_offset + toc_length + _COOKIE.size != length:
        raise ArchiveError("its cookie does not describe the archive it ends")
    level = _compression_level("PYINSTALLER_ZLIB_COMPRESSION_LEVEL", 9)
    body, entries, position = data[start:end], [], 0
    toc = body[toc_offset : toc_offset + toc_length]
    rewritten = bytearray()
    at = 0
    while at < len(toc):
        entry_length, offset, stored, full, flag, code = _TOC_ENTRY.unpack_from(toc, at)
        name = toc[at + _TOC_ENTRY.size : at + entry_length].rstrip(b"\0").decode("utf-8")
        typecode = code.decode("ascii")
        if entry_length < _TOC_ENTRY.size or offset != position or offset + stored > toc_offset:
            raise ArchiveError(f"entry {name!r} is not where PyInstaller writes it")
        raw = body[offset : offset + stored]
        payload = zlib.decompress(raw) if flag else raw
        if len(payload) != full or (flag and zlib.compress(payload, level=level) != raw):
            raise ArchiveError(f"entry {name!r} is not stored as PyInstaller stores it")
        entries.append(ArchiveEntry(name, typecode, bool(flag), payload))
        rewritten += _toc_entry(offset, stored, full, flag, code, name)
        position += stored
        at += entry_length
    if position != toc_offset or bytes(rewritten) != toc:
        raise ArchiveError("its table of contents is not the one PyInstaller writes for its entries")
    if pylib.rstrip(b"\0") + bytes(64 - len(pylib.rstrip(b"\0"))) != pylib:
        raise ArchiveError("its cookie names the Python library with stray bytes")
    return Archive(tuple(entries), pyvers, pylib, start, end)


def _toc_entry(offset: int, stored: int, full: int, flag: int, code: bytes, name: str) -> bytes:
    encoded = name.encode("utf-8") + b"\0"
    padded = len(encoded) + (-(_TOC_ENTRY.size + len(encoded)) % 16)
    return _TOC_ENTRY.pack(_TOC_ENTRY.size + padded, offset, stored, full, flag, code) + encoded.ljust(padded, b"\0")


def archive_problems(shipped: Archive, fresh: Archive) -> list[str]:
    """How the artifact's archive differs from the one PyInstaller makes now (``[]``: it does not)."""
    layout = [(e.name, e.typecode, e.compressed) for e in shipped.entries]
    expected = [(e.name, e.typecode, e.compressed) for e in fresh.entries]
    if layout != expected:
        extra = [n for n, *_ in layout if n not in {m for m, *_ in expected}]
        missing = [n for n, *_ in expected if n not in {m for m, *_ in layout}]
        return [f"holds other archive entries than PyInstaller writes (extra {extra}, missing {missing})"]
    if (shipped.python_version, shipped.python_library) != (fresh.python_version, fresh.python_library):
        return ["holds an archive naming another Python than PyInstaller writes"]
    problems = []
    for ours, theirs in zip(shipped.entries, fresh.entries, strict=True):
        if (problem := _entry_problem(ours, theirs)) is not None:
            problems.append(f"holds in its archive a {ours.name} that {problem}")
    return problems


def _entry_problem(ours: ArchiveEntry, theirs: ArchiveEntry) -> str | None:
    if ours.payload == theirs.payload:
        return None
    if ours.typecode in _CODE_TYPECODES:
        differences = code_differences(load_code(ours.payload), load_code(theirs.payload))
        return f"is not its source compiled ({'; '.join(differences)})" if differences else None
    if ours.typecode == _PYZ_TYPECODE:
        return _pyz_problem(ours.payload, theirs.payload)
    return "differs from what PyInstaller writes"


def _pyz_problem(ours: bytes, theirs: bytes) -> str | None:
    try:
        shipped, fresh = _read_pyz(ours), _read_pyz(theirs)
    except (ValueError, EOFError, TypeError, zlib.error) as err:
        return f"is not a PYZ archive as PyInstaller writes one ({err})"
    if [(n, t) for n, t, _ in shipped] != [(n, t) for n, t, _ in fresh]:
        return "holds other modules than PyInstaller writes"
    for (name, _typecode, code), (_, _, expected) in zip(shipped, fresh, strict=True):
        if code != expected and (differences := code_differences(load_code(code), load_code(expected))):
            return f"holds a module {name} that is not its source compiled ({'; '.join(differences)})"
    return None


def _read_pyz(data: bytes) -> list[tuple[str, int, bytes]]:
    """(name, typecode, marshalled code) of each PYZ entry, its framing checked as written."""
    if data[:4] != _PYZ_MAGIC or data[12:_PYZ_HEADER] != bytes(_PYZ_HEADER - 12):
        raise ValueError("its header is not a PYZ header")
    (toc_offset,) = struct.unpack_from("!i", data, 8)
    stream = io.BytesIO(data[toc_offset:])
    toc = marshal.load(stream)
    if stream.tell() != len(data) - toc_offset or not isinstance(toc, list):
        raise ValueError("its table of contents is not one list")
    level = _compression_level("PYINSTALLER_ZLIB_COMPRESSION_LEVEL", 6)
    found, position = [], _PYZ_HEADER
    for name, (typecode, offset, length) in toc:
        raw = data[offset : offset + length]
        if offset != position:
            raise ValueError(f"entry {name!r} is not where PyInstaller writes it")
        code = zlib.decompress(raw) if length else b""
        if length and zlib.compress(code, level=level) != raw:
            raise ValueError(f"entry {name!r} is not stored as PyInstaller stores it")
        found.append((str(name), int(typecode), code))
        position += length
    if position != toc_offset:
        raise ValueError("bytes lie between its entries and its table of contents")
    return found
