"""verify's rules on small hand-made artifacts (the real ones are tampered with in test_verify_tampering.py):
bytecode as executed, what a folder holds, PyInstaller's archive to the last byte, a reference and its
coverage floor, the probe record by content, and the rules a Nuitka artifact meets without a rebuild."""

from __future__ import annotations

import dis
import json
import marshal
import os
import struct
import types
from pathlib import Path

import numpy as np
import pytest

from build_hooks.verification.code_objects import code_differences, const_key, load_code
from build_hooks.verification.environment import BuildEnvironment
from build_hooks.verification.listing import list_artifact
from build_hooks.verification.nuitka_rules import rules_reference
from build_hooks.verification.probe_check import INT8_CROSS_CPU_SPREAD, probe_record_problems
from build_hooks.verification.pyinstaller_archive import ArchiveError, archive_problems, read_archive
from build_hooks.verification.reference import Expected, Reference, reference_problems
from build_hooks.verification.verify import digest_or_why
from embedding_runtime.build_api import ProbeRecord, sha256_file

COOKIE = "!8sIIII64s"
MODULE = "class Store:\n    def write(self, notes):\n        return [n.text.strip() for n in notes] + [0.0, 1]\n"


def compiled(source: str = MODULE, name: str = "store.py") -> types.CodeType:
    return compile(source, name, "exec", dont_inherit=True)


def edit(code: types.CodeType, qualname: str, **changes: object) -> types.CodeType:
    consts = tuple(edit(c, qualname, **changes) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    code = code.replace(co_consts=consts)
    return code.replace(**changes) if code.co_qualname == qualname else code  # type: ignore[arg-type]


# -- bytecode ---------------------------------------------------------------------------


def test_the_same_source_compiled_under_other_file_names_is_the_same_code() -> None:
    assert code_differences(compiled(name="a/store.py"), compiled(name="store.py")) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [({"co_stacksize": 1}, "co_stacksize"), ({"co_qualname": "Store.other"}, "co_qualname")],
)
def test_fields_that_equality_ignores_in_3_11_are_compared(change: dict[str, object], field: str) -> None:
    changed = edit(compiled(), "Store.write", **change)
    assert [d for d in code_differences(changed, compiled()) if field in d], code_differences(changed, compiled())


def test_a_flipped_inline_cache_byte_is_a_difference() -> None:
    """``co_code`` shows inline caches as zeros; the interpreter runs the raw bytes."""
    code = compiled("def f(o):\n    return o.a.b\n")
    data = bytearray(marshal.dumps(code))
    inner = next(c for c in code.co_consts if isinstance(c, types.CodeType))
    cache = next(i.offset for i in dis.get_instructions(inner, show_caches=True) if i.opname == "CACHE")
    data[bytes(data).index(inner.co_code) + cache + 1] ^= 0x5A
    flipped = marshal.loads(bytes(data))
    assert code_differences(flipped, code) == ["<module>.f: _co_code_adaptive differs"]


def test_constants_compare_by_type_as_well_as_value() -> None:
    assert const_key(0) != const_key(0.0) != const_key(False)
    assert const_key(0.0) != const_key(-0.0)
    assert const_key(frozenset({1, 2})) == const_key(frozenset({2, 1}))
    integer = compiled(MODULE.replace("0.0", "0"))
    assert any("co_consts" in d for d in code_differences(integer, compiled()))


def test_bytes_after_the_code_object_are_refused() -> None:
    data = marshal.dumps(compiled())
    assert isinstance(load_code(data), types.CodeType)
    with pytest.raises(ValueError, match="follow the code object"):
        load_code(data + b"\0")


# -- what a folder holds -----------------------------------------------------------------


def test_every_kind_of_entry_is_named_and_no_link_is_followed_out(tmp_path: Path) -> None:
    dist = tmp_path / "app"
    (dist / "lib").mkdir(parents=True)
    (dist / "lib" / "real.so").write_bytes(b"real")
    (dist / "link.so").symlink_to("lib/real.so")
    (dist / "loop").symlink_to("loop")
    (dist / "dangling").symlink_to("nowhere")
    (dist / "out").symlink_to(tmp_path)
    (dist / "to-folder").symlink_to("lib")
    os.mkfifo(dist / "pipe")
    found = list_artifact(dist)
    assert found["lib/real.so"].kind == "file" and found["link.so"].resolved == "lib/real.so"
    assert "symlink loop" in str(found["loop"].problem)
    assert "to nothing" in str(found["dangling"].problem)
    assert "outside the artifact" in str(found["out"].problem)
    assert "not a regular file" in str(found["to-folder"].problem)
    assert "not a regular file" in str(found["pipe"].problem)
    assert set(found) == {"lib/real.so", "link.so", "loop", "dangling", "out", "to-folder", "pipe"}


# -- PyInstaller's archive ----------------------------------------------------------------------


