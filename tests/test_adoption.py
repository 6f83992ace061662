"""Another app adopts the suite through its public entry points only: the foreign app in devtools."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from build_hooks.build_nuitka import options_for_project
from build_hooks.bundle import target_for
from build_hooks.config import load_config
from build_hooks.plan import make_plan
from devtools.foreign_project import TEMPLATE
from embedding_runtime import __version__ as runtime_version
from tests.support import REPO_ROOT, child_env, pipeline

RUNTIME_IMPORTS = {"numpy", "onnxruntime", "tokenizers", "embedding_runtime"}


def project_table(path: Path) -> dict[str, Any]:
    return dict(tomllib.loads(path.read_text()))


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[=<>~!;\[ ]", r, maxsplit=1)[0].lower() for r in requirements}


# -- two distributions ------------------------------------------------------------


def test_the_runtime_distribution_declares_only_what_the_runtime_imports() -> None:
    runtime = project_table(REPO_ROOT / "runtime" / "pyproject.toml")["project"]
    assert names(runtime["dependencies"]) == {"numpy", "onnxruntime", "tokenizers"}
    assert runtime["version"] == runtime_version
    wheel = project_table(REPO_ROOT / "runtime" / "pyproject.toml")["tool"]["hatch"]["build"]["targets"]["wheel"]
    # The package is copied into standard wheels by the build hook; an editable install points at the source.
    assert "force-include" not in wheel and wheel["dev-mode-dirs"] == [".."] and "custom" in wheel["hooks"]
    hook = ast.parse((REPO_ROOT / "runtime" / "hatch_build.py").read_text())
    copies = [
        node for node in ast.walk(hook) if isinstance(node, ast.Constant) and node.value == "../embedding_runtime"
    ]
    assert copies and "version == 'standard'" in ast.unparse(hook)


def test_no_runtime_module_imports_outside_stdlib_numpy_onnxruntime_tokenizers() -> None:
    """The static import graph of every module, lazy imports inside functions included."""
    allowed = RUNTIME_IMPORTS | set(sys.stdlib_module_names)
    found: dict[str, set[str]] = {}
    for path in sorted((REPO_ROOT / "embedding_runtime").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                tops = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = {node.module.split(".")[0]}
            else:
                continue
            found.setdefault(path.name, set()).update(tops - allowed)
    assert {name: tops for name, tops in found.items() if tops} == {}
    assert len(found) >= 15, "every module was read"


def test_the_suite_depends_on_the_runtime_and_offers_each_freezer_as_an_extra() -> None:
    suite = project_table(REPO_ROOT / "pyproject.toml")
    project = suite["project"]
    assert f"embedding-runtime=={runtime_version}" in project["dependencies"]
    assert not names(project["dependencies"]) & {"pyinstaller", "nuitka", "numpy", "onnxruntime", "tokenizers"}
    extras = project["optional-dependencies"]
    assert "pyinstaller" in names(extras["pyinstaller"]) and "nuitka" in names(extras["nuitka"])
    build_group = suite["dependency-groups"]["build"]
    for requirement in [*project["dependencies"], *extras["pyinstaller"], *extras["nuitka"]]:
        if not requirement.startswith("embedding-runtime"):
            assert requirement in build_group, f"{requirement}: the extras and the build group pin the same"
    assert project["scripts"] == {"embedding-pipeline": "build_hooks.cli:main"}
    assert suite["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["build_hooks"]


def test_pyinstaller_finds_the_hooks_through_the_entry_point() -> None:
    (entry,) = [e for e in metadata.entry_points(group="pyinstaller40") if e.value.startswith("build_hooks.")]
    folders = [Path(folder) for folder in entry.load()()]
    assert any((folder / "hook-embedding_runtime.py").is_file() for folder in folders)
    assert any((folder / "hook-tiktoken.py").is_file() for folder in folders)


# -- the command line ---------------------------------------------------------------


def test_one_console_script_has_a_sub_command_per_step(tmp_path: Path) -> None:
    listing = pipeline(tmp_path, "--help")
    assert listing.returncode == 0
    for step in ("prepare-model", "warm-tiktoken", "build-nuitka", "build-pyinstaller", "verify-artifact"):
        assert step in listing.stdout
        assert pipeline(tmp_path, step, "--help").returncode == 0
    wrong = pipeline(tmp_path, "bulid-nuitka")
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "unknown command" in wrong.stderr


# -- the foreign app ----------------------------------------------------------------


def test_the_foreign_noxfile_registers_the_steps_and_nightly_with_one_call(tmp_path: Path) -> None:
    code = "import runpy, nox.registry; runpy.run_path('noxfile.py'); print(' '.join(sorted(nox.registry.get())))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=TEMPLATE, env=child_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {
        "prepare-model", "warm-tiktoken", "build-nuitka", "build-pyinstaller", "verify-artifact", "nightly", "clean",
    }  # fmt: skip
    noxfile = [line for line in (TEMPLATE / "noxfile.py").read_text().splitlines() if line.strip()]
    assert sum("register(" in line for line in noxfile) == 1 and len(noxfile) <= 4


def test_the_adoption_is_under_40_lines_and_is_what_the_readme_shows() -> None:
    """The app's table, noxfile and spec, and the workflow call: the README's section, verbatim."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Use it in your app") :]
    section = section[: section.find("\n## ", 1)]
    pyproject = (TEMPLATE / "pyproject.toml").read_text()
    table = pyproject[pyproject.index("[tool.embedding-pipeline]") :]
    files = [table, (TEMPLATE / "noxfile.py").read_text(), (TEMPLATE / "pocket-search.spec").read_text()]
    for text in files:
        assert text.strip() in section, f"the README shows {text.splitlines()[0]!r} as the app has it"
    workflow = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert workflow is not None and "uses: " in workflow[1] and "embedding-pipeline.yml" in workflow[1]
    lines = [line for text in [*files, workflow[1]] for line in text.splitlines() if line.strip()]
    assert len(lines) < 40, len(lines)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_foreign_app_builds_with_pyinstaller_and_verifies(foreign_project: Path) -> None:
    result = pipeline(foreign_project, "verify-artifact", "--reports", str(foreign_project / "reports"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((foreign_project / "reports" / "pocket-search.verify.json").read_text())
    assert report["verdict"] == "pass" and report["failures"] == []
    check = report["self_check"]
    # The app's own contract served: mean pooling, 384 wide, from the bundle, offline.
    assert check["profile"]["pooling"] == "mean" and check["profile"]["dimension"] == 384
    assert set(report["golden_min_cosine"]) == {"fp32", "int8"}
    assert all(cosine >= 0.9999 for cosine in report["golden_min_cosine"].values())
    assert check["folder"]["kind"] == "bundled" and check["network_connections_attempted"] == []
    assert set(check["token_counts"]) == {"cl100k_base"}


@pytest.mark.slow
def test_the_foreign_apps_nuitka_options_come_from_the_public_function(foreign_project: Path) -> None:
    options = options_for_project(foreign_project)
    plan = make_plan(target_for(load_config(foreign_project / "pyproject.toml"), env={}), "nuitka")
    assert "--output-filename=pocket-search" in options
    data = {o.removeprefix("--include-data-files=").split("=", 1)[1] for o in options if "data-files" in o}
    assert data == {f.dest for f in plan.data} and any("pocket-mini-v1" in d for d in data)
    printed = pipeline(foreign_project, "nuitka-options")
    assert printed.returncode == 0 and printed.stdout.split("\n")[:-1] == options
