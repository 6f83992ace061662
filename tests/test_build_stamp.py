"""One plan per build: the up-to-date decision follows every input (and nothing else), and the pin
is resolved once, when the plan is made."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from build_hooks import fsutil
from build_hooks.config import load_config
from build_hooks.freezing.plan import make_plan, read_plan, write_plan
from build_hooks.freezing.pyinstaller import PLAN_FLAG
from build_hooks.freezing.stamp import changed_inputs, read_stamp, rebuild_reason, stamp_document, void_records
from build_hooks.freezing.target import Builder, manifest_path, sbom_path, stamp_path, target_for
from devtools.demo_project import ARTIFACT_REPO, ARTIFACT_REVISION, PROFILE_ID, Project, write_pyproject
from embedding_runtime.build_api import BUILD_INFO_FILE, MARKER_NAME, data_path
from tests.artifacts import copy_project, run_nuitka, run_step
from tests.support import REPO_ROOT, child_env, pipeline

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
OTHER_REVISION = "e" * 8 + "0123456789abcdef0123456789abcdef"


def inputs_of(root: Path, builder: Builder = "pyinstaller") -> dict[str, str]:
    return dict(make_plan(target_for(load_config(root / "pyproject.toml"), env={}), builder).inputs)


def edit(path: Path, line: str = "# edited\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line)


def decisions(root: Path, edits: dict[str, Callable[[], object]], builder: Builder) -> dict[str, list[str]]:
    """The inputs each edit changes, one edit at a time on top of the ones before."""
    changed = {}
    for name, make_edit in edits.items():
        before = inputs_of(root, builder)
        make_edit()
        changed[name] = changed_inputs(before, inputs_of(root, builder))
    return changed


def outputs_and_caches(root: Path) -> dict[str, Callable[[], object]]:
    """Edits under the folders a build ignores: outputs, data, caches, environments."""
    return {
        "data/": lambda: edit(root / "data" / "notes.py"),
        "dist/": lambda: edit(root / "dist" / "stray.py"),
        "build/": lambda: edit(root / "build" / "stray.py"),
        ".nox/": lambda: edit(root / ".nox" / "tests" / "lib" / "site.py"),
        ".venv/": lambda: edit(root / ".venv" / "lib" / "site.py"),
    }


def test_the_foreign_apps_up_to_date_decision_follows_its_inputs(foreign_project: Path, tmp_path: Path) -> None:
    root = tmp_path / "pocket-search"
    shutil.copytree(foreign_project, root, ignore=shutil.ignore_patterns("dist", "build"))
    package = root / "src" / "pocket_search"
    changed = decisions(
        root,
        {
            "spec": lambda: edit(root / "pocket-search.spec"),
            "a comment in pyproject.toml": lambda: edit(root / "pyproject.toml"),
            "a key": lambda: edit(root / "pyproject.toml", "[tool.other-tool]\nsetting = 1\n"),
            "profiles module": lambda: edit(package / "profiles.py"),
            "module under source-root": lambda: edit(package / "__init__.py"),
            "a module nothing imports": lambda: edit(package / "ranking.py", "WEIGHT = 1\n"),
            "the package imports it": lambda: edit(package / "__init__.py", "from pocket_search import ranking\n"),
            **outputs_and_caches(root),
        },
        "pyinstaller",
    )
    assert changed["spec"] == ["spec"]
    assert changed["a comment in pyproject.toml"] == []
    assert changed["a key"] == ["config tool.other-tool.setting"], "the changed key is named"
    assert set(changed["profiles module"]) == {"profiles-module", "source pocket_search/profiles.py"}
    assert changed["module under source-root"] == ["source pocket_search/__init__.py"]
    assert changed["a module nothing imports"] == [], "a freezer collects what the app imports"
    assert changed["the package imports it"] == ["source pocket_search/__init__.py", "source pocket_search/ranking.py"]
    assert not (moved := {name: changed[name] for name in outputs_and_caches(root) if changed[name]}), moved


def test_this_repositorys_launcher_decision_follows_its_inputs(artifact_project: Project, tmp_path: Path) -> None:
    """The repository's own table (app/ as source-root, specs/launcher.spec), with the demo's data."""
    root = tmp_path / "launcher"
    for folder in ("app", "specs"):
        shutil.copytree(REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    text = (REPO_ROOT / "pyproject.toml").read_text()
    for key in ("repo", "revision"):
        value = {"repo": ARTIFACT_REPO, "revision": ARTIFACT_REVISION}[key]
        text = "\n".join(f'{key} = "{value}"' if line.startswith(f"{key} = ") else line for line in text.splitlines())
    (root / "pyproject.toml").write_text(text + "\n")
    shutil.copytree(artifact_project.root / "data", root / "data")
    changed = decisions(
        root,
        {
            "spec": lambda: edit(root / "specs" / "launcher.spec"),
            "entry": lambda: edit(root / "app" / "launcher.py"),
            "new module under source-root": lambda: edit(root / "app" / "notes_store.py", "NOTES = []\n"),
            "a test": lambda: edit(root / "tests" / "test_x.py"),
            **outputs_and_caches(root),
        },
        "nuitka",
    )
    assert changed["spec"] == [], "Nuitka does not read the PyInstaller spec"
    assert changed["entry"] == ["entry", "source launcher.py"]
    assert changed["new module under source-root"] == ["source notes_store.py"]
    assert changed["a test"] == [], "tests/ is not under the launcher's source-root"
    assert not (moved := {name: changed[name] for name in outputs_and_caches(root) if changed[name]}), moved
    assert "spec" in changed_inputs(inputs_of(root, "nuitka"), inputs_of(root, "pyinstaller"))


def test_the_demos_plan_is_made_of_what_its_entry_imports_and_its_lock(
    artifact_project: Project, tmp_path: Path
) -> None:
    """The demo's entry lives outside its project (this checkout's app/): the modules it imports from its own
    folder are inputs (notes_store.py), the lock is, and the model source's custom_modeling.py is not."""
    code = tmp_path / "code"
    for folder in ("app", "specs"):
        shutil.copytree(REPO_ROOT / folder, code / folder, ignore=shutil.ignore_patterns("__pycache__"))
    project = copy_project(artifact_project, tmp_path / "demo")
    write_pyproject(project, code_root=code.as_posix())
    (project.root / "model-source").mkdir(exist_ok=True)
    (project.root / "model-source" / "custom_modeling.py").write_text("raise SystemExit('hub code')\n")
    builders: tuple[Builder, ...] = ("pyinstaller", "nuitka")
    for builder in builders:
        inputs = inputs_of(project.root, builder)
        assert {"source launcher.py", "source notes_store.py", "uv.lock"} <= set(inputs), sorted(inputs)
        assert not [name for name in inputs if "custom_modeling" in name], "nothing that is not the app's"
        assert inputs["version filelock"] != "absent", "every locked distribution's version (notes_store's filelock)"
    before = {builder: inputs_of(project.root, builder) for builder in builders}
    edit(code / "app" / "notes_store.py")
    for builder in builders:
        assert changed_inputs(before[builder], inputs_of(project.root, builder)) == ["source notes_store.py"], builder
    edit(project.root / "uv.lock", "# another lock\n")
    assert changed_inputs(before["nuitka"], inputs_of(project.root, "nuitka")) == ["source notes_store.py", "uv.lock"]


