"""The strip the build applies to a Linux artifact's ELF files, and the check verify holds a stripped file
to: a real shared library (gcc -g), stripped, still loads and answers; every forgery of a stripped copy
(a changed byte the loader maps, a section added, changed or wrongly removed, bytes hidden after the
sections) is refused, and a file with bytes after its sections (PyInstaller's executable) is never stripped."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from build_hooks.freezing.elf_strip import strip_bytes, strip_dist, strip_problem, summary
from tests.support import child_env

LIBRARY_C = r"""
#include <string.h>
static const char greeting[] = "stripped, and still itself";
int answer(int x) { return x + 22; }
const char *hello(void) { return greeting; }
int total(const int *values, int n) { int t = 0; for (int i = 0; i < n; i++) t += values[i]; return t; }
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shared library with symbols, DWARF and a .comment, as wheels' libraries often are."""
    folder = tmp_path_factory.mktemp("elf")
    (folder / "lib.c").write_text(LIBRARY_C)
    compiler = shutil.which(os.environ.get("CC", "gcc"))
    assert compiler is not None, "the build needs a C compiler (Nuitka does too)"
    out, source = str(folder / "libanswer.so"), str(folder / "lib.c")
    subprocess.run([compiler, "-g", "-O1", "-shared", "-fPIC", "-o", out, source], check=True)
    return folder / "libanswer.so"


def sections(data: bytes) -> dict[str, bytes]:
    elf = ELFFile(io.BytesIO(data))
    return {s.name: s.data() for s in elf.iter_sections() if s.name and s["sh_type"] != "SHT_NOBITS"}


