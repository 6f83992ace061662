"""The nightly workflow, checked offline: pin source, sessions, matrix, cache keys, permissions."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from build_hooks.config import load_config
from build_hooks.freezing.target import sbom_path, target_for
from build_hooks.verification.verify import locate
from build_hooks.versions import locked_packages, suite_version
from devtools.demo_project import Project
from devtools.workflow_runner import LocalRunner, WorkflowError, github_format, runner_environ
from tests.artifacts import linked_copy
from tests.support import REPO_ROOT, child_env

# The reusable pipeline (what runs) and this repository's nightly (what calls it).
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "embedding-pipeline.yml"
CALLER = REPO_ROOT / ".github" / "workflows" / "build-desktop.yml"
STEP_SESSIONS = [
    "prepare-model", "warm-tiktoken", "build-nuitka", "build-pyinstaller", "verify-artifact", "archive-artifact"
]  # fmt: skip


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return dict(yaml.safe_load(WORKFLOW.read_text()))


def job(workflow: Mapping[str, Any]) -> dict[str, Any]:
    return dict(workflow["jobs"]["build"])


def triggers(workflow: Mapping[str, Any]) -> dict[str, Any]:
    return dict(workflow["on"] if "on" in workflow else workflow[True])  # type: ignore[index]  # YAML 1.1: `on`


def test_the_nightly_calls_the_reusable_pipeline_with_every_input(workflow: Mapping[str, Any]) -> None:
    """build-desktop.yml is what another repository writes: a call with the app's inputs."""
    caller = yaml.safe_load(CALLER.read_text())
    call = job(caller)
    assert call["uses"] == "./.github/workflows/embedding-pipeline.yml"
    inputs = triggers(workflow)["workflow_call"]["inputs"]
    assert set(inputs) == {"python-version", "python-versions", "os-list", "revision", "skip-nuitka"}
    assert set(call["with"]) <= set(inputs) and {"revision", "skip-nuitka"} <= set(call["with"])
    assert call["secrets"] == {"HF_TOKEN": "${{ secrets.HF_TOKEN }}"}
    assert set(triggers(workflow)["workflow_call"]["secrets"]) == {"HF_TOKEN"}
    # A called workflow gets no more than its caller grants: the attestation needs these.
    assert call["permissions"] == job(workflow)["permissions"]
    # The nightly's Python axis: the app's 3.11 and the newest, 3.13 (python-version stays for one).
    assert json.loads(call["with"]["python-versions"]) == ["3.11", "3.13"]
    assert "python-version" not in call["with"]
    assert re.fullmatch(r"3\.11\.\d+", inputs["python-version"]["default"])
    assert inputs["python-versions"]["default"] == "[]"


