"""Lean artifacts: what the app never imports is left out (its table's exclude-modules, proven by the
artifact's own self-check), ELF files ship stripped and equal to their sources modulo strip, and
`embedding-pipeline sizes --parts` says what each artifact is made of and what it ships unimported."""

from __future__ import annotations

import io
import json
import stat
import sys
import sysconfig
from dataclasses import replace
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from build_hooks.cli._common import prove_exclusions
from build_hooks.config import load_config
from build_hooks.errors import BuildFailedError, PreflightError, UsageError
from build_hooks.freezing.content import preflight_problems
from build_hooks.freezing.elf_strip import removable, strip_problem
from build_hooks.freezing.selection import excludes, exclusion_problems, left_out, module_of
from build_hooks.freezing.stamp import read_stamp
from build_hooks.freezing.target import Builder, target_for
from build_hooks.verification.selfcheck import exclusion_problem
from devtools.demo_project import Project
from tests.artifacts import linked_copy, self_check_elsewhere
from tests.support import REPO_ROOT, pipeline

EXCLUDED = load_config(REPO_ROOT / "pyproject.toml").exclude_modules


def artifact(builder: Builder, request: pytest.FixtureRequest) -> Path:
    return Path(request.getfixturevalue(f"{builder}_artifact"))


def test_the_demo_app_leaves_out_what_its_import_audit_never_saw() -> None:
    assert {"sqlite3", "_ssl", "numpy.random", "numpy.ma", "numpy.polynomial", "numpy.fft"} <= set(EXCLUDED)
    assert exclusion_problems(EXCLUDED) == []


@pytest.mark.parametrize(
    ("names", "needed"),
    [(("numpy",), "numpy"), (("onnxruntime",), "onnxruntime"), (("hashlib",), "hashlib"), (("embedding_runtime",),
      "embedding_runtime"), (("_hashlib",), "_hashlib")],
)  # fmt: skip
def test_what_every_artifact_needs_cannot_be_excluded(
    artifact_project: Project, tmp_path: Path, names: tuple[str, ...], needed: str
) -> None:
    problems = exclusion_problems(names)
    assert len(problems) == 1 and needed in problems[0] and "take" in problems[0]
    pyproject = artifact_project.root / "pyproject.toml"
    text = pyproject.read_text().replace("exclude-modules = [", f"exclude-modules = [{json.dumps(names[0])}, ")
    (tmp_path / "pyproject.toml").write_text(text)
    target = target_for(load_config(tmp_path / "pyproject.toml"))
    assert any(p.startswith(f"exclude-modules leaves out {needed},") for p in preflight_problems(target))
    assert exclusion_problems(("numpy.random", "sqlite3")) == []


@pytest.mark.parametrize("bad", ['"not a module"', "[1]", '["numpy..random"]', '["-x"]'])
def test_a_malformed_exclude_modules_is_one_usage_line(artifact_project: Project, tmp_path: Path, bad: str) -> None:
    text = (artifact_project.root / "pyproject.toml").read_text()
    start = text.index("exclude-modules = [")
    end = text.index("]", start) + 1
    (tmp_path / "pyproject.toml").write_text(text[:start] + f"exclude-modules = {bad}" + text[end:])
    with pytest.raises(UsageError, match="exclude-modules"):
        load_config(tmp_path / "pyproject.toml")


def test_a_file_is_named_by_the_module_it_holds() -> None:
    assert module_of("numpy/random/_pcg64.cpython-311-x86_64-linux-gnu.so") == "numpy.random._pcg64"
    assert module_of("_ssl.so") == "_ssl"
    assert left_out("numpy/random/mtrand.so", ("numpy.random",))
    assert not left_out("numpy/randomness.so", ("numpy.random",))
    assert not left_out("numpy/_core/_multiarray_umath.so", ("numpy.random",))


