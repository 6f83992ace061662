"""Debug symbols out of a Linux artifact's ELF files, and the check that a file is its source less them.

A wheel's libraries often keep their symbol tables and DWARF (libpython alone:
23 MB, 6 of them code). The build strips every ELF file of the dist
(:func:`strip_dist`), here in Python and not with binutils' ``strip``, which
also rewrites what it should not (it merges ``.gnu.build.attributes`` notes and
sets ``.init_array``'s entry size); a stripped copy replaces its file only when
:func:`strip_problem` proves it is the original modulo strip. verify holds each
shipped file to its source with the same check and never strips again: another
stripper may lay out the same result in other bytes.

*Modulo strip* means, read with pyelftools:

- every byte the loader maps is identical: the ELF header but for where the
  section headers are, the program headers, every segment, every allocated
  (``SHF_ALLOC``) section and so the dynamic section, all at the same offsets;
- every section kept has the source's header (its offset aside, for one the
  loader never maps) and its bytes; only the section-name table is rewritten,
  and it may hold nothing but the names it is asked for;
- the sections removed are not allocated, and are named ``.symtab``, ``.strtab``,
  ``.comment`` or ``.debug*``;
- nothing else is in the file: a byte that no header accounts for is zero, and
  a source holding such bytes (an appended archive, as PyInstaller's executable
  has) is never stripped.

Anything it cannot read or cannot account for is a problem (fail closed). On
macOS stripping would break the code signatures, so nothing is stripped there;
Windows wheels ship their debug data in separate PDB files, so there is nothing
to strip either.
"""

from __future__ import annotations

import io
import struct
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from build_hooks import fsutil

ELF_MAGIC = b"\x7fELF"
REMOVABLE = (".symtab", ".strtab", ".comment")
REMOVABLE_PREFIX = ".debug"
SHF_ALLOC = 0x2
SHF_INFO_LINK = 0x40
# The ELF header fields a strip may change: where the section headers are, how many, which holds the names.
_SECTION_TABLE_FIELDS = {32: ((0x20, 4), (0x30, 2), (0x32, 2)), 64: ((0x28, 8), (0x3C, 2), (0x3E, 2))}


def strips(platform: str = sys.platform) -> bool:
    """Whether builds on ``platform`` strip their ELF files (Linux only; see the module docstring)."""
    return platform.startswith("linux")


def why_not_stripped(platform: str = sys.platform) -> str:
    """One line for the build log where nothing is stripped."""
    if platform == "darwin":
        return "binaries are not stripped on macOS: strip would break their code signatures"
    return "binaries are not stripped on Windows: wheels keep their debug data in separate PDB files"


def is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == ELF_MAGIC
    except OSError:
        return False


def removable(name: str) -> bool:
    """A section a strip may remove (when it is not allocated)."""
    return name in REMOVABLE or name.startswith(REMOVABLE_PREFIX)


def strip_problem(stripped: bytes, source: bytes) -> str | None:
    """``None`` when ``stripped`` is ``source`` less removable sections (or the same bytes); else why not."""
    if stripped == source:
        return None
    try:
        return _difference(stripped, source)
    except Exception as err:  # whatever a damaged file makes the reader raise: it is not proven
        return f"cannot be read as ELF ({type(err).__name__}: {err})"


@dataclass(frozen=True)
class Stripped:
    """One file of the dist: its size before and after (equal when it was kept as it was), and why kept."""

    rel: str
    before: int
    after: int
    kept_because: str | None = None


def strip_dist(dist: Path, workers: int = 2) -> list[Stripped]:
    """Strip every ELF file under ``dist`` (symlinks aside), replacing a file only by a copy
    :func:`strip_problem` accepts (temp name + rename). A file that cannot be stripped so is left as
    it was, with the reason."""
    files = [p for p in sorted(dist.rglob("*")) if _candidate(p)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda path: _strip_one(dist, path), files))


def summary(results: Iterable[Stripped]) -> str:
    """One line for the build log."""
    done = [r for r in results if r.after < r.before]
    kept = [r for r in results if r.kept_because is not None]
    saved = sum(r.before - r.after for r in done) / 2**20
    line = f"stripped {len(done)} ELF files: {saved:.1f} MiB of symbols and debug data removed"
    if kept:
        line += f"; kept as they were: {'; '.join(f'{r.rel} ({r.kept_because})' for r in kept[:5])}"
        line += f" and {len(kept) - 5} more" if len(kept) > 5 else ""
    return line


def _candidate(path: Path) -> bool:
    return path.is_file() and not path.is_symlink() and is_elf(path)