def test_every_job_builds_with_the_matrix_python_whatever_the_app_names(
    workflow: Mapping[str, Any], tmp_path: Path
) -> None:
    """One axis: python-versions when given, else [python-version]; nox is forced to it (NOXFORCEPYTHON),
    setup-python installs it, and every name that must differ per Python says it."""
    runner = LocalRunner(REPO_ROOT, {}, tmp_path)
    for each in workflow["jobs"].values():
        axis = each["strategy"]["matrix"]["python"]
        for given, expected in (
            ({"python-versions": "[]", "python-version": "3.11.9"}, ["3.11.9"]),
            ({"python-versions": '["3.11", "3.13"]', "python-version": "3.11.9"}, ["3.11", "3.13"]),
        ):
            assert runner.evaluate(axis, {"inputs": given}) == expected
        assert each["env"]["NOXFORCEPYTHON"] == "${{ matrix.python }}"
        setup = [s for s in each["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
        assert [s["with"]["python-version"] for s in setup] == ["${{ matrix.python }}"]
        assert "matrix.python" in each["name"]
    (reports,) = [s for s in uploads(workflow) if "archive" not in s["with"]]
    assert "matrix.python" in reports["with"]["name"]


def test_the_nightly_builds_on_linux_arm64_and_says_why_not_on_windows_arm64(workflow: Mapping[str, Any]) -> None:
    text = CALLER.read_text()
    call = job(yaml.safe_load(text))
    runners = json.loads(call["with"]["os-list"])
    default = json.loads(triggers(workflow)["workflow_call"]["inputs"]["os-list"]["default"])
    assert set(runners) == set(default) | {"ubuntu-24.04-arm"}, "the nightly: every default runner and Linux arm64"
    assert "windows-11-arm" not in runners
    assert re.search(r"windows-11-arm is left out: tiktoken [\d.]+ \(locked\) publishes no win_arm64 wheel", text)
    tiktoken = next(p for p in locked_packages(REPO_ROOT / "uv.lock") or [] if p["name"] == "tiktoken")
    assert f"tiktoken {tiktoken['version']} (locked)" in text, "the comment names the locked version"
    assert tiktoken.get("wheels") and not any("win_arm64" in wheel["url"] for wheel in tiktoken["wheels"])
    onnxruntime = next(p for p in locked_packages(REPO_ROOT / "uv.lock") or [] if p["name"] == "onnxruntime")
    assert any("win_arm64" in wheel["url"] for wheel in onnxruntime["wheels"]), "the comment's other claim"


def test_pin_comes_from_pyproject_only() -> None:
    text = WORKFLOW.read_text()
    table = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["embedding-pipeline"]
    assert table["revision"] not in text and table["repo"] not in text, "the pin is written in one place"
    # No commit anywhere but the actions' own pins.
    assert not re.search(r"\b[0-9a-f]{40}\b", re.sub(r"uses: \S+@[0-9a-f]{40} # v[\d.]+", "", text))


# A remote action, pinned to a commit, with the release it is as a comment: `uses: owner/name@<sha> # v1.2.3`.
PINNED_USES = re.compile(r"uses: (?P<action>[\w.-]+/[\w.-]+)@(?P<ref>\S+)(?: # v(?P<version>\d+(?:\.\d+)*))?")


def action_versions(path: Path) -> dict[str, set[int]]:
    """The major release of each remote action ``path`` uses (one each, or the set shows two)."""
    found: dict[str, set[int]] = {}
    for match in PINNED_USES.finditer(path.read_text()):
        assert re.fullmatch(r"[0-9a-f]{40}", match["ref"]) and match["version"], f"{path.name}: {match[0]}"
        found.setdefault(match["action"], set()).add(int(match["version"].split(".")[0]))
    return found


def test_every_action_is_pinned_to_a_commit_with_its_release_named() -> None:
    """A tag moves; a commit does not (zizmor's unpinned-uses, in `nox -s lint`, holds the same)."""
    versions = {path.name: action_versions(path) for path in sorted(WORKFLOW.parent.glob("*.yml"))}
    assert versions["embedding-pipeline.yml"]["actions/upload-artifact"] == {7}, "archive: false needs v7"
    assert versions["embedding-pipeline.yml"]["actions/download-artifact"] == {8}, "skip-decompress needs v8"
    assert versions["release.yml"]["pypa/gh-action-pypi-publish"] == {1}
    assert all(len(majors) == 1 for actions in versions.values() for majors in actions.values()), versions


def test_no_workflow_holds_python_of_its_own() -> None:
    """The workflows run commands; the suite holds the logic (ci-outputs reads the table and the lock)."""
    for path in sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml")):
        runs = [s.get("run", "") for j in yaml.safe_load(path.read_text())["jobs"].values() for s in j.get("steps", [])]
        inline = [run for run in runs if re.search(r"\bpython3?\b[^\n]*(\s-\s|\s-c\s|<<)", run)]
        assert inline == [], f"{path.name}: {inline}"


def test_dispatch_revision_reaches_every_step_as_its_flag(workflow: Mapping[str, Any]) -> None:
    nightly = triggers(yaml.safe_load(CALLER.read_text()))
    assert "schedule" in nightly and "workflow_dispatch" in nightly
    assert set(nightly["workflow_dispatch"]["inputs"]) == {"revision", "skip-nuitka"}
    steps = {s.get("name"): s for s in job(workflow)["steps"]}
    pin = steps["Read the model pin, the cache paths and the locked versions"]
    assert pin["env"]["REVISION"] == "${{ inputs.revision }}" and '--revision "$REVISION"' in pin["run"]
    for name in STEP_SESSIONS:
        assert steps[name]["env"]["REVISION"] == "${{ steps.pin.outputs.revision }}", name
        assert steps[name]["run"].strip() == f'nox -s {name} -- --revision "$REVISION"', name
    assert "EMBEDDING_MODEL_REVISION" not in WORKFLOW.read_text(), "nothing the plan resolves goes by environment"
    assert steps["build-nuitka"]["if"] == "${{ !inputs.skip-nuitka }}"


def test_every_step_is_its_own_existing_nox_session(workflow: Mapping[str, Any]) -> None:
    import nox.registry

    import noxfile  # noqa: F401 - registers the sessions with nox
    from build_hooks.pipeline_steps import STEPS

    sessions = set(nox.registry.get())
    runs = [s["run"] for s in job(workflow)["steps"] if "nox -s" in s.get("run", "")]
    called = [re.match(r"nox -s ([\w-]+)", run.strip())[1] for run in runs]  # type: ignore[index]
    assert set(called) <= sessions
    assert [c for c in called if c != "ci-outputs"] == STEP_SESSIONS, "one step per session, in pipeline order"
    assert set(called) <= sessions
    assert [step.name for step in STEPS] == STEP_SESSIONS


def test_matrix_covers_windows_macos_both_archs_and_linux(workflow: Mapping[str, Any]) -> None:
    assert job(workflow)["strategy"]["matrix"]["os"] == "${{ fromJSON(inputs.os-list) }}"
    runners = json.loads(triggers(workflow)["workflow_call"]["inputs"]["os-list"]["default"])
    assert {"ubuntu-latest", "windows-latest", "macos-latest", "macos-15-intel"} <= set(runners)
    assert job(workflow)["strategy"]["fail-fast"] is False


def test_permissions_are_least_privilege(workflow: Mapping[str, Any]) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    assert job(workflow)["permissions"] == {"contents": "read", "id-token": "write", "attestations": "write"}
    assert workflow["jobs"]["check-download"]["permissions"] == {"contents": "read", "attestations": "read"}
    for each in workflow["jobs"].values():
        assert each["steps"][0]["with"]["persist-credentials"] is False


def uploads(workflow: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [s for s in job(workflow)["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]


def test_each_archive_is_uploaded_as_one_unzipped_file_and_reports_always(workflow: Mapping[str, Any]) -> None:
    """upload-artifact v7's direct upload: a zip of the folders would drop dotfiles and modes."""
    archives = [s for s in uploads(workflow) if "archive" in s["with"]]
    assert [s["with"]["path"] for s in archives] == [
        "dist/archives/${{ steps.archive.outputs.pyinstaller }}",
        "dist/archives/${{ steps.archive.outputs.nuitka }}",
    ]
    for step in archives:
        assert step["with"]["archive"] is False  # upload-artifact v7 (pinned: see the test above)
        assert step["with"]["if-no-files-found"] == "error"
    (reports,) = [s for s in uploads(workflow) if "archive" not in s["with"]]
    assert reports["if"] == "always()" and reports["with"]["path"] == "dist/*/*.verify.json"


def test_the_download_is_checked_on_a_fresh_runner_of_every_os(workflow: Mapping[str, Any]) -> None:
    check = workflow["jobs"]["check-download"]
    assert check["needs"] == "build" and check["strategy"]["matrix"] == job(workflow)["strategy"]["matrix"]
    downloads = [s for s in check["steps"] if s.get("uses", "").startswith("actions/download-artifact@")]
    assert downloads and all(s["with"]["skip-decompress"] for s in downloads)  # download-artifact v8
    script = "\n".join(str(s.get("run", "")) for s in check["steps"])
    for user_step in ("Expand-Archive", "tar -xzf", "sha256sum -c", "shasum -a 256 -c", "gh attestation verify",
                      "test -x", "sudo unshare -n", "sandbox-exec", "New-NetFirewallRule", "--self-check"):  # fmt: skip
        assert user_step in script, user_step
    assert 'nox -s verify-artifact -- "downloads/$PYINSTALLER_ARCHIVE"' in script
    assert "--no-rebuild" in script and "nox -s prepare-model" in script


def attest_steps(workflow: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [s for s in job(workflow)["steps"] if s.get("uses", "").startswith("actions/attest-build-provenance@")]


@pytest.mark.slow
def test_attestations_cover_every_artifact_file_and_sbom_the_pipeline_writes(
    workflow: Mapping[str, Any],
    artifact_project: Project,
    pyinstaller_artifact: Path,
    nuitka_artifact: Path,
    tmp_path: Path,
) -> None:
    """verify-artifact as the workflow runs it (reports beside each artifact), on copies of both
    artifacts laid out as in the workflow's checkout; then each attest step's inputs, resolved."""
    target = artifact_project.target
    copies = [
        linked_copy(nuitka_artifact, target.dist_dir("nuitka", tmp_path / "dist")),
        linked_copy(pyinstaller_artifact, target.dist_dir("pyinstaller", tmp_path / "dist")),
    ]
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "verify_artifact.py"), *map(str, copies), "--static-only"],
        cwd=artifact_project.root, env=child_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = {"app-name": target.config.app_name}
    steps = attest_steps(workflow)
    checksums = [tmp_path / render(s["with"]["subject-checksums"], outputs, tmp_path) for s in steps[:2]]
    for sums, dist in zip(checksums, copies, strict=True):
        subjects = [line.split("  ", 1)[1] for line in sums.read_text().splitlines()]
        every_file = sorted(p.relative_to(dist.parent).as_posix() for p in dist.rglob("*") if p.is_file())
        assert subjects == every_file, f"{sums.name} names every file of {dist.name}"
    sbom_pattern, archive_pattern = steps[2]["with"]["subject-path"].split()
    assert sorted(tmp_path.glob(sbom_pattern)) == sorted(sbom_path(dist) for dist in copies)
    # archive-artifact as the workflow runs it: its outputs name the archives the upload steps take.
    packed = subprocess.run(
        [sys.executable, "-m", "build_hooks.cli", "archive-artifact", *map(str, copies)],
        cwd=artifact_project.root, env={**child_env(), "GITHUB_OUTPUT": str(tmp_path / "outputs")},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert packed.returncode == 0, packed.stderr
    outputs = dict(line.split("=", 1) for line in (tmp_path / "outputs").read_text().splitlines())
    runner = LocalRunner(artifact_project.root, {}, tmp_path)
    uploaded = [runner.expand(step["with"]["path"], {"steps": {"archive": {"outputs": outputs}}})
                for step in uploads(workflow) if "archive" in step["with"]]  # fmt: skip
    attested = sorted(p.relative_to(artifact_project.root).as_posix()
                      for p in artifact_project.root.glob(archive_pattern))  # fmt: skip
    assert sorted(uploaded) == attested and len(attested) == 2, (uploaded, attested)
    assert steps[0]["if"].endswith("!inputs.skip-nuitka") and "dist/nuitka/" in steps[0]["with"]["subject-checksums"]


# -- the cache keys ---------------------------------------------------------------


def render(template: str, outputs: Mapping[str, str], root: Path) -> str:
    """A step's value with its expressions evaluated as the runner would, for the pin step's ``outputs``."""
    runner = LocalRunner(root, {}, root)
    context = {"steps": {"pin": {"outputs": dict(outputs)}}, "runner": {"os": "Linux"}}
    return str(runner.expand(template, context))


def cache_step(workflow: Mapping[str, Any], name: str) -> dict[str, Any]:
    return dict(next(s for s in job(workflow)["steps"] if s.get("name") == name)["with"])


def run_pin_step(project: Path, revision: str = "") -> subprocess.CompletedProcess[str]:
    """What the pin step runs in ``project`` (``nox -s ci-outputs -- ...``: the suite's command), with the
    workflow's own version."""
    suite = str(yaml.safe_load(WORKFLOW.read_text())["env"]["SUITE_VERSION"])
    command = [sys.executable, "-m", "build_hooks.cli", "ci-outputs", "--revision", revision, "--suite-version", suite]
    env = {k: v for k, v in child_env().items() if k != "GITHUB_OUTPUT"}
    return subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=120, env=env)


def pin_outputs(project: Path, revision: str = "") -> dict[str, str]:
    """The pin step's outputs in ``project``."""
    result = run_pin_step(project, revision)
    assert result.returncode == 0, result.stderr
    return dict(line.split("=", 1) for line in result.stdout.splitlines())


def noxfile_step(project: Path) -> subprocess.CompletedProcess[str]:
    """The step before nox: the noxfile must pin the suite in a PEP 723 block (bash, as the runner runs it)."""
    document = yaml.safe_load(WORKFLOW.read_text())
    step = next(s for s in job(document)["steps"] if s.get("name", "").startswith("The noxfile installs the suite"))
    env = {**child_env(), "SUITE_VERSION": str(document["env"]["SUITE_VERSION"])}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=project, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


def test_the_workflow_refuses_an_app_that_names_another_suite_in_one_line_each(tmp_path: Path) -> None:
    """Before anything is built: the noxfile's PEP 723 pin and uv.lock must be the workflow's version."""
    version = suite_version()
    app = tmp_path / "app"
    shutil.copytree(REPO_ROOT / "devtools" / "foreign_app", app)
    lock = '[[package]]\nname = "desktop-embedding-pipeline"\nversion = "{}"\n'
    (app / "uv.lock").write_text(lock.format(version))
    assert run_pin_step(app).returncode == 0 and noxfile_step(app).returncode == 0
    assert noxfile_step(REPO_ROOT).returncode == 0, "the suite's own checkout imports its source"
    (app / "uv.lock").write_text(lock.format("0.1.0"))
    stale = run_pin_step(app)
    assert stale.returncode == 1
    assert stale.stderr.splitlines() == [
        f"ERROR: this is embedding-pipeline.yml of {version} but uv.lock holds desktop-embedding-pipeline 0.1.0: "
        f"call the workflow at @v0.1.0, or move the app to {version} (CHANGELOG.md, Upgrading)"
    ]
    (app / "uv.lock").write_text(lock.format(version))
    (app / "noxfile.py").write_text((REPO_ROOT / "devtools" / "foreign_app_0.1.0" / "noxfile.py").read_text())
    old = noxfile_step(app)
    assert old.returncode == 1 and len(old.stdout.splitlines()) == 1, old.stdout + old.stderr
    assert old.stdout.startswith(
        f"::error::noxfile.py has no PEP 723 block pinning desktop-embedding-pipeline=={version}"
    )


def test_the_revision_input_is_the_only_override(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(REPO_ROOT / "devtools" / "foreign_app", app)
    other = "c" * 40
    assert pin_outputs(app, other)["revision"] == other
    env_override = subprocess.run(
        [sys.executable, "-m", "build_hooks.cli", "ci-outputs"], cwd=app, capture_output=True, text=True,
        timeout=120, env={**child_env(), "EMBEDDING_MODEL_REVISION": other},
    )  # fmt: skip
    assert f"revision={other}" not in env_override.stdout, "the environment does not move the workflow's pin"
    bad = run_pin_step(app, "main")
    assert bad.returncode == 2 and "40-character" in bad.stderr, bad.stderr


def test_the_caches_are_keyed_on_the_apps_table_lock_and_suite_version(
    workflow: Mapping[str, Any], tmp_path: Path
) -> None:
    """Any app's keys: its table's profile, output root, pin and variants and the suite's version
    (the profile), its encodings and lock (tiktoken); never this repository's file paths."""
    model = cache_step(workflow, "Cache the prepared model profile")
    tiktoken = cache_step(workflow, "Cache the tiktoken cache")
    assert "hashFiles" not in model["key"] and "build_hooks" not in model["key"] + tiktoken["key"]
    app = tmp_path / "app"
    shutil.copytree(REPO_ROOT / "devtools" / "foreign_app", app)
    (app / "uv.lock").write_text('version = 1\n[[package]]\nname = "desktop-embedding-pipeline"\nversion = "0.2.0"\n')
    outputs = pin_outputs(app)
    assert render(model["path"], outputs, app) == "data/embedding_models/pocket-mini-v1"
    assert render(tiktoken["path"], outputs, app) == "data/tiktoken_cache"
    base = {name: render(step["key"], outputs, app) for name, step in (("model", model), ("tiktoken", tiktoken))}
    changes = {
        "profile-id": "pocket-mini-v2", "output-root": "assets/models", "repo": "a/c", "revision": "2" * 40,
        "variants": "int8", "suite-version": "0.3.0",
    }  # fmt: skip
    for name, value in changes.items():
        assert render(model["key"], {**outputs, name: value}, app) != base["model"], name
    assert render(tiktoken["key"], {**outputs, "encodings": "o200k_base"}, app) != base["tiktoken"]
    (app / "uv.lock").write_text((app / "uv.lock").read_text() + "# another lock\n")
    assert render(tiktoken["key"], outputs, app) != base["tiktoken"]

    # The app's table moves the folders: the cached paths follow it.
    table = (app / "pyproject.toml").read_text()
    moved = table.replace(
        "[tool.embedding-pipeline]",
        '[tool.embedding-pipeline]\noutput-root = "assets/models"\ntiktoken-cache = "assets/tiktoken"',
    )
    (app / "pyproject.toml").write_text(moved)
    outputs = pin_outputs(app)
    assert render(model["path"], outputs, app) == "assets/models/pocket-mini-v1"
    assert render(tiktoken["path"], outputs, app) == "assets/tiktoken"
    assert outputs["suite-version"] == "0.2.0"


# -- platform branches the matrix hits ----------------------------------------


def test_windows_artifacts_are_found_by_their_exe(tmp_path: Path) -> None:
    target = target_for(load_config(REPO_ROOT / "pyproject.toml"), env={})
    (tmp_path / "local-notes" / "_internal").mkdir(parents=True)
    pyinstaller = locate(tmp_path / "local-notes", target, platform="win32")
    assert pyinstaller.executable.name == "local-notes.exe" and pyinstaller.builder == "pyinstaller"
    assert pyinstaller.data_root == tmp_path / "local-notes" / "_internal"
    (tmp_path / "local-notes.dist").mkdir()
    nuitka = locate(tmp_path / "local-notes.dist", target, platform="win32")
    assert nuitka.executable == tmp_path / "local-notes.dist" / "local-notes.exe"
    assert nuitka.builder == "nuitka" and nuitka.data_root == tmp_path / "local-notes.dist"
    assert locate(tmp_path / "local-notes.dist", target, platform="darwin").executable.name == "local-notes"


def test_marker_paths_are_posix_on_every_platform(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    from embedding_runtime._layout import read_marker
    from tests.runtime_fixtures import write_profile

    marker = read_marker(write_profile(tmp_path, repo_files_a))
    assert marker is not None and all("\\" not in name for name in marker.files)


# -- Nuitka's compile cache -----------------------------------------------------


def nuitka_cache_step(workflow: Mapping[str, Any]) -> dict[str, Any]:
    return dict(next(s for s in job(workflow)["steps"] if s.get("name") == "Cache Nuitka's compile cache"))


def test_the_cached_folder_is_the_one_the_nuitka_build_sees(workflow: Mapping[str, Any]) -> None:
    """One variable, set for the whole workflow, names the folder; the cache step saves exactly it
    and no step or job gives the build another one."""
    folder = workflow["env"]["NUITKA_CACHE_DIR"]
    assert folder.startswith("${{ github.workspace }}/"), "inside the workspace on every OS"
    assert nuitka_cache_step(workflow)["with"]["path"] == "${{ env.NUITKA_CACHE_DIR }}"
    assert "NUITKA_CACHE_DIR" not in job(workflow).get("env", {})
    build = next(s for s in job(workflow)["steps"] if s.get("name") == "build-nuitka")
    assert "NUITKA_CACHE_DIR" not in build.get("env", {}) and "cache" not in build["run"]


def test_nuitka_cache_is_saved_after_every_run_and_restored_by_prefix(workflow: Mapping[str, Any]) -> None:
    cache = nuitka_cache_step(workflow)["with"]
    key, prefix = cache["key"], cache["restore-keys"]
    assert key.startswith(prefix), "the restore prefix must match the keys this step saves"
    assert key.removeprefix(prefix) == "${{ github.run_id }}-${{ github.run_attempt }}", "immutable keys: per run"
    for part in ("runner.os", "runner.arch", "matrix.python", "steps.pin.outputs.nuitka-version"):
        assert part in prefix


def test_the_pin_step_reports_the_pin_and_the_locked_nuitka_version() -> None:
    """Run the pin step's own script, as the runner would, and read its outputs."""
    outputs = pin_outputs(REPO_ROOT)
    table = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["embedding-pipeline"]
    assert outputs["revision"] == table["revision"] and outputs["repo"] == table["repo"]
    assert outputs["nuitka-version"] == importlib.metadata.version("nuitka"), "the key names the Nuitka that builds"
    assert outputs["suite-version"] == importlib.metadata.version("desktop-embedding-pipeline")


def test_nuitka_reads_its_whole_cache_from_that_variable(tmp_path: Path) -> None:
    """The variable the workflow sets is the one Nuitka really honours, ccache's folder included."""
    code = "from nuitka.utils.AppDirs import getCacheDir\nprint(getCacheDir('ccache'))\nprint(getCacheDir('downloads'))"
    env = {**os.environ, "NUITKA_CACHE_DIR": str(tmp_path / "nuitka-cache")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for line in result.stdout.split():
        assert Path(line).is_relative_to(tmp_path / "nuitka-cache"), line


# -- the expressions the steps use, as the runner evaluates them -----------------------


def test_step_conditions_follow_skip_nuitka_and_the_event(workflow: Mapping[str, Any]) -> None:
    runner = LocalRunner(REPO_ROOT, {}, REPO_ROOT)

    def running(skip: bool, event: str) -> set[str]:
        context = {"inputs": {"skip-nuitka": skip}, "github": {"event_name": event}}
        steps = job(workflow)["steps"]
        conditions = {s.get("name", s.get("uses")): str(s.get("if", "success()")) for s in steps}
        return {name for name, c in conditions.items() if runner.evaluate(f"${{{{ {c.strip('${} ')} }}}}", context)}

    everything = {s.get("name", s.get("uses")) for s in job(workflow)["steps"]}
    nuitka = {
        "Cache Nuitka's compile cache",
        "build-nuitka",
        "Attest the Nuitka artifact's files",
        "Upload the Nuitka archive",
    }
    attest = {name for name in everything if name.startswith("Attest")}
    assert running(False, "schedule") == everything
    assert running(True, "schedule") == everything - nuitka
    assert running(False, "pull_request") == everything - attest
    assert running(True, "pull_request") == everything - attest - nuitka


def test_the_runner_reads_expressions_as_github_does() -> None:
    runner = LocalRunner(REPO_ROOT, {}, REPO_ROOT)
    context: dict[str, Any] = {"inputs": {"revision": "", "flag": False}, "steps": {"pin": {"outputs": {"a-b": "x"}}}}
    assert runner.expand("${{ inputs.revision || 'pin' }}", context) == "pin"
    assert runner.expand("${{ inputs.flag || false }}", context) is False
    assert runner.expand("k-${{ steps.pin.outputs.a-b }}-${{ 'It''s' }}", context) == "k-x-It's"
    assert runner.expand("${{ 'Linux' == 'linux' && !inputs.flag }}", context) is True
    assert runner.expand("${{ fromJSON('[\"ubuntu-latest\"]') }}", context) == ["ubuntu-latest"]
    assert runner.expand("${{ secrets.HF_TOKEN }}", context) is None
    with pytest.raises(WorkflowError, match=r"steps\.pin\.outputs\.missing is not set"):
        runner.expand("${{ steps.pin.outputs.missing }}", context)
    with pytest.raises(WorkflowError, match="not one this runner knows"):
        runner.expand("${{ toJSON('b') }}", context)
    assert runner.expand("${{ format('[\"{0}\"] {1}', 'b', 3) }}", context) == '["b"] 3'
    assert github_format("{{0}} {0}", "b") == "{0} b", "GitHub's escaped braces"
    assert runner.expand("${{ startsWith('refs/tags/V1', 'refs/tags/v') }}", context) is True, "GitHub ignores case"
    assert runner.expand("${{ contains(fromJSON('[\"a\", \"B\"]'), 'b') && !endsWith('abc', 'b') }}", context)


RUNNER_WORKFLOW = """
on:
  workflow_call: {}
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: |
          mkdir -p out/app/data && echo marker > out/app/data/.prepared.json && printf 'x' > out/app/prog
          chmod 755 out/app/prog && tar -czf out/app.tar.gz -C out app && (cd out && python3 -m zipfile -c app.zip app)
      - uses: actions/upload-artifact@v7
        with: {name: folder, path: out/app/}
      - uses: actions/upload-artifact@v7
        with: {path: out/app.tar.gz, archive: false}
      - uses: actions/upload-artifact@v7
        with: {path: out/app.zip, archive: false}
  broken:
    runs-on: ubuntu-latest
    steps:
      - run: exit 3
  after-broken:
    needs: broken
    runs-on: ubuntu-latest
    steps:
      - run: echo never
  always-after-broken:
    needs: broken
    if: always()
    runs-on: ubuntu-latest
    steps:
      - run: echo ran > always.txt
  download:
    needs: build
    if: github.event_name != 'pull_request'
    runs-on: ubuntu-latest
    steps:
      - run: test ! -e out && echo "a fresh runner has nothing of the build's" > fresh.txt
      - uses: actions/download-artifact@v8
        with: {name: folder, path: folder}
      - uses: actions/download-artifact@v8
        with: {name: app.tar.gz, path: single, skip-decompress: true}
      - uses: actions/download-artifact@v8
        with: {name: app.zip, path: unzipped}
"""


def test_the_runner_uploads_downloads_and_orders_jobs_as_github_documents(tmp_path: Path) -> None:
    """What the local runner must get right for the download check to mean anything: hidden files left
    out of a zipped upload, modes dropped by it, v7's single file kept as it is (a .zip unpacked by v8
    unless skip-decompress), jobs in needs order on fresh runners, GitHub's implied success()."""
    workspace, scratch = tmp_path / "clone", tmp_path / "scratch"
    (workspace / ".github").mkdir(parents=True)
    scratch.mkdir()
    (workspace / ".github" / "run.yml").write_text(RUNNER_WORKFLOW)
    run = LocalRunner(workspace, runner_environ({}), scratch, log=lambda _: None).run(
        workspace / ".github" / "run.yml", {}
    )
    assert {job_id: job.result for job_id, job in run.jobs.items()} == {
        "build": "success", "broken": "failure", "after-broken": "skipped", "always-after-broken": "success",
        "download": "success",
    }  # fmt: skip
    assert run.artifact_names() == ["app.tar.gz", "app.zip", "folder"]
    fresh = run.jobs["download"].workspace
    assert fresh is not None and fresh != workspace and (fresh / "fresh.txt").is_file()
    folder = fresh / "folder"
    assert (folder / "prog").read_text() == "x" and not (folder / "data" / ".prepared.json").exists()
    assert stat.S_IMODE((folder / "prog").stat().st_mode) == 0o644, "a zipped upload keeps no modes"
    single = fresh / "single" / "app.tar.gz"
    assert single.read_bytes() == (workspace / "out" / "app.tar.gz").read_bytes()
    with tarfile.open(single) as tar:
        assert tar.getmember("app/data/.prepared.json") and tar.getmember("app/prog").mode == 0o755
    assert not (fresh / "unzipped" / "app.zip").exists() and list((fresh / "unzipped").iterdir()), "v8 unzips a .zip"
    always = run.jobs["always-after-broken"].workspace
    assert always is not None and (always / "always.txt").is_file()


RELEASE_WORKFLOW = """
on:
  push:
    tags: ["v*"]
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: |
          mkdir dist
          touch "dist/pkg-${GITHUB_REF_NAME#v}-py3-none-any.whl" "dist/pkg-${REF#v}.tar.gz"
        env: {REF: "${{ github.ref_name }}"}
      - uses: actions/upload-artifact@v7
        with: {name: dists, path: dist/}
  publish:
    needs: build
    if: github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')
    runs-on: ubuntu-latest
    environment: {name: pypi, url: "https://pypi.org/project/pkg/"}
    permissions: {id-token: write}
    steps:
      - uses: actions/download-artifact@v8
        with: {name: dists, path: dist/}
      - uses: pypa/gh-action-pypi-publish@release/v1
      - run: touch after-publish
  announce:
    needs: publish
    runs-on: ubuntu-latest
    steps:
      - run: touch announced
"""


def release_run(tmp_path: Path, workflow: str, tag: str) -> Any:
    workspace, scratch = tmp_path / "clone", tmp_path / "scratch"
    (workspace / ".github").mkdir(parents=True)
    scratch.mkdir()
    (workspace / ".github" / "release.yml").write_text(workflow)
    runner = LocalRunner(workspace, runner_environ({}), scratch, log=lambda _: None)
    return runner.push_tag(workspace / ".github" / "release.yml", tag)


def test_a_tag_push_runs_up_to_the_publish_step_and_no_further(tmp_path: Path) -> None:
    run = release_run(tmp_path, RELEASE_WORKFLOW, "v1.2.0")
    assert not run.failed, run.outcomes
    assert {job_id: job.result for job_id, job in run.jobs.items()} == {
        "build": "success", "publish": "success", "announce": "not run"
    }  # fmt: skip
    publish = run.jobs["publish"]
    assert publish.environment == "pypi"
    assert publish.published == ["pkg-1.2.0-py3-none-any.whl", "pkg-1.2.0.tar.gz"]
    assert run.stopped_at == "publish: pypa/gh-action-pypi-publish@release/v1"
    assert publish.workspace is not None and not (publish.workspace / "after-publish").exists()
    with pytest.raises(WorkflowError, match="does not run on a push of the tag release-1"):
        release_run(tmp_path / "other", RELEASE_WORKFLOW, "release-1")


def test_the_publish_stand_in_refuses_what_pypi_would(tmp_path: Path) -> None:
    """Trusted publishing without `id-token: write`, or a distribution of another version."""
    no_token = release_run(tmp_path / "a", RELEASE_WORKFLOW.replace("permissions: {id-token: write}", ""), "v1.2.0")
    assert no_token.failed and no_token.stopped_at is None
    assert any("needs `id-token: write`" in o.detail for o in no_token.outcomes), no_token.outcomes
    other = release_run(
        tmp_path / "b", RELEASE_WORKFLOW.replace('"dist/pkg-${REF#v}.tar.gz"', "dist/pkg-0.9.tar.gz"), "v1.2.0"
    )
    assert other.failed and any("pkg-0.9.tar.gz is 0.9, not the tag's 1.2.0" in o.detail for o in other.outcomes)


def test_the_release_workflow_builds_tests_attests_and_publishes_in_order() -> None:
    document = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "release.yml").read_text())
    jobs = document["jobs"]
    assert jobs["test"]["needs"] == "build" and set(jobs["publish"]["needs"]) == {"build", "test"}
    assert jobs["github-release"]["needs"] == "publish"
    assert jobs["publish"]["environment"]["name"] == "pypi"
    assert jobs["publish"]["permissions"] == {"id-token": "write"}, "the publish job gets nothing else"
    uses = [s.get("uses", "") for s in jobs["publish"]["steps"]]
    assert any(u.startswith("pypa/gh-action-pypi-publish@") for u in uses)
    build_uses = [s.get("uses", "") for s in jobs["build"]["steps"]]
    assert any(u.startswith("actions/attest-build-provenance@") for u in build_uses)
    assert not any(s.get("uses", "").startswith("actions/checkout") for s in jobs["test"]["steps"]), (
        "the wheels are tested without the repository's source"
    )