@pytest.mark.slow
@pytest.mark.parametrize("builder", ["pyinstaller", "nuitka"])
def test_an_artifact_ships_no_excluded_module_and_its_self_check_audits_its_imports(
    builder: Builder, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    dist = artifact(builder, request)
    contents = dist / "_internal" if builder == "pyinstaller" else dist
    shipped = [p.relative_to(contents).as_posix() for p in contents.rglob("*") if p.suffix in (".pyc", ".so")]
    modules = [rel.split("lib-dynload/")[-1] for rel in shipped]
    assert [rel for rel in modules if left_out(rel, EXCLUDED)] == []
    assert not [p for p in dist.rglob("*") if p.name.startswith(("libssl.", "libsqlite3."))]
    report = self_check_elsewhere(dist, tmp_path / "elsewhere", tmp_path / "home")
    audit = report["imports"]
    assert isinstance(audit, dict)
    loaded = set(audit["modules"])
    assert {"numpy", "onnxruntime", "tokenizers", "tiktoken", "embedding_runtime", "hashlib"} <= loaded
    assert not [name for name in loaded if any(excludes(gone, name) for gone in EXCLUDED)]
    # What the process looked for among the left-out modules and went on without (asyncio's ssl, say).
    assert all(any(excludes(gone, name) for gone in EXCLUDED) for name in audit["excluded_probed"])


def _libpython_source() -> Path:
    return Path(sysconfig.get_config_var("LIBDIR")) / str(sysconfig.get_config_var("INSTSONAME"))


def _removable_sections(path: Path) -> list[str]:
    elf = ELFFile(io.BytesIO(path.read_bytes()))
    return [s.name for s in elf.iter_sections() if removable(s.name) and not s["sh_flags"] & 0x2]


@pytest.mark.slow
def test_the_pyinstaller_artifact_ships_libpython_stripped_and_equal_to_its_source_modulo_strip(
    pyinstaller_artifact: Path,
) -> None:
    source = _libpython_source()
    shipped = pyinstaller_artifact / "_internal" / source.name
    assert shipped.is_file() and not shipped.is_symlink()
    assert _removable_sections(shipped) == []
    assert strip_problem(shipped.read_bytes(), source.read_bytes()) is None
    if _removable_sections(source):  # this interpreter's libpython has symbols (pyenv's does): they were taken out
        assert shipped.stat().st_size < source.stat().st_size
    assert stat.S_IMODE(shipped.stat().st_mode) & 0o444 == 0o444


@pytest.mark.slow
def test_a_stripped_library_changed_by_a_forger_fails_verify_with_its_records_forged(
    pyinstaller_artifact: Path, artifact_project: Project, tmp_path: Path
) -> None:
    """A byte of libpython's code flipped in the stripped copy, the manifest and SBOM forged to match."""
    from build_hooks.verification.verify import verify
    from devtools.tampering import forge_records

    copy = linked_copy(pyinstaller_artifact, tmp_path / pyinstaller_artifact.name)
    target = copy / "_internal" / _libpython_source().name
    elf = ELFFile(io.BytesIO(target.read_bytes()))
    text = elf.get_section_by_name(".text")
    assert text is not None
    data = bytearray(target.read_bytes())
    data[text["sh_offset"] + text["sh_size"] // 3] ^= 0x01
    target.unlink()
    target.write_bytes(bytes(data))
    forge_records(copy)
    verdict = verify(copy, artifact_project.target, run_self_check=False)
    assert not verdict.ok
    assert any(target.name in failure and "more than a strip" in failure for failure in verdict.failures)


def _stand_in(tmp_path: Path, body: str) -> Path:
    """An executable that behaves as a frozen app does on ``--self-check`` (the artifact under test is the input)."""
    path = tmp_path / f"app-{len(list(tmp_path.glob('app-*')))}"
    path.write_text(f"#!{sys.executable} -I\n{body}\n")
    path.chmod(0o755)
    return path


def test_an_artifact_that_needs_an_excluded_module_fails_the_build_in_one_line(
    artifact_project: Project, tmp_path: Path
) -> None:
    crashing = _stand_in(tmp_path, "import sqlite3_left_out_by_the_build")
    problem = exclusion_problem(crashing, ("sqlite3_left_out_by_the_build",))
    assert problem is not None and "imports sqlite3_left_out_by_the_build" in problem and "take it out" in problem
    assert exclusion_problem(crashing, ("other",)) is not None  # no report: not proven either
    reporting = _stand_in(
        tmp_path,
        "import json; print(json.dumps({'imports': {'modules': ['numpy'], 'excluded_probed': ['ssl']}}))",
    )
    assert exclusion_problem(reporting, ("ssl",)) is None  # looked for, went on without: not needed
    # The build step removes such a build and its stamp, so the next run builds again.
    dist = tmp_path / "dist" / "pyinstaller" / "local-notes"
    (dist / "_internal").mkdir(parents=True)
    (dist / "local-notes").symlink_to(crashing)
    target = target_for(load_config(artifact_project.root / "pyproject.toml"))
    needed = replace(target, config=replace(target.config, exclude_modules=("sqlite3_left_out_by_the_build",)))
    with pytest.raises(BuildFailedError, match=r"imports sqlite3_left_out_by_the_build.*build was removed"):
        prove_exclusions(needed, dist)
    assert not dist.exists() and read_stamp(dist) is None


@pytest.mark.slow
def test_sizes_shows_each_artifacts_parts_and_what_it_ships_unimported(
    pyinstaller_artifact: Path, artifact_project: Project, tmp_path: Path
) -> None:
    root = tmp_path / "dist"
    copy = linked_copy(pyinstaller_artifact, root / "pyinstaller" / pyinstaller_artifact.name)
    without = pipeline(artifact_project.root, "sizes", "--parts", "4", "--dist-root", str(root))
    assert without.returncode == 0, without.stderr
    lines = without.stdout.splitlines()
    assert lines[0].startswith("pyinstaller/local-notes: ") and "beside data/" in lines[0]
    assert len([line for line in lines if line.startswith("    ")]) == 4
    assert "onnxruntime" in without.stdout and "no import audit" in without.stdout
    report = self_check_elsewhere(pyinstaller_artifact, tmp_path / "elsewhere", tmp_path / "home")
    (copy.parent / f"{copy.name}.verify.json").write_text(json.dumps({"self_check": report}))
    audited = pipeline(artifact_project.root, "sizes", "--parts", "50", "--dist-root", str(root))
    assert audited.returncode == 0, audited.stderr
    listed = audited.stdout.split("never imported by its self-check", 1)[1].splitlines()[1:]
    names = [line.split()[0] for line in listed]
    loaded = set(report["imports"]["modules"])  # type: ignore[index]
    assert names and not [name for name in names if name in loaded]
    totals = json.loads(pipeline(artifact_project.root, "sizes", "--dist-root", str(root)).stdout)
    assert list(totals) == ["pyinstaller/local-notes"] and isinstance(totals["pyinstaller/local-notes"], int)


def test_a_preflight_refusal_of_exclusions_is_a_preflight_error(artifact_project: Project, tmp_path: Path) -> None:
    from build_hooks.freezing.plan import make_plan

    text = (artifact_project.root / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(text.replace("exclude-modules = [", 'exclude-modules = ["tiktoken", '))
    config = load_config(tmp_path / "pyproject.toml")
    with pytest.raises(PreflightError, match="exclude-modules leaves out tiktoken, which every artifact needs"):
        make_plan(target_for(config), "pyinstaller")