def test_a_changed_profile_or_tool_names_the_input(artifact_project: Project, tmp_path: Path) -> None:
    project = copy_project(artifact_project, tmp_path / "p")
    before = inputs_of(project.root)
    marker = json.loads((project.profile / MARKER_NAME).read_text())
    marker["source"] = "elsewhere"
    (project.profile / MARKER_NAME).write_text(json.dumps(marker))
    after = inputs_of(project.root)
    assert changed_inputs(before, after) == [f"data data/embedding_models/{PROFILE_ID}/{MARKER_NAME}"]
    dist = tmp_path / "app.dist"
    for record in (".manifest.json", ".cdx.json"):
        (tmp_path / f"app.dist{record}").write_text("{}")
    assert rebuild_reason(dist, after) == "there is no artifact yet"
    dist.mkdir()
    assert rebuild_reason(dist, after) == "no record of the inputs it was built from"
    fsutil.atomic_write_bytes(stamp_path(dist), stamp_document({**after, "version numpy": "1.0"}))
    assert read_stamp(dist) is not None
    assert rebuild_reason(dist, after) == "version numpy changed"
    fsutil.atomic_write_bytes(stamp_path(dist), stamp_document(after))
    assert rebuild_reason(dist, after) is None


def test_a_build_that_starts_voids_the_last_ones_records_stamp_first(tmp_path: Path) -> None:
    """A freezer that fails half-way leaves a half-built dist: no record beside it may still call it up
    to date, even when removing one of them fails."""
    dist = tmp_path / "app.dist"
    dist.mkdir()
    inputs = {"builder": "nuitka"}
    for record in (manifest_path(dist), sbom_path(dist)):
        record.write_text("{}")
    fsutil.atomic_write_bytes(stamp_path(dist), stamp_document(inputs))
    assert rebuild_reason(dist, inputs) is None
    void_records(dist)
    assert not any(record.exists() for record in (manifest_path(dist), sbom_path(dist), stamp_path(dist)))
    assert rebuild_reason(dist, inputs) == "its manifest or SBOM is missing"
    fsutil.atomic_write_bytes(stamp_path(dist), stamp_document(inputs))
    manifest_path(dist).mkdir()  # a record that cannot be removed as a file
    with pytest.raises(OSError):
        void_records(dist)
    assert not stamp_path(dist).exists(), "the stamp goes first"