def answers(path: Path) -> str:
    code = (
        "import ctypes, sys; lib = ctypes.CDLL(sys.argv[1]); lib.hello.restype = ctypes.c_char_p;"
        "values = (ctypes.c_int * 3)(1, 2, 3); print(lib.answer(20), lib.hello().decode(), lib.total(values, 3))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                            env=child_env(), check=True)  # fmt: skip
    return result.stdout.strip()


def test_a_stripped_library_loses_only_symbols_and_debug_data_and_still_runs(library: Path, tmp_path: Path) -> None:
    source = library.read_bytes()
    before = sections(source)
    assert {".symtab", ".strtab", ".comment", ".debug_info"} <= set(before)
    stripped = strip_bytes(source)
    after = sections(stripped)
    assert len(stripped) < len(source)
    assert not {".symtab", ".strtab", ".comment"} & set(after)
    assert not [name for name in after if name.startswith(".debug")]
    for name in (".text", ".dynamic", ".dynsym", ".dynstr", ".rodata"):
        assert after[name] == before[name], name
    assert strip_problem(stripped, source) is None
    assert strip_problem(source, source) is None  # an unstripped copy is its source
    copy = tmp_path / "libanswer.so"
    copy.write_bytes(stripped)
    assert answers(copy) == answers(library) == "42 stripped, and still itself 6"
    assert strip_bytes(stripped) == stripped  # nothing left to strip


def test_strip_dist_replaces_files_by_new_ones_never_writing_through_a_hard_link(library: Path, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    (dist / "sub").mkdir(parents=True)
    kept_source = tmp_path / "site-packages-libanswer.so"
    shutil.copyfile(library, kept_source)
    os.link(kept_source, dist / "sub" / "libanswer.so")  # as uv links a wheel's file into an environment
    (dist / "sub" / "libanswer.so").chmod(0o755)
    (dist / "notes.txt").write_text("not ELF")
    (dist / "link.so").symlink_to("sub/libanswer.so")
    results = strip_dist(dist)
    assert [(r.rel, r.kept_because) for r in results] == [("sub/libanswer.so", None)]
    assert results[0].after < results[0].before
    assert kept_source.read_bytes() == library.read_bytes()  # the linked source is untouched
    assert (dist / "sub" / "libanswer.so").stat().st_mode & 0o777 == 0o755
    assert strip_problem((dist / "sub" / "libanswer.so").read_bytes(), library.read_bytes()) is None
    assert (dist / "link.so").is_symlink()
    assert "stripped 1 ELF files" in summary(results)
    assert not [p for p in dist.rglob(".*")], "a temp file of the strip was left behind"


def test_a_file_with_bytes_after_its_sections_is_never_stripped(library: Path) -> None:
    """PyInstaller's executable carries its archive after the ELF image: stripping would cut it off."""
    with_archive = library.read_bytes() + b"MEI\x0c\x0b\x0a\x0b\x0e" + bytes(range(256)) * 16
    assert strip_bytes(with_archive) == with_archive
    assert strip_problem(strip_bytes(library.read_bytes()), with_archive) is not None


def _with_section(data: bytes, tmp_path: Path, *args: str) -> bytes:
    """``data`` through objcopy with ``args`` (binutils: what a forger has at hand)."""
    source, out = tmp_path / "in.so", tmp_path / "out.so"
    source.write_bytes(data)
    objcopy = shutil.which("objcopy")
    assert objcopy is not None, "binutils' objcopy (beside gcc) makes the forgeries"
    subprocess.run([objcopy, *args, str(source), str(out)], check=True)
    return out.read_bytes()


def _flip(data: bytes, section: str) -> bytes:
    elf = ELFFile(io.BytesIO(data))
    found = elf.get_section_by_name(section)
    assert found is not None
    forged = bytearray(data)
    forged[found["sh_offset"] + found["sh_size"] // 2] ^= 0x01
    return bytes(forged)


def test_every_forgery_of_a_stripped_copy_is_refused(library: Path, tmp_path: Path) -> None:
    source = library.read_bytes()
    stripped = strip_bytes(source)
    elf = ELFFile(io.BytesIO(stripped))
    phoff, phentsize = elf["e_phoff"], elf["e_phentsize"]
    flags_at = phoff + 4  # p_flags of the first program header (ELF64)
    wider = bytearray(stripped)
    wider[flags_at] ^= 0x02
    names_index = elf["e_shstrndx"]
    names = elf.get_section(names_index)
    padded_names = bytearray(stripped)
    padded_names[names["sh_offset"] + names["sh_size"] - 1 : names["sh_offset"] + names["sh_size"]] = b"X"
    forgeries = {
        "a byte of .text": _flip(stripped, ".text"),
        "a byte of .dynamic": _flip(stripped, ".dynamic"),
        "a byte of .rodata": _flip(stripped, ".rodata"),
        "a program header's flags": bytes(wider),
        "bytes appended": stripped + b"\x90" * 64,
        "a section added": _with_section(stripped, tmp_path, "--add-section", ".payload=/etc/hostname"),
        "the name table changed": bytes(padded_names),
        "garbage": b"\x7fELF" + bytes(60),
        "another library": strip_bytes(_with_section(source, tmp_path, "--add-section", ".x=/etc/hostname")),
    }
    for what, forged in forgeries.items():
        assert forged != stripped, what
        assert strip_problem(forged, source) is not None, what
    assert phentsize > 0


def test_a_kept_section_must_keep_its_bytes_and_only_removable_sections_may_go(library: Path, tmp_path: Path) -> None:
    """A section the loader never maps, but that is not symbols or debug data (a build note), stays as it was."""
    noted = _with_section(library.read_bytes(), tmp_path, "--add-section", ".note.vendor=/etc/hostname",
                          "--set-section-flags", ".note.vendor=readonly")  # fmt: skip
    stripped = strip_bytes(noted)
    assert ".note.vendor" in sections(stripped) and strip_problem(stripped, noted) is None
    changed = _flip(stripped, ".note.vendor")
    assert "differs from its source" in str(strip_problem(changed, noted))
    removed = _with_section(stripped, tmp_path, "--remove-section", ".note.vendor")
    assert "may not remove" in str(strip_problem(removed, noted))


def test_a_section_header_rewritten_as_binutils_strip_does_is_refused(library: Path) -> None:
    """The header of an allocated section (its entry size) is part of what must stay identical."""
    stripped = bytearray(strip_bytes(library.read_bytes()))
    elf = ELFFile(io.BytesIO(bytes(stripped)))
    index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == ".text")
    at = elf["e_shoff"] + index * elf["e_shentsize"] + 56  # sh_entsize (ELF64)
    struct.pack_into("<Q", stripped, at, 16)
    assert "sh_entsize" in str(strip_problem(bytes(stripped), library.read_bytes()))