def _strip_one(dist: Path, path: Path) -> Stripped:
    rel, source = path.relative_to(dist).as_posix(), path.read_bytes()
    try:
        stripped = strip_bytes(source)
    except Exception as err:  # a file this reader cannot take apart ships as it came
        return Stripped(rel, len(source), len(source), f"not stripped: {type(err).__name__}: {err}")
    if len(stripped) >= len(source):
        return Stripped(rel, len(source), len(source))
    if (problem := strip_problem(stripped, source)) is not None:
        return Stripped(rel, len(source), len(source), problem)
    mode = path.stat().st_mode & 0o7777
    fsutil.atomic_write_bytes(path, stripped)  # never in place: a hard link to the source stays the source
    path.chmod(mode)
    return Stripped(rel, len(source), len(stripped))


# Section header layouts: name, type, flags, addr, offset, size, link, info, addralign, entsize.
_SHDR = {32: "IIIIIIIIII", 64: "IIQQQQIIQQ"}
_SHT_NOBITS, _SHT_REL, _SHT_RELA = 8, 9, 4


def strip_bytes(source: bytes) -> bytes:
    """``source`` less its removable sections (the same bytes when it has none, or when one of them is
    named by a section that stays): everything the loader maps stays where it is, the sections the
    loader never maps follow it, then a section-name table of the names left and the section headers."""
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(source))
    bits, order = elf.elfclass, "<" if elf.little_endian else ">"
    layout = order + _SHDR[bits]
    size, table, count = elf["e_shentsize"], elf["e_shoff"], elf["e_shnum"]
    sections = list(elf.iter_sections())
    if count == 0 or size != struct.calcsize(layout) or _unaccounted(source, elf, sections, _loaded_end(elf), ""):
        return source  # no sections, an unusual layout, or bytes beyond them (an appended archive): as it is
    headers = [list(struct.unpack_from(layout, source, table + i * size)) for i in range(count)]
    gone = {i for i, s in enumerate(sections) if i and not s["sh_flags"] & SHF_ALLOC and removable(s.name)}
    names_index = elf["e_shstrndx"]
    allocated = [i for i, s in enumerate(sections) if s["sh_flags"] & SHF_ALLOC]
    if not gone or names_index in gone or min(gone) < max(allocated, default=0):
        return source  # nothing to remove, or removing it would renumber a section the loaded symbols name
    new_index = {old: new for new, old in enumerate(i for i in range(count) if i not in gone)}
    out = bytearray(source[: _loaded_end(elf)])
    names = bytearray(b"\0")
    kept: list[list[int]] = []
    for old in new_index:
        header = list(headers[old])
        link, info = header[6], header[7]
        if link in gone or ((header[1] in (_SHT_REL, _SHT_RELA) or header[2] & SHF_INFO_LINK) and info in gone):
            return source  # a section that stays names one that would go
        header[6] = new_index.get(link, link)
        if header[1] in (_SHT_REL, _SHT_RELA) or header[2] & SHF_INFO_LINK:
            header[7] = new_index.get(info, info)
        if old:
            header[0] = len(names)
            names += sections[old].name.encode() + b"\0"
        kept.append(header)
    for old, header in zip(new_index, kept, strict=True):
        if not old or header[1] == _SHT_NOBITS or header[2] & SHF_ALLOC:
            continue
        data = bytes(names) if old == names_index else sections[old].data()
        if old != names_index and header[4] + header[5] <= len(out):
            continue  # inside the mapped part: stays where it is
        out += bytes(-len(out) % max(header[8], 1))
        header[4], header[5] = len(out), len(data)
        out += data
    out += bytes(-len(out) % 8)
    shoff = len(out)
    for header in kept:
        out += struct.pack(layout, *header)
    for (offset, width), value in zip(
        _SECTION_TABLE_FIELDS[bits], (shoff, len(kept), new_index[names_index]), strict=True
    ):
        out[offset : offset + width] = value.to_bytes(width, "little" if elf.little_endian else "big")
    return bytes(out)


