"""verify-artifact: the built artifacts pass, and each way of breaking one is caught by name."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from build_hooks.freezing.content import MODEL_NOTICE_FILE
from build_hooks.freezing.target import Target, manifest_path
from build_hooks.verification.selfcheck import placement_problems, run_offline
from build_hooks.verification.verify import locate, publish, verify
from devtools.demo_project import ARTIFACT_SPEC, PROFILE_ID, Project
from devtools.fixture_model import fixture_files
from embedding_runtime.build_api import MARKER_NAME, MODELS_FOLDER, TIKTOKEN_FOLDER, data_path
from tests.artifacts import linked_copy
from tests.support import REPO_ROOT, child_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # a cold Nuitka build alone takes ~5 min
O200K_FILE = "fb374d419588a4632f3f557e76b4b70aebbca790"
PROFILE_DATA = "_internal/" + data_path(MODELS_FOLDER, PROFILE_ID)


def replace_file(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def run_verify(project: Project, *dists: Path, reports: Path) -> subprocess.CompletedProcess[str]:
    """`nox -s verify-artifact`'s command, from the project folder."""
    return subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "verify_artifact.py"),
            *map(str, dists),
            "--reports",
            str(reports),
        ],
        cwd=project.root,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_nightly_artifacts_pass_with_reports_and_checksums(
    artifact_project: Project, pyinstaller_artifact: Path, nuitka_artifact: Path, tmp_path: Path
) -> None:
    """The last step of the nightly, over both artifacts the earlier steps built."""
    result = run_verify(artifact_project, pyinstaller_artifact, nuitka_artifact, reports=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    floor = artifact_project.target.config.int8_min_cosine
    assert "PASS" in result.stdout and "FAIL" not in result.stdout
    for name in ("local-notes", "local-notes.dist"):
        report = json.loads((tmp_path / f"{name}.verify.json").read_text())
        assert report["verdict"] == "pass" and report["failures"] == []
        # The floor itself, not this machine's figure: int8 kernels (and so the figure) differ by CPU.
        assert report["int8_vs_fp32"]["min_cosine"] >= floor
        assert all(c >= 0.9999 for c in report["golden_min_cosine"].values())
        sums = (tmp_path / f"{name}.SHA256SUMS").read_text().splitlines()
        assert any(line.endswith(f"data/embedding_models/{PROFILE_ID}/onnx/model.onnx_data") for line in sums)


def test_github_job_summary_is_written(artifact_project: Project, pyinstaller_artifact: Path, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "verify_artifact.py"), str(pyinstaller_artifact),
         "--reports", str(tmp_path), "--static-only"],
        cwd=artifact_project.root, env=child_env({"GITHUB_STEP_SUMMARY": str(summary)}),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "| pyinstaller:local-notes | data | ok (" in summary.read_text()


def break_artifact(dist: Path, how: str, target: Target) -> None:
    artifact = locate(dist, target)
    profile = artifact.data_root / data_path(MODELS_FOLDER, PROFILE_ID)
    if how == "delete a sidecar":
        (profile / "onnx" / "model_quantized.onnx_data").unlink()
    elif how == "truncate a file":
        victim = profile / "onnx" / "model.onnx_data"
        replace_file(victim, victim.read_bytes()[:-4096])
    elif how == "flip one byte":
        victim = profile / "tokenizer.json"
        data = bytearray(victim.read_bytes())
        data[100] ^= 0x01
        replace_file(victim, bytes(data))
    elif how == "drop the tiktoken blob":
        (artifact.data_root / data_path(TIKTOKEN_FOLDER, O200K_FILE)).unlink()
    elif how == "remove the runtime package":
        shutil.rmtree(artifact.data_root / "embedding_runtime")


@pytest.mark.parametrize(
    ("how", "messages"),
    [
        (
            "delete a sidecar",
            [f"data: {PROFILE_DATA}/onnx/model_quantized.onnx_data is missing from _internal/data/", "self-check"],
        ),
        ("truncate a file", [f"data: {PROFILE_DATA}/onnx/model.onnx_data is not the plan's (size or sha256 differs"]),
        ("flip one byte", [f"data: {PROFILE_DATA}/tokenizer.json is not the plan's"]),
        (
            "drop the tiktoken blob",
            [f"data: _internal/data/tiktoken_cache/{O200K_FILE} is missing from _internal/data/", "token counts"],
        ),
        ("remove the runtime package", ["runtime package: vendored runtime module embedding_runtime/__init__.pyc"]),
    ],
)
def test_broken_artifacts_are_caught_by_name(
    artifact_project: Project, pyinstaller_artifact: Path, tmp_path: Path, how: str, messages: list[str]
) -> None:
    dist = linked_copy(pyinstaller_artifact, tmp_path / "local-notes")
    break_artifact(dist, how, artifact_project.target)
    verdict = verify(dist, artifact_project.target)
    assert not verdict.ok
    text = "\n".join(verdict.failures)
    for message in messages:
        assert message in text, text
    assert dict(verdict.checks)["executable"] == "ok"


