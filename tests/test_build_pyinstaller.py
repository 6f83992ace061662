"""build-pyinstaller: the real artifact, run offline from another folder, and every refusal."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from build_hooks.freezing.content import preflight_problems
from build_hooks.freezing.target import manifest_path, sbom_path
from build_hooks.verification.selfcheck import run_offline
from devtools.demo_project import ARTIFACT_REPO, ARTIFACT_REVISION, PROFILE_ID, Project
from embedding_runtime import _completeness
from embedding_runtime.build_api import BUILD_INFO_FILE, PROBE_RECORD_FILE, data_path, sha256_file
from tests.artifacts import copy_project, damaged, run_pyinstaller, run_step, self_check_elsewhere, source_vectors
from tests.support import REPO_ROOT, child_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # a cold Nuitka build alone takes ~5 min


@pytest.fixture(scope="module")
def self_check(pyinstaller_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The artifact copied elsewhere and run with only PATH, an empty HOME and no network."""
    return self_check_elsewhere(
        pyinstaller_artifact, tmp_path_factory.mktemp("elsewhere"), tmp_path_factory.mktemp("home")
    )


def test_artifact_uses_its_bundled_profile(self_check: dict[str, object]) -> None:
    folder = self_check["folder"]
    assert isinstance(folder, dict) and folder["kind"] == "bundled"
    assert str(folder["path"]).startswith(str(self_check["_moved_to"]))
    assert "_internal" in str(folder["path"]), "PyInstaller 6 keeps data under _internal/"
    assert self_check["network_connections_attempted"] == []
    assert self_check["disabled_reason"] is None


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_artifact_vectors_match_the_source_runtime(
    self_check: dict[str, object], artifact_project: Project, variant: str
) -> None:
    vectors = self_check["vectors"]
    assert isinstance(vectors, dict) and variant in vectors
    frozen = np.array(vectors[variant], dtype=np.float32)
    source = source_vectors(artifact_project, variant)
    cosine = (frozen * source).sum(axis=1) / np.linalg.norm(frozen, axis=1) / np.linalg.norm(source, axis=1)
    assert cosine.min() >= 0.9999, cosine


def test_artifact_counts_tokens_from_its_bundled_cache(
    self_check: dict[str, object], artifact_project: Project
) -> None:
    # The source-side count: real tiktoken on the same cache, in a loopback-only child.
    code = (
        "import json, tiktoken\n"
        "from embedding_runtime._artifact import SELF_CHECK_TEXTS\n"
        "enc = tiktoken.get_encoding('o200k_base')\n"
        "print(json.dumps([len(enc.encode(t)) for t in SELF_CHECK_TEXTS]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env({"TIKTOKEN_CACHE_DIR": str(artifact_project.tiktoken_cache)}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert self_check["token_counts"] == {"o200k_base": json.loads(result.stdout)}
    tiktoken_report = self_check["tiktoken"]
    assert isinstance(tiktoken_report, dict) and tiktoken_report["ok"]


def test_artifact_carries_the_model_notice_and_provenance(pyinstaller_artifact: Path) -> None:
    data = pyinstaller_artifact / "_internal" / "data"
    notice = (data / "MODEL-NOTICE.txt").read_text()
    assert ARTIFACT_REPO in notice and ARTIFACT_REVISION in notice and "CC-BY-NC-4.0" in notice
    info = json.loads((data / "build-info.json").read_text())
    assert info["model"] == {"repo": ARTIFACT_REPO, "revision": ARTIFACT_REVISION, "license": "CC-BY-NC-4.0"}
    assert info["variants"] == ["fp32", "int8"] and info["builder"] == "pyinstaller"


def test_build_and_test_tools_are_left_out(pyinstaller_artifact: Path) -> None:
    internal = pyinstaller_artifact / "_internal"
    assert (internal / "numpy").is_dir()
    shipped = [name for name in ("numpy/f2py", "numpy/testing", "yaml", "setuptools") if (internal / name).exists()]
    assert shipped == []


def test_only_the_profile_is_bundled_not_the_prepare_working_files(pyinstaller_artifact: Path) -> None:
    models = pyinstaller_artifact / "_internal" / "data" / "embedding_models"
    assert [p.name for p in models.iterdir()] == [PROFILE_ID]


def test_each_python_keeps_its_own_pyinstaller_work_folder(
    artifact_project: Project, pyinstaller_artifact: Path
) -> None:
    """PyInstaller's incremental check kept a PYZ another Python made (its toc matched): the 3.12 build
    after a 3.11 one failed at launch with "Python magic pattern mismatch!". The suite's work folder is
    the interpreter's own, so a build never meets another Python's archive."""
    work = artifact_project.root / "build" / "pyinstaller"
    (pyz,) = work.rglob("PYZ-00.pyz")
    assert pyz.relative_to(work).parts[0] == sys.implementation.cache_tag
    with pyz.open("rb") as archive:
        assert archive.read(8)[4:8] == importlib.util.MAGIC_NUMBER, "the PYZ holds this Python's bytecode"


# -- refusals -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing sidecar", "model_quantized.onnx_data is missing"),
        ("empty profile", "is incomplete (no valid .prepared.json)"),
        ("flipped byte", "does not match its sha256"),
        ("tiktoken missing", "tiktoken cache: "),
        ("tiktoken tampered", "sha256 is"),
        ("other pin", "not the pinned"),
    ],
)
def test_spec_refuses_before_analysis(artifact_project: Project, tmp_path: Path, damage: str, message: str) -> None:
    project = damaged(artifact_project, tmp_path, damage)
    result = run_pyinstaller(project)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert any(message in line for line in errors), result.stderr[-2000:]
    assert not list((project.root / "build" / "pyinstaller").rglob("Analysis-00.toc")), "analysis had started"
    assert not project.pyinstaller_artifact.exists()


