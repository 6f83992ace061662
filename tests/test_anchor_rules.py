"""The anchors' rules on a small hand-made artifact and build environment (the real artifacts are
tampered with in test_verify_anchors.py): what counts as a file's source, and when a source is not."""

from __future__ import annotations

import stat
from pathlib import Path

from build_hooks.anchors import BuildEnvironment, anchor_problems
from embedding_runtime.build_api import sha256_file

MODULE = "def answer():\n    return 42\n"


def environment(site: Path, record: dict[Path, str] | None = None) -> BuildEnvironment:
    return BuildEnvironment(import_path=(site,), library_dirs=(), record=record or {}, by_name={})


def artifact(tmp_path: Path, site: Path) -> Path:
    """A Nuitka-shaped dist (no _internal/) holding one copy of the installed library and an executable."""
    dist = tmp_path / "app.dist"
    (dist / "pkg").mkdir(parents=True)
    (dist / "pkg" / "fast.so").write_bytes((site / "pkg" / "fast.so").read_bytes())
    (dist / "app").write_bytes(b"\x7fELF compiled")
    (dist / "app").chmod(stat.S_IRWXU)
    return dist


def problems_about(name: str, problems: list[str]) -> list[str]:
    return [p for p in problems if name in p]  # the real environment's libraries are missing here


def installed(tmp_path: Path) -> Path:
    site = tmp_path / "site-packages"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "fast.so").write_bytes(b"\x7fELF a native library" * 100)
    return site


def test_a_library_identical_to_its_installed_source_is_anchored(tmp_path: Path) -> None:
    site = installed(tmp_path)
    dist = artifact(tmp_path, site)
    record = {(site / "pkg" / "fast.so").resolve(): sha256_file(site / "pkg" / "fast.so")}
    problems, coverage = anchor_problems(dist, "nuitka", dist / "app", True, environment(site, record), sha256_file)
    assert problems_about("fast.so", problems) == []
    assert coverage.anchored_files == 1 and coverage.anchored_bytes == (dist / "pkg" / "fast.so").stat().st_size
    assert [u.split(":")[0] for u in coverage.unanchored] == ["app"], "the compiled program: reported, not counted"


def test_a_source_that_differs_from_its_distributions_record_anchors_nothing(tmp_path: Path) -> None:
    """Artifact and site-packages changed alike: the wheel's RECORD still tells."""
    site = installed(tmp_path)
    dist = artifact(tmp_path, site)
    record = {(site / "pkg" / "fast.so").resolve(): "0" * 64}
    problems, _ = anchor_problems(dist, "nuitka", dist / "app", True, environment(site, record), sha256_file)
    assert problems_about("fast.so", problems) == [
        f"pkg/fast.so comes from {site / 'pkg' / 'fast.so'}, which differs from its distribution's RECORD"
    ]


def test_a_library_with_no_source_in_the_build_environment_is_named(tmp_path: Path) -> None:
    site = installed(tmp_path)
    dist = artifact(tmp_path, site)
    (dist / "pkg" / "stray.so").write_bytes(b"\x7fELF from nowhere")
    problems, _ = anchor_problems(dist, "nuitka", dist / "app", True, environment(site), sha256_file)
    assert problems_about("stray.so", problems) == ["pkg/stray.so has no source library in the build environment"]


def test_a_pyc_is_its_source_compiled_whatever_file_name_the_freezer_wrote(tmp_path: Path) -> None:
    import importlib.util
    import marshal

    site = installed(tmp_path)
    (site / "pkg" / "mod.py").write_text(MODULE)
    dist = artifact(tmp_path, site)
    header = importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little") + bytes(8)

    def pyc(source: str, file_name: str) -> bytes:
        return header + marshal.dumps(compile(source, file_name, "exec", dont_inherit=True))

    (dist / "pkg" / "mod.pyc").write_bytes(pyc(MODULE, "pkg/mod.py"))  # PyInstaller writes its own file names
    (dist / "pkg" / "bad.pyc").write_bytes(pyc(MODULE.replace("42", "41"), "pkg/bad.py"))
    (site / "pkg" / "bad.py").write_text(MODULE)
    problems, _ = anchor_problems(dist, "nuitka", dist / "app", True, environment(site), sha256_file)
    assert problems_about(".pyc", problems) == [
        f"pkg/bad.pyc is not {site / 'pkg' / 'bad.py'} compiled (its code differs)"
    ]