def test_scrambled_quantized_model_is_caught(
    artifact_project: Project, pyinstaller_artifact: Path, tmp_path: Path
) -> None:
    """A quantized file that loads and returns unit vectors, but from the wrong weights, and whose
    bundled .prepared.json was made to agree: only comparing vectors can tell."""
    dist = linked_copy(pyinstaller_artifact, tmp_path / "local-notes")
    profile = locate(dist, artifact_project.target).data_root / data_path(MODELS_FOLDER, PROFILE_ID)
    other = fixture_files(type(ARTIFACT_SPEC)(seed=99, hidden=768, heads=12, ffn=768))
    for name in ("onnx/model_quantized.onnx", "onnx/model_quantized.onnx_data"):
        replace_file(profile / name, other[name])
    marker = json.loads((profile / MARKER_NAME).read_text())

    for name in ("onnx/model_quantized.onnx", "onnx/model_quantized.onnx_data"):
        marker["files"][name] = {
            "size": len(other[name]),
            "sha256": hashlib.sha256(other[name]).hexdigest(),
            "mtime_ns": 0,
        }
    replace_file(profile / MARKER_NAME, json.dumps(marker).encode())
    verdict = verify(dist, artifact_project.target)
    text = "\n".join(verdict.failures)
    assert "int8 vs fp32: int8 agrees with fp32 at min cosine" in text and "computes garbage" in text
    assert "golden vectors: int8 vectors differ from the source runtime's" in text


def test_an_app_data_override_cannot_shadow_the_bundle(
    artifact_project: Project, pyinstaller_artifact: Path, tmp_path: Path
) -> None:
    """An override planted in the user's real app-data would win at run time; verify runs with an
    empty HOME so it judges the bundle itself, and a self-check that used an override fails."""
    home = tmp_path / "home"
    override = home / ".local" / "share" / "local-notes" / "embedding_models" / PROFILE_ID
    shutil.copytree(artifact_project.profile, override)
    shadowed = run_offline(pyinstaller_artifact / "local-notes", ["--self-check"], home)
    assert json.loads(shadowed.stdout)["folder"]["kind"] == "override", "the plant shadows the bundle at run time"

    verdict = verify(pyinstaller_artifact, artifact_project.target)
    assert verdict.ok, verdict.failures
    assert verdict.report["self_check"]["folder"]["kind"] == "bundled"

    report = json.loads(shadowed.stdout)
    problems = placement_problems(report, pyinstaller_artifact, artifact_project.target)
    assert any("used override folder" in p and "not the artifact's bundled profile" in p for p in problems)


def test_no_artifact_says_which_step_builds_one(artifact_project: Project, tmp_path: Path) -> None:
    empty = tmp_path / "project"
    empty.mkdir()
    shutil.copy(artifact_project.root / "pyproject.toml", empty / "pyproject.toml")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "verify_artifact.py")],
        cwd=empty, env=child_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and "run `nox -s build-nuitka` or `nox -s build-pyinstaller` first" in result.stderr


def flip_middle_byte(target: Path) -> None:
    content = bytearray(target.read_bytes())
    content[len(content) // 2] ^= 0x01
    replace_file(target, bytes(content))


def tamper(dist: Path, how: str, target: Target) -> str:
    """Change the artifact after its build in one of the ways verify once let pass; the file it names."""
    data = locate(dist, target).data_root
    flips = {
        "flip a byte in onnxruntime's library": lambda: next(dist.rglob("onnxruntime_pybind11_state*.so")),
        "change a vendored runtime .pyc": lambda: data / "embedding_runtime" / "_vectors.pyc",
        "flip a byte in the executable": lambda: locate(dist, target).executable,
    }
    if how in flips:
        victim = flips[how]()
        flip_middle_byte(victim)
    elif how == "drop a .py into data/":
        victim = data / data_path("sitecustomize.py")
        victim.write_text("print('hello')\n")
    elif how == "relicense the model notice":
        victim = data / data_path(MODEL_NOTICE_FILE)
        replace_file(victim, victim.read_text().replace("CC-BY-NC-4.0", "MIT").encode())
    else:  # remove a native library
        victim = next(p for p in sorted(dist.rglob("*.so*")) if p.is_file() and "onnxruntime" not in p.name)
        victim.unlink()
    return victim.relative_to(dist).as_posix()


@pytest.mark.parametrize(
    "how",
    [
        "flip a byte in onnxruntime's library",
        "change a vendored runtime .pyc",
        "drop a .py into data/",
        "relicense the model notice",
        "flip a byte in the executable",
        "remove a native library",
    ],
)
def test_any_change_after_the_build_fails_verify_naming_the_file(
    artifact_project: Project, pyinstaller_artifact: Path, tmp_path: Path, how: str
) -> None:
    dist = linked_copy(pyinstaller_artifact, tmp_path / "local-notes")
    changed = tamper(dist, how, artifact_project.target)
    verdict = verify(dist, artifact_project.target, run_self_check=False)
    assert not verdict.ok
    assert any(changed in failure for failure in verdict.failures), verdict.failures


def test_sha256sums_come_from_the_build_manifest_in_sha256sum_format(
    artifact_project: Project, pyinstaller_artifact: Path, tmp_path: Path
) -> None:
    verdict, _, sums = publish(
        pyinstaller_artifact,
        tmp_path,
        lambda dist: verify(dist, artifact_project.target, run_self_check=False),
    )
    assert verdict.ok, verdict.failures
    assert sums is not None, "a passing artifact has its checksums"
    result = subprocess.run(
        ["sha256sum", "--check", "--quiet", str(sums)], cwd=pyinstaller_artifact.parent, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    recorded = json.loads(manifest_path(pyinstaller_artifact).read_text())["files"]
    assert len(sums.read_text().splitlines()) == len(recorded) > 100
