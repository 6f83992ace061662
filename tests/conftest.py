"""Shared fixtures: an isolated environment, the fixture model repos and the loopback hub."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.artifacts import Project
from tests.fixture_model import FixtureSpec, fixture_files
from tests.loopback_hub import LoopbackHub, serve_hub

REPO_ROOT = Path(__file__).resolve().parent.parent
NETGUARD = Path(__file__).resolve().parent / "netguard"
REPO_ID = "acme/tiny-embedder"
REVISION_A = "a" * 8 + "0123456789abcdef0123456789abcdef"
REVISION_B = "b" * 8 + "0123456789abcdef0123456789abcdef"
PROFILE_ID = "local-text-retrieval-v1"
# Environment that would let a test leak into (or read from) the developer's setup.
_LEAKY_ENV = (
    "HF_ENDPOINT",
    "HF_TOKEN",
    "HF_HUB_OFFLINE",
    "HF_HUB_CACHE",
    "EMBEDDING_MODEL_REPO",
    "EMBEDDING_MODEL_REVISION",
    "EMBEDDING_MODEL_PROFILE_ID",
    "EMBEDDING_MODEL_ENDPOINTS",
)


def pytest_configure(config: pytest.Config) -> None:
    # huggingface_hub reads its cache location once, at import: isolate it before that.
    home = Path(config.rootpath) / ".pytest_cache" / "hf-home"
    os.environ["HF_HOME"] = str(home)
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    for name in _LEAKY_ENV:
        os.environ.pop(name, None)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _LEAKY_ENV:
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


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a child process: loopback-only network, isolated hub cache."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV and not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(NETGUARD), str(REPO_ROOT)])
    env.update(extra or {})
    return env


def run_prepare_cli(args: list[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run scripts/prepare_embedding_model.py as a user would, in a loopback-only child."""
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "prepare_embedding_model.py"), *args],
        cwd=REPO_ROOT,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def artifact_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A prepared and warmed project built from the 768-wide fixture model, shared by the run."""
    from tests.artifacts import artifact_files, make_project  # it imports this module

    return make_project(tmp_path_factory.mktemp("artifact-project"), artifact_files())


@pytest.fixture(scope="session")
def pyinstaller_artifact(artifact_project: Project) -> Path:
    """The PyInstaller onedir artifact, built once per test run."""
    from tests.artifacts import run_pyinstaller

    result = run_pyinstaller(artifact_project)
    assert result.returncode == 0, result.stderr[-3000:]
    return artifact_project.pyinstaller_artifact


@pytest.fixture(scope="session")
def nuitka_artifact(artifact_project: Project) -> Path:
    """The Nuitka standalone artifact, built once per test run (minutes: ccache helps reruns)."""
    from tests.artifacts import run_nuitka

    result = run_nuitka(artifact_project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return artifact_project.nuitka_artifact