def test_spec_refuses_weights_without_onnxruntime(artifact_project: Project, tmp_path: Path) -> None:
    """A shadowing onnxruntime that cannot be imported stands for an environment without it."""
    broken = tmp_path / "broken-site"
    (broken / "onnxruntime").mkdir(parents=True)
    (broken / "onnxruntime" / "__init__.py").write_text("raise ImportError('onnxruntime is not installed here')\n")
    project = copy_project(artifact_project, tmp_path / "project")
    result = run_pyinstaller(project, {"PYTHONPATH": os.pathsep.join([str(broken), str(REPO_ROOT)])})
    assert result.returncode != 0
    assert "is present but onnxruntime cannot be collected" in result.stderr
    assert not project.pyinstaller_artifact.exists()


def test_preflight_accepts_the_prepared_project_without_hashing_it(
    artifact_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[str] = []

    def counted(path: Path) -> str:
        hashed.append(path.name)
        return sha256_file(path)

    monkeypatch.setattr(_completeness, "sha256_file", counted)
    assert preflight_problems(artifact_project.target) == []
    assert not {"model.onnx_data", "model_quantized.onnx_data"} & set(hashed), "files as prepared are not re-read"


def test_a_change_preflight_cannot_see_fails_the_build_by_the_copy_check(
    artifact_project: Project, tmp_path: Path
) -> None:
    """Same size, same mtime, other bytes: the build hashes what it ships and refuses the dist."""
    project = copy_project(artifact_project, tmp_path / "project")
    target = project.profile / "onnx" / "model.onnx_data"
    before = target.stat()
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    result = run_pyinstaller(project)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert f"data/embedding_models/{PROFILE_ID}/onnx/model.onnx_data is not the plan's" in errors[0]
    assert "size or sha256 differs" in errors[0] and errors[0].endswith("(the build was removed)")
    assert not project.pyinstaller_artifact.exists(), "nothing that failed its checks stays where an artifact goes"
    assert not manifest_path(project.pyinstaller_artifact).exists()


def test_build_without_vectors_is_an_explicit_choice_the_artifact_reports(
    artifact_project: Project, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    project = copy_project(artifact_project, tmp_path / "project")
    shutil.rmtree(project.models)
    refused = run_pyinstaller(project)
    assert refused.returncode != 0 and "EMBEDDING_PIPELINE_WITHOUT_VECTORS=1" in refused.stderr
    built = run_pyinstaller(project, {"EMBEDDING_PIPELINE_WITHOUT_VECTORS": "1"})
    assert built.returncode == 0, built.stderr[-2000:]
    artifact = project.pyinstaller_artifact
    assert not (artifact / "_internal" / "data" / "embedding_models").exists()
    result = run_offline(artifact / "local-notes", ["--self-check"], tmp_path_factory.mktemp("home"))
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["disabled_reason"] == "built_without_vectors"
    assert report["vectors"] == {} and report["tiktoken"]["ok"]


def data_and_runtime(manifest: dict[str, dict[str, object]], root: str) -> dict[str, object]:
    """The manifest's entries for data/ and the vendored runtime, keyed below the data root."""
    prefixes = (f"{root}data/", f"{root}embedding_runtime/")
    return {k.removeprefix(root): v["sha256"] for k, v in manifest.items() if k.startswith(prefixes)}


def test_two_builds_from_the_same_inputs_are_identical(
    artifact_project: Project, pyinstaller_artifact: Path, nuitka_artifact: Path, tmp_path: Path
) -> None:
    """PyInstaller rebuilt from a copy of the project in another folder gives the same bytes, the probe
    record included, and byte-identical records: the manifest (its sources relative to the project) and
    the SBOM (its time the app's commit's); the Nuitka build's data/ differs only in build-info.json."""
    project = copy_project(artifact_project, tmp_path / "project")
    rebuilt = run_step(project, "build_pyinstaller.py")
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    for record in (manifest_path, sbom_path):
        assert record(pyinstaller_artifact).read_bytes() == record(project.pyinstaller_artifact).read_bytes(), record
    first = json.loads(manifest_path(pyinstaller_artifact).read_text())["files"]
    second = json.loads(manifest_path(project.pyinstaller_artifact).read_text())["files"]
    assert {k: v["sha256"] for k, v in first.items()} == {k: v["sha256"] for k, v in second.items()}
    assert f"_internal/{data_path(PROBE_RECORD_FILE)}" in first
    nuitka = json.loads(manifest_path(nuitka_artifact).read_text())["files"]
    pyinstaller_data = {k: v for k, v in data_and_runtime(first, "_internal/").items() if k.startswith("data/")}
    nuitka_data = {k: v for k, v in data_and_runtime(nuitka, "").items() if k.startswith("data/")}
    differing = {
        k for k in pyinstaller_data.keys() | nuitka_data.keys() if pyinstaller_data.get(k) != nuitka_data.get(k)
    }
    assert differing == {data_path(BUILD_INFO_FILE)}
