"""Shared fixtures: an isolated environment, the fixture model repos and the loopback hub."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from devtools.demo_project import Project
from build_hooks.verification.lock import WHEELHOUSE_ENV
from devtools.fixture_model import FixtureSpec, fixture_files
from devtools.loopback_hub import LoopbackHub, serve_hub
from tests.support import LEAKY_ENV, REPO_ID, REPO_ROOT, REVISION_A, REVISION_B, WHEELHOUSE


def pytest_configure(config: pytest.Config) -> None:
    # huggingface_hub reads its cache location once, at import: isolate it before that.
    home = Path(config.rootpath) / ".pytest_cache" / "hf-home"
    os.environ["HF_HOME"] = str(home)
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    for name in LEAKY_ENV:
        os.environ.pop(name, None)
    # The files uv.lock pins, fetched by `nox -s tests` before pytest: verify's anchors, offline here.
    os.environ[WHEELHOUSE_ENV] = str(WHEELHOUSE)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in LEAKY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(REPO_ROOT)


@pytest.fixture(scope="session")
def repo_files_a() -> dict[str, bytes]:
    """The fixture repo at REVISION_A (seed 1)."""
    return fixture_files(FixtureSpec(seed=1))


@pytest.fixture(scope="session")
def repo_files_b() -> dict[str, bytes]:
    """The fixture repo at REVISION_B (seed 2): same layout, other weights."""
    return fixture_files(FixtureSpec(seed=2))


@pytest.fixture
def hub(repo_files_a: dict[str, bytes], repo_files_b: dict[str, bytes]) -> Iterator[LoopbackHub]:
    """A loopback hub serving REPO_ID at both revisions, with an empty log and no faults."""
    with serve_hub() as server:
        server.add_repo(REPO_ID, REVISION_A, repo_files_a)
        server.add_repo(REPO_ID, REVISION_B, repo_files_b)
        yield server


@pytest.fixture(scope="session")
def artifact_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A prepared and warmed project built from the 768-wide fixture model, shared by the run."""
    from tests.artifacts import artifact_files, make_project

    return make_project(tmp_path_factory.mktemp("artifact-project"), artifact_files())


@pytest.fixture(scope="session")
def foreign_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The foreign app, prepared, warmed and built with PyInstaller from its own folder (shared)."""
    from devtools.foreign_project import make_foreign_project, step_arguments
    from tests.support import pipeline

    root = make_foreign_project(tmp_path_factory.mktemp("foreign") / "pocket-search")
    for step, extra in step_arguments(root).items():
        result = pipeline(root, step, *extra)
        assert result.returncode == 0, result.stderr[-2000:]
    built = pipeline(root, "build-pyinstaller")
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    return root


@pytest.fixture(scope="session")
def pyinstaller_artifact(artifact_project: Project) -> Path:
    """The PyInstaller onedir artifact, built once per test run by the build-pyinstaller step."""
    from tests.artifacts import run_step

    result = run_step(artifact_project, "build_pyinstaller.py")
    assert result.returncode == 0, result.stderr[-3000:]
    return artifact_project.pyinstaller_artifact


@pytest.fixture(scope="session")
def nuitka_artifact(artifact_project: Project) -> Path:
    """The Nuitka standalone artifact, built once per test run (minutes: ccache helps reruns)."""
    from tests.artifacts import run_nuitka

    result = run_nuitka(artifact_project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return artifact_project.nuitka_artifact


# -- opt-in: tests that run verify on an emulated CPU (nox -s canary-cpus runs them) ---------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-emulated",
        action="store_true",
        help="also run the tests marked emulated (verify under qemu-user as another CPU; slow, needs qemu-user)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``emulated`` are opt-in: `nox -s canary-cpus` (which installs qemu-user) runs them."""
    if config.getoption("--run-emulated"):
        return
    kept = [item for item in items if item.get_closest_marker("emulated") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