def _difference(stripped: bytes, source: bytes) -> str | None:
    from elftools.elf.elffile import ELFFile

    new, old = ELFFile(io.BytesIO(stripped)), ELFFile(io.BytesIO(source))
    if new.elfclass != old.elfclass or new.little_endian != old.little_endian:
        return "is another kind of ELF file than its source"
    old_sections, new_sections = list(old.iter_sections()), list(new.iter_sections())
    mapped = _loaded_end(old)
    if len(stripped) < mapped or _masked_head(stripped, mapped, old.elfclass) != _masked_head(
        source, mapped, old.elfclass
    ):
        return "differs from its source in the bytes the loader maps (header, program headers or a segment)"
    names_now = {s.name for s in new_sections}
    removed = [s for s in old_sections if s.name not in names_now]
    for section in removed:
        if section["sh_flags"] & SHF_ALLOC or not removable(section.name):
            return f"lacks the section {section.name!r}, which strip may not remove"
    kept = [s for s in old_sections if s.name in names_now]
    if [s.name for s in kept] != [s.name for s in new_sections]:
        return "has other sections than its source less the removable ones, or in another order"
    old_names = {i: s.name for i, s in enumerate(old_sections)}
    new_names = {i: s.name for i, s in enumerate(new_sections)}
    if old_names.get(old["e_shstrndx"]) != new_names.get(new["e_shstrndx"]):
        return "names its sections from another table than its source"
    for index, (was, now) in enumerate(zip(kept, new_sections, strict=True)):
        if now["sh_flags"] & SHF_ALLOC and old_sections.index(was) != index:
            return f"section {now.name!r} has another number than in its source"
        names_table = index == new["e_shstrndx"]
        if (why := _section_difference(was, now, old_names, new_names, names_table)) is not None:
            return f"section {now.name!r}: {why}"
        if names_table:
            if (why := _names_table_problem(now, new_sections)) is not None:
                return why
        elif now["sh_type"] != "SHT_NOBITS" and now.data() != was.data():
            return f"section {now.name!r} differs from its source's"
    return _unaccounted(stripped, new, new_sections, mapped, "the stripped file") or _unaccounted(
        source, old, old_sections, mapped, "its source"
    )


def _loaded_end(elf: Any) -> int:
    """The end of what the loader maps (the header, the program headers and every segment) and of every
    allocated section: everything before it must be identical."""
    ends = [elf["e_ehsize"], elf["e_phoff"] + elf["e_phnum"] * elf["e_phentsize"]]
    ends += [seg["p_offset"] + seg["p_filesz"] for seg in elf.iter_segments()]
    ends += [
        s["sh_offset"] + s["sh_size"]
        for s in elf.iter_sections()
        if s["sh_flags"] & SHF_ALLOC and s["sh_type"] != "SHT_NOBITS"
    ]
    return int(max(ends))


def _masked_head(data: bytes, end: int, elfclass: int) -> bytes:
    head = bytearray(data[:end])
    for offset, size in _SECTION_TABLE_FIELDS[elfclass]:
        head[offset : offset + size] = bytes(size)
    return bytes(head)


def _section_difference(
    was: Any, now: Any, old_names: dict[int, str], new_names: dict[int, str], names_table: bool
) -> str | None:
    fields = ["sh_type", "sh_flags", "sh_addr", "sh_addralign", "sh_entsize"]
    if not names_table:
        fields.append("sh_size")  # the name table is rewritten: its content is checked instead
    if was["sh_flags"] & SHF_ALLOC:
        fields.append("sh_offset")  # mapped: never moved
    for name in fields:
        if was[name] != now[name]:
            return f"its header's {name} is {now[name]}, its source's {was[name]}"
    if old_names.get(was["sh_link"], was["sh_link"]) != new_names.get(now["sh_link"], now["sh_link"]):
        return "links to another section than its source's"
    if was["sh_type"] in ("SHT_REL", "SHT_RELA") or was["sh_flags"] & SHF_INFO_LINK:
        if old_names.get(was["sh_info"]) != new_names.get(now["sh_info"]) or was["sh_info"] not in old_names:
            return "applies to another section than its source's"
    elif was["sh_info"] != now["sh_info"]:
        return f"its header's sh_info is {now['sh_info']}, its source's {was['sh_info']}"
    return None


def _names_table_problem(table: Any, sections: list[Any]) -> str | None:
    """The rewritten section-name table holds the names it is asked for and nothing else."""
    data = table.data()
    covered = bytearray(len(data))
    if data[:1] == b"\0":
        covered[0] = 1
    for section in sections:
        start = section["sh_name"]
        end = data.find(b"\0", start)
        if start >= len(data) or end < 0:
            return f"names a section outside its name table (offset {start})"
        covered[start : end + 1] = b"\1" * (end + 1 - start)
    if not all(covered):
        return "its section-name table holds more than the names of its sections"
    return None


def _unaccounted(data: bytes, elf: Any, sections: list[Any], mapped: int, what: str) -> str | None:
    """A non-zero byte after the mapped part that no section and no header accounts for."""
    spans = [(elf["e_shoff"], elf["e_shoff"] + elf["e_shnum"] * elf["e_shentsize"])]
    spans += [(s["sh_offset"], s["sh_offset"] + s["sh_size"]) for s in sections if s["sh_type"] != "SHT_NOBITS"]
    stray, position = 0, mapped
    for start, end in sorted(spans):
        if start > position:
            gap = data[position:start]
            stray += len(gap) - gap.count(0)
        position = max(position, end)
    tail = data[position:]
    stray += len(tail) - tail.count(0)
    return f"{what} holds {stray} bytes outside every section and header" if stray else None