def built_or_up_to_date(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return "up to date" if "is up to date" in result.stderr else "built"


def test_a_build_right_after_a_build_is_up_to_date_and_an_edit_rebuilds_once(
    artifact_project: Project, nuitka_artifact: Path, pyinstaller_artifact: Path
) -> None:
    """Both freezers on the shared project: up to date, then one real rebuild each after an edit of an
    input the artifact does not depend on (another tool's key in pyproject.toml: it stays equivalent)."""
    builds: dict[str, Callable[[], subprocess.CompletedProcess[str]]] = {
        "nuitka": lambda: run_nuitka(artifact_project),
        "pyinstaller": lambda: run_step(artifact_project, "build_pyinstaller.py"),
    }
    assert {name: built_or_up_to_date(build()) for name, build in builds.items()} == dict.fromkeys(builds, "up to date")
    edit(artifact_project.root / "notes_helper.py", "HELPER = True\n")  # nothing imports it: not an input
    assert {name: built_or_up_to_date(build()) for name, build in builds.items()} == dict.fromkeys(builds, "up to date")
    edit(artifact_project.root / "pyproject.toml", "\n[tool.notes-helper]\nhelper = true\n")
    rebuilt = {name: build() for name, build in builds.items()}
    for result in rebuilt.values():
        assert (
            built_or_up_to_date(result) == "built"
            and "config tool.notes-helper.helper changed" in result.stderr
            and "rebuilding " in result.stderr
        )
    assert {name: built_or_up_to_date(build()) for name, build in builds.items()} == dict.fromkeys(builds, "up to date")


def test_the_freezer_reads_only_the_plan_whatever_the_environment_says(
    artifact_project: Project, tmp_path: Path
) -> None:
    """A plan made for pin A, the spec run on it with EMBEDDING_MODEL_* naming pin B: the artifact is A's.
    (Without the plan, the spec would resolve pin B and refuse: the profile holds A.)"""
    project = copy_project(artifact_project, tmp_path / "project")
    plan = make_plan(project.target, "pyinstaller")
    plan_file = write_plan(plan)
    pin_b = {"EMBEDDING_MODEL_REVISION": OTHER_REVISION}
    assert read_plan(plan_file).pin.revision == ARTIFACT_REVISION
    command = [
        sys.executable, "-m", "PyInstaller", str(REPO_ROOT / "specs" / "launcher.spec"), "--noconfirm",
        f"--distpath={plan.dist.parent}", f"--workpath={project.root / 'build' / 'pyinstaller'}",
        "--", PLAN_FLAG, str(plan_file),
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=project.root, env=child_env(pin_b), capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((plan.dist / "_internal" / data_path(BUILD_INFO_FILE)).read_text())
    assert info["model"]["revision"] == ARTIFACT_REVISION, "the artifact carries the plan's pin, not the environment's"
    assert rebuild_reason(plan.dist, plan.inputs) is None, "the spec stamped the plan's inputs"


def test_a_plan_older_than_its_configuration_is_refused(artifact_project: Project, tmp_path: Path) -> None:
    project = copy_project(artifact_project, tmp_path / "project")
    plan_file = write_plan(make_plan(project.target, "pyinstaller"))
    pyproject = project.root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('app-name = "', 'app-name = "renamed-', 1))
    result = subprocess.run(
        [sys.executable, "-m", "PyInstaller", str(REPO_ROOT / "specs" / "launcher.spec"), "--noconfirm",
         "--", PLAN_FLAG, str(plan_file)],
        cwd=project.root, env=child_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    assert (
        "was made before pyproject.toml's tool.embedding-pipeline.app-name changed: run the build step again"
        in result.stderr
    ), result.stderr[-2000:]


def test_the_foreign_apps_second_build_is_up_to_date(foreign_project: Path) -> None:
    second = pipeline(foreign_project, "build-pyinstaller")
    assert built_or_up_to_date(second) == "up to date"
