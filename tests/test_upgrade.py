"""An app written against 0.1.0 is upgraded by CHANGELOG.md's Upgrading steps, and each step it skips
is refused in one line that names it.

`nox -s adoption` (devtools.adoption upgrade) runs every step for real, `uv add` from a loopback
index included, and builds and verifies the result. Here the edits are applied to copies of the
fixture; `uv add`'s part (the pins, and the lock it writes) is written as uv would write it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from build_hooks.nox_sessions import check_suite_version
from build_hooks.versions import DISTRIBUTION, RUNTIME_DISTRIBUTION, project_problems, suite_version
from devtools.adoption import CHANGELOG, OLD_APP, OLD_APP_VERSION, Block, apply_edit, upgrade_blocks
from tests.support import child_env, pipeline

VERSION = suite_version()
BLOCKS = upgrade_blocks(CHANGELOG.read_text(encoding="utf-8"), OLD_APP_VERSION)


def as_uv_add_would(app: Path) -> None:
    """The `run` step's effect: both pins moved to this version, and a lock holding it."""
    pyproject = app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(f"=={OLD_APP_VERSION}", f"=={VERSION}"))
    packages = "".join(
        f'[[package]]\nname = "{name}"\nversion = "{VERSION}"\n\n' for name in (DISTRIBUTION, RUNTIME_DISTRIBUTION)
    )
    (app / "uv.lock").write_text(f'version = 1\nrequires-python = ">=3.11"\n\n{packages}')


def upgraded(tmp_path: Path, skipping: Block | None = None) -> Path:
    app = tmp_path / "pocket-search"
    shutil.copytree(OLD_APP, app)
    for block in BLOCKS:
        if block is skipping:
            continue
        if block.kind == "edit":
            apply_edit(app, block)
        else:
            as_uv_add_would(app)
    return app


def test_the_old_app_is_refused_with_one_line_per_edit_it_needs(tmp_path: Path) -> None:
    problems = project_problems(OLD_APP)
    assert len(problems) == 7, problems
    for fragment in (
        "noxfile.py has no PEP 723 block",
        "nightly.yml calls embedding-pipeline.yml@main",
        "[tool.uv.sources] takes desktop-embedding-pipeline from",
        "[tool.uv.sources] takes embedding-runtime from",
        f'asks for "embedding-runtime==0.1.0", not {VERSION}',
        "build group) asks for",
        "pocket-search.spec uses SpecInputs.hiddenimports, removed in 0.2.0",
    ):
        assert sum(fragment in line for line in problems) == 1, (fragment, problems)
    assert all("\n" not in line for line in problems)


def test_every_step_applied_leaves_nothing_to_refuse(tmp_path: Path) -> None:
    assert [b.kind for b in BLOCKS] == ["edit", "run", "edit", "edit", "edit"], BLOCKS
    app = upgraded(tmp_path)
    assert project_problems(app) == []
    check_suite_version(app)  # what `nox` does before it reads any session: nothing said
    assert "hiddenimports" not in (app / "pocket-search.spec").read_text()
    assert f"desktop-embedding-pipeline=={VERSION}" in (app / "noxfile.py").read_text()


@pytest.mark.parametrize("skipped", range(len(BLOCKS)), ids=[b.describe() for b in BLOCKS])
def test_a_skipped_step_is_refused_in_one_line_naming_it(tmp_path: Path, skipped: int) -> None:
    block = BLOCKS[skipped]
    problems = project_problems(upgraded(tmp_path, skipping=block))
    assert problems, f"skipping {block.describe()} went unnoticed"
    named = block.path or "pyproject.toml"  # the `uv add` step: the pins in pyproject.toml
    assert any(named.rsplit("/", 1)[-1] in line for line in problems), problems
    with pytest.raises(SystemExit) as refused:
        check_suite_version(upgraded(tmp_path / "again", skipping=block))
    assert str(refused.value).startswith("ERROR: ") and "\n" not in str(refused.value)


def test_check_project_lists_the_edits_and_exits_1(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "build_hooks.cli", "check-project", "--project"]
    old = subprocess.run([*command, str(OLD_APP)], env=child_env(), capture_output=True, text=True, timeout=120)
    assert old.returncode == 1
    assert len([line for line in old.stderr.splitlines() if line.startswith("ERROR: ")]) == 7, old.stderr
    assert f"7 edit(s) to make for {DISTRIBUTION} {VERSION}" in old.stderr
    done = subprocess.run(
        [*command, str(upgraded(tmp_path))], env=child_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "agrees with" in done.stdout, done.stderr


def test_an_edit_that_does_not_match_the_file_is_refused(tmp_path: Path) -> None:
    from devtools.adoption import AdoptionError

    app = upgraded(tmp_path)
    (spec_edit,) = [b for b in BLOCKS if b.path == "pocket-search.spec"]
    with pytest.raises(AdoptionError, match=r"not in pocket-search.spec exactly once"):
        apply_edit(app, spec_edit)  # already applied: its `-` line is gone


@pytest.mark.slow
def test_an_old_spec_stops_pyinstaller_and_the_build_step_in_one_line(foreign_project: Path, tmp_path: Path) -> None:
    app = tmp_path / "pocket-search"
    shutil.copytree(foreign_project, app, symlinks=True, ignore=shutil.ignore_patterns("build"))
    spec = app / "pocket-search.spec"
    spec.write_text(
        spec.read_text().replace(
            "    datas=spec.datas,\n", "    datas=spec.datas,\n    hiddenimports=spec.hiddenimports,\n"
        )
    )
    step = pipeline(app, "build-pyinstaller")
    assert step.returncode == 2
    assert step.stderr.strip().splitlines() == [
        "ERROR: pocket-search.spec uses SpecInputs.hiddenimports, removed in 0.2.0: delete the line "
        "`hiddenimports=spec.hiddenimports,` from the spec's Analysis(...): the runtime's hooks come through the "
        "pyinstaller40 entry point (CHANGELOG.md, Upgrading to 0.2.0)"
    ], step.stderr
    by_hand = subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", str(spec)],
        cwd=app, env=child_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert by_hand.returncode == 1
    errors = [line for line in by_hand.stderr.splitlines() if "ERROR" in line or "Error" in line]
    assert errors == [
        "ERROR: the spec uses SpecInputs.hiddenimports, removed in 0.2.0: delete the line "
        "`hiddenimports=spec.hiddenimports,` from the spec's Analysis(...): the runtime's hooks come "
        "through the pyinstaller40 entry point (CHANGELOG.md, Upgrading to 0.2.0)"
    ], by_hand.stderr[-3000:]
    assert "Traceback" not in by_hand.stderr


@pytest.mark.slow
def test_a_second_hand_build_without_noconfirm_is_refused_before_the_analysis(foreign_project: Path) -> None:
    spec = foreign_project / "pocket-search.spec"
    by_hand = subprocess.run(
        [sys.executable, "-m", "PyInstaller", str(spec)],
        cwd=foreign_project, env=child_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert by_hand.returncode == 1
    assert "holds an earlier build: run `pyinstaller --noconfirm pocket-search.spec`" in by_hand.stderr, by_hand.stderr[
        -3000:
    ]
    assert "Initializing module dependency graph" not in by_hand.stderr, "refused before PyInstaller's analysis"