def pyinstaller_archive(tmp_path: Path, source: str = MODULE) -> bytes:
    """An archive written by PyInstaller's own writer: a script, a compressed data file, an option."""
    from PyInstaller.archive.writers import CArchiveWriter

    script = tmp_path / "script.py"
    script.write_text(source)
    data = tmp_path / "data.bin"
    data.write_bytes(b"data" * 100)
    out = tmp_path / "archive.pkg"
    entries = [("script", str(script), True, "s"), ("data.bin", str(data), True, "x"), ("opt", "", False, "o")]
    CArchiveWriter(str(out), entries, "libpython3.11.so.1.0")
    return out.read_bytes()


def test_an_archive_as_pyinstaller_writes_it_is_read_to_its_last_byte(tmp_path: Path) -> None:
    archive = read_archive(b"bootloader bytes" + pyinstaller_archive(tmp_path))
    assert [(e.name, e.typecode) for e in archive.entries] == [("script", "s"), ("data.bin", "x"), ("opt", "o")]
    assert archive.start == len(b"bootloader bytes")


def test_bytes_hidden_in_an_archive_are_refused(tmp_path: Path) -> None:
    """A byte between the entries and the table of contents, the cookie fixed to describe it: the
    bootloader would never read it, and verify refuses it."""
    data = pyinstaller_archive(tmp_path)
    magic, length, toc_offset, toc_length, pyvers, pylib = struct.unpack_from(COOKIE, data, len(data) - 88)
    cookie = struct.pack(COOKIE, magic, length + 1, toc_offset + 1, toc_length, pyvers, pylib)
    hidden = data[:toc_offset] + b"x" + data[toc_offset:-88] + cookie
    with pytest.raises(ArchiveError, match="table of contents"):
        read_archive(hidden)


def test_an_archive_entry_is_held_to_its_source_compiled(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    fresh = read_archive(pyinstaller_archive(tmp_path / "a"))
    changed = read_archive(pyinstaller_archive(tmp_path / "b", MODULE.replace("strip", "lower")))
    assert archive_problems(fresh, fresh) == []
    problems = archive_problems(changed, fresh)
    assert len(problems) == 1 and problems[0].startswith(
        "holds in its archive a script that is not its source compiled"
    )


# -- a reference and its coverage ------------------------------------------------------------------------


def small_artifact(tmp_path: Path) -> tuple[Path, Path]:
    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "fast.so").write_bytes(b"\x7fELF a native library" * 100)
    dist = tmp_path / "app"
    (dist / "pkg").mkdir(parents=True)
    (dist / "pkg" / "fast.so").write_bytes((site / "pkg" / "fast.so").read_bytes())
    (dist / "app").write_bytes(b"\x7fELF compiled")
    return dist, site


def check(
    dist: Path, reference: Reference, record: dict[Path, str] | None = None
) -> tuple[list[str], dict[str, object]]:
    problems, coverage = reference_problems(
        dist, list_artifact(dist), reference, data_prefix="data/", data_ok=True, digest=digest_or_why,
        record=record or {},
    )  # fmt: skip
    return problems, coverage.to_json()


def test_what_the_reference_lists_is_anchored_and_nothing_else_passes(tmp_path: Path) -> None:
    dist, site = small_artifact(tmp_path)
    reference = Reference("nuitka", {"pkg/fast.so": Expected("file", site / "pkg" / "fast.so")}, "hand-made")
    reference.unanchored["app"] = "compiled, not rebuilt"
    reference.floor = 0.5
    problems, coverage = check(dist, reference)
    assert problems == [] and coverage["unanchored"] == ["app: compiled, not rebuilt"]
    (dist / "pkg" / "extra.so").write_bytes((site / "pkg" / "fast.so").read_bytes())  # identical to a source
    problems, _ = check(dist, reference)
    assert problems == ["pkg/extra.so was not collected by the freezer (an extra file)"]


def test_too_much_unanchored_fails_the_floor(tmp_path: Path) -> None:
    dist, site = small_artifact(tmp_path)
    (dist / "app").write_bytes(b"\x7fELF compiled" * 10_000)
    reference = Reference("nuitka", {"pkg/fast.so": Expected("file", site / "pkg" / "fast.so")}, "hand-made")
    reference.unanchored["app"] = "compiled, not rebuilt"
    problems, coverage = check(dist, reference)
    assert len(problems) == 1 and "more than the floor of 100% anchored allows (unanchored: app" in problems[0]
    assert coverage["manifest_only_files"] == 1


def test_a_source_that_differs_from_its_record_anchors_nothing(tmp_path: Path) -> None:
    """Artifact and site-packages changed alike: the lock's archive still tells."""
    dist, site = small_artifact(tmp_path)
    source = site / "pkg" / "fast.so"
    reference = Reference("nuitka", {"pkg/fast.so": Expected("file", source)}, "hand-made")
    reference.unanchored["app"] = "compiled"
    reference.floor = 0.0
    problems, _ = check(dist, reference, {source.resolve(): "0" * 64})
    assert problems == [f"pkg/fast.so comes from {source}, which differs from the file uv.lock's archive holds"]


