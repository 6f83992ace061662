"""Rebuilds are skipped only when nothing that goes into the artifact changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from build_hooks.build_stamp import inputs_digest, is_up_to_date, write_stamp
from build_hooks.bundle import plan_for
from build_hooks.config import load_config
from build_hooks.model_profile import LocalFolderSource, PrepareRequest, prepare_profile
from devtools.demo_project import ARTIFACT_REPO, ARTIFACT_REVISION, PROFILE_ID, Project, write_local_dir_metadata
from embedding_runtime._layout import MARKER_NAME
from tests.artifacts import copy_project


def test_digest_follows_every_input(artifact_project: Project, tmp_path: Path) -> None:
    project = copy_project(artifact_project, tmp_path / "p")
    plan = plan_for(load_config(project.root / "pyproject.toml"), env={})
    first = inputs_digest(plan, "nuitka", ["--standalone"])
    assert inputs_digest(plan, "nuitka", ["--standalone"]) == first
    assert inputs_digest(plan, "pyinstaller", ["--standalone"]) != first
    assert inputs_digest(plan, "nuitka", ["--standalone", "--lto=yes"]) != first
    marker = json.loads((project.profile / MARKER_NAME).read_text())
    marker["source"] = "elsewhere"
    (project.profile / MARKER_NAME).write_text(json.dumps(marker))
    assert inputs_digest(plan, "nuitka", ["--standalone"]) != first


def test_stamp_needs_the_artifact_and_the_same_digest(tmp_path: Path) -> None:
    dist = tmp_path / "app.dist"
    assert not is_up_to_date(dist, "abc")
    dist.mkdir()
    write_stamp(dist, "abc")
    assert is_up_to_date(dist, "abc") and not is_up_to_date(dist, "abd")
    shutil.rmtree(dist)
    assert not is_up_to_date(dist, "abc"), "a deleted artifact is rebuilt even with its stamp left"


def test_demo_model_source_passes_the_air_gapped_checks(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    source = tmp_path / "source"
    for name, data in repo_files_a.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    write_local_dir_metadata(source, ARTIFACT_REVISION)
    request = PrepareRequest(
        ARTIFACT_REPO, ARTIFACT_REVISION, PROFILE_ID, tmp_path / "out", ("fp32", "int8"),
        (LocalFolderSource(source, ARTIFACT_REPO, ARTIFACT_REVISION),),
    )  # fmt: skip
    assert prepare_profile(request).changed
