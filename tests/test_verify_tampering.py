"""verify says no when it cannot tell: every tampering in tests/tampering.py, with the build's manifest
and SBOM forged to match, fails verify on both Linux builders with a line naming the file, no traceback,
and no checksums or pass report left from an earlier run; and a good artifact passes, anchored whole."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from build_hooks.freezing.target import Builder
from build_hooks.verification.verify import Verdict, publish, report_paths, verify
from devtools.demo_project import Project
from devtools.tampering import CASES, forge_records, symlink_loop
from tests.artifacts import linked_copy
from tests.support import REPO_ROOT, child_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
ROWS = [(builder, how) for how, case in CASES.items() for builder in case.builders]


@pytest.fixture
def copy(builder: Builder, request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A copy of the built artifact (hard links: a tampering replaces a file, never writes through)."""
    built = Path(request.getfixturevalue(f"{builder}_artifact"))
    return linked_copy(built, tmp_path / "artifacts" / built.name)


@pytest.fixture(scope="session")
def passing_reports(
    artifact_project: Project,
    pyinstaller_artifact: Path,
    nuitka_artifact: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    """Each artifact verified once, untouched: its report and SHA256SUMS, which a later failing run must
    take away. (The first verify of the Nuitka artifact rebuilds its program; later ones reuse it.)"""
    folders = {}
    for dist in (pyinstaller_artifact, nuitka_artifact):
        out = tmp_path_factory.mktemp(f"pass-{dist.name}")
        verdict, _, sums = publish(dist, out, functools.partial(verify, target=artifact_project.target))
        assert verdict.ok and sums is not None, verdict.failures
        folders[dist.name] = out
    return folders


def plant_pass(passing: Path, copy: Path, reports: Path) -> None:
    reports.mkdir(parents=True, exist_ok=True)
    for path in report_paths(passing, copy):
        shutil.copy(path, reports / path.name)


@pytest.mark.parametrize(("builder", "how"), ROWS)
def test_a_tampering_fails_verify_naming_the_file_and_leaves_no_pass_behind(
    builder: Builder, copy: Path, artifact_project: Project, how: str, passing_reports: dict[str, Path], tmp_path: Path
) -> None:
    case = CASES[how]
    reports = tmp_path / "reports"
    plant_pass(passing_reports[copy.name], copy, reports)
    changed = case.change(copy, artifact_project)
    if case.forge:
        forge_records(copy)
    run_self_check = case.self_check

    def run(dist: Path) -> Verdict:
        return verify(dist, artifact_project.target, run_self_check=run_self_check)

    verdict, report, sums = publish(copy, reports, run)
    named = changed.relative_to(copy).as_posix() if changed.is_relative_to(copy) else changed.name
    assert not verdict.ok
    assert any(named in failure for failure in verdict.failures), verdict.failures
    assert sums is None and not report_paths(reports, copy)[1].exists(), "no checksums bless a tampered artifact"
    assert json.loads(report.read_text())["verdict"] == "fail"


def test_a_good_artifact_is_anchored_whole(
    builder: Builder, copy: Path, artifact_project: Project, passing_reports: dict[str, Path]
) -> None:
    """Every byte held to what its freezer makes now (Nuitka's program to its rebuild): the Linux floor is 100 %."""
    verdict = verify(copy, artifact_project.target, run_self_check=False)
    assert verdict.ok, verdict.failures
    coverage = verdict.report["coverage"]
    assert coverage["anchored_share_of_bytes"] == 1.0 and coverage["unanchored"] == [] and coverage["floor"] == 1.0


@pytest.mark.parametrize("builder", ["nuitka"])
def test_without_the_rebuild_the_program_is_unanchored_and_the_rest_held_to_rules(
    builder: Builder, copy: Path, artifact_project: Project
) -> None:
    verdict = verify(copy, artifact_project.target, run_self_check=False, rebuild=False)
    assert verdict.ok, verdict.failures
    coverage = verdict.report["coverage"]
    unanchored = [u.split(":")[0] for u in coverage["unanchored"]]
    # The program, and the licence texts of what it compiled in (a rule cannot tell which distributions).
    assert [u for u in unanchored if not u.startswith("licenses/")] == ["local-notes"]
    assert "licenses/INDEX.txt" in unanchored and not any(u.startswith("licenses/numpy") for u in unanchored)
    assert coverage["floor"] < coverage["anchored_share_of_bytes"] < 1.0


@pytest.mark.parametrize("builder", ["pyinstaller", "nuitka"])
def test_the_command_line_says_no_in_lines_never_a_traceback(
    builder: Builder, copy: Path, artifact_project: Project, passing_reports: dict[str, Path], tmp_path: Path
) -> None:
    """The release engineer's view: exit 1, ERROR lines naming the file, and the earlier pass gone."""
    reports = tmp_path / "reports"
    plant_pass(passing_reports[copy.name], copy, reports)
    symlink_loop(copy, artifact_project)
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "verify_artifact.py"), str(copy), "--reports", str(reports),
         "--static-only"],
        cwd=artifact_project.root, env=child_env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "loop.so was not collected by the freezer (an extra file: it is a symlink loop" in result.stderr
    assert not report_paths(reports, copy)[1].exists()


@pytest.mark.parametrize("builder", ["pyinstaller"])
def test_two_verifies_of_one_artifact_take_turns(
    builder: Builder, copy: Path, artifact_project: Project, tmp_path: Path
) -> None:
    """A second run waits for the first to finish, then removes, checks and writes its own whole."""
    from filelock import FileLock

    reports = tmp_path / "reports"
    reports.mkdir()
    waiting = threading.Event()
    written: list[tuple[Verdict, Path, Path | None]] = []
    other_run = FileLock(reports / f".{copy.name}.verify.lock")
    with other_run:

        def second() -> None:
            run = lambda dist: verify(dist, artifact_project.target, run_self_check=False)  # noqa: E731
            written.append(publish(copy, reports, run, log=lambda line: waiting.set()))

        writer = threading.Thread(target=second)
        writer.start()
        assert waiting.wait(timeout=120), "the second run never said it waits"
        assert not list(reports.glob(f"{copy.name}.*")), "nothing written while the other run holds the lock"
    writer.join(timeout=600)
    _, report, sums = written[0]
    assert json.loads(report.read_text())["verdict"] == "pass" and sums is not None and sums.is_file()


@pytest.fixture(params=["pyinstaller", "nuitka"])
def builder(request: pytest.FixtureRequest) -> Builder:
    return request.param  # type: ignore[no-any-return]