def test_unreadable_on_both_sides_is_no_match(tmp_path: Path) -> None:
    """Two files that cannot be read are not equal: the comparison fails, it does not pass."""
    dist, _ = small_artifact(tmp_path)
    reference = Reference("nuitka", {"pkg/fast.so": Expected("file", tmp_path / "gone.so")}, "hand-made")
    reference.unanchored["app"] = "compiled"
    reference.floor = 0.0
    problems, _ = check(dist, reference)
    assert problems == [f"pkg/fast.so cannot be compared: its source {tmp_path / 'gone.so'} cannot be read "
                        "(unreadable (No such file or directory))"]  # fmt: skip


def test_a_check_that_raises_is_a_failure_of_that_file(tmp_path: Path) -> None:
    dist, site = small_artifact(tmp_path)
    reference = Reference("nuitka", {"pkg/fast.so": Expected("file", site / "pkg" / "fast.so")}, "hand-made")
    reference.unanchored["app"] = "compiled"
    reference.floor = 0.0

    def broken(_path: Path) -> list[str]:
        raise RecursionError("deep")

    reference.checks["pkg/fast.so"] = broken
    problems, _ = check(dist, reference)
    assert problems == ["pkg/fast.so cannot be checked (RecursionError: deep)"]


# -- the probe record by content ---------------------------------------------------------------------------


def probe(tmp_path: Path, name: str, vectors: np.ndarray, agreement: float | None = 0.97) -> Path:
    record = ProbeRecord("p-v1", ("a", "b"), vectors.astype(np.float32), 0.8, agreement)
    path = tmp_path / name
    path.write_bytes(record.to_bytes())
    return path


def unit_rows(seed: int, noise: float = 0.0) -> np.ndarray:
    rows = np.random.default_rng(1).normal(size=(2, 8)) + noise * np.random.default_rng(seed).normal(size=(2, 8))
    return np.asarray(rows / np.linalg.norm(rows, axis=1, keepdims=True))


def test_a_record_made_on_another_cpu_passes_and_a_forged_one_does_not(tmp_path: Path) -> None:
    here = probe(tmp_path, "here.json", unit_rows(1))
    other_cpu = probe(tmp_path, "other.json", unit_rows(1, noise=1e-6), agreement=0.97 - INT8_CROSS_CPU_SPREAD / 2)
    assert probe_record_problems(other_cpu, here) == []
    lower = probe(tmp_path, "lower.json", unit_rows(1), agreement=0.97 - 2 * INT8_CROSS_CPU_SPREAD)
    assert "further apart than two CPUs compute it" in probe_record_problems(lower, here)[0]
    wrong = probe(tmp_path, "wrong.json", unit_rows(2, noise=0.1))
    assert "agree with the model's at min cosine" in probe_record_problems(wrong, here)[0]
    padded = tmp_path / "padded.json"
    padded.write_bytes(json.dumps({**json.loads(here.read_text()), "note": 1}, sort_keys=True).encode() + b"\n")
    assert probe_record_problems(padded, here) == [
        "is not a probe record as the build writes one (other bytes than its content)"
    ]


# -- a Nuitka artifact without a rebuild -------------------------------------------------------------------


def test_without_a_rebuild_libraries_are_held_to_their_installed_sources(tmp_path: Path) -> None:
    dist, site = small_artifact(tmp_path)
    env = BuildEnvironment(import_path=(site,), library_dirs=(), record={}, by_name={})
    reference = rules_reference(dist, list_artifact(dist), "app", "data/", tmp_path, sha256_file, env)
    assert reference.files == {
        "pkg/fast.so": Expected("file", site / "pkg" / "fast.so", origin=site / "pkg" / "fast.so")
    }
    assert set(reference.unanchored) == {"app"}
    (dist / "pkg" / "fast.so").write_bytes(b"\x7fELF another library" * 100)
    problems, _ = check(dist, rules_reference(dist, list_artifact(dist), "app", "data/", tmp_path, sha256_file, env))
    # On Linux a shipped ELF file may be its source modulo strip: this one is not (it is not even readable).
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        f"pkg/fast.so differs from {site / 'pkg' / 'fast.so'}, which the freezer makes it from"
    )
    assert "more than a strip (cannot be read as ELF" in problems[0]


def test_without_a_rebuild_a_required_library_that_is_gone_is_missing(tmp_path: Path) -> None:
    dist, site = small_artifact(tmp_path)
    wanted = site / "numpy.libs" / "libopenblas.so"
    wanted.parent.mkdir()
    wanted.write_bytes(b"\x7fELF blas")
    env = BuildEnvironment((site,), (), {}, {}, required=(("numpy.libs/libopenblas.so", wanted),))
    problems, _ = check(dist, rules_reference(dist, list_artifact(dist), "app", "data/", tmp_path, sha256_file, env))
    assert problems == [f"libopenblas.so is missing (the freezer makes it from {wanted})"]
