"""Another app adopts the suite through its public entry points only: the foreign app in devtools."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from build_hooks.build_nuitka import options_for_project
from build_hooks.config import load_config
from build_hooks.freezing.plan import make_plan
from build_hooks.freezing.target import target_for
from build_hooks.nox_sessions import check_suite_version
from build_hooks.versions import DISTRIBUTION
from devtools.adoption import adoption_blocks
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
    """A bare `nox` runs nightly only: the single steps and `clean` (which deletes dist/) run when named."""
    code = (
        "import runpy, nox.registry; runpy.run_path('noxfile.py')\n"
        "print(' '.join(f'{name}={func.default}' for name, func in sorted(nox.registry.get().items())))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=TEMPLATE, env=child_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    defaults = dict(pair.split("=") for pair in result.stdout.split())
    steps = (
        "prepare-model", "warm-tiktoken", "build-nuitka", "build-pyinstaller", "verify-artifact", "archive-artifact",
        "wheelhouse", "ci-outputs", "clean",
    )  # fmt: skip
    assert defaults == {"nightly": "True", **dict.fromkeys(steps, "False")}
    noxfile = (TEMPLATE / "noxfile.py").read_text().splitlines()
    code_lines = [line for line in noxfile if line.strip() and not line.startswith("#")]
    assert sum("register(" in line for line in code_lines) == 1 and len(code_lines) <= 4


@pytest.mark.parametrize(
    ("key", "python_version", "expected"),
    [
        (None, None, "3.11"),
        (None, "3.12\n", "3.12"),
        (None, "# pinned by uv\n3.13.0\n", "3.13.0"),
        ('"3.13"', "3.12\n", "3.13"),
        ("3.12", None, "ERROR: [tool.embedding-pipeline] python: 3.12 is not a Python version"),
        (None, "pypy3.10\n", "ERROR: "),
    ],
)
def test_the_sessions_build_with_the_app_s_own_python(
    tmp_path: Path, key: str | None, python_version: str | None, expected: str
) -> None:
    """register(root) takes the app's table `python`, else its .python-version, else 3.11; a value that is
    not a version stops nox with one line."""
    app = tmp_path / "app"
    shutil.copytree(TEMPLATE, app, ignore=shutil.ignore_patterns(".python-version"))
    if key is not None:
        pyproject = app / "pyproject.toml"
        pyproject.write_text(
            pyproject.read_text().replace("[tool.embedding-pipeline]\n", f"[tool.embedding-pipeline]\npython = {key}\n")
        )
    if python_version is not None:
        (app / ".python-version").write_text(python_version)
    code = (
        "import runpy, nox.registry; runpy.run_path('noxfile.py')\n"
        "print(sorted({str(func.python) for func in nox.registry.get().values()}))"
    )
    env = child_env({"NOX_SCRIPT_MODE": "none"})
    result = subprocess.run([sys.executable, "-c", code], cwd=app, env=env, capture_output=True, text=True, timeout=300)
    if expected.startswith("ERROR: "):
        assert result.returncode != 0
        assert result.stderr.strip().splitlines()[-1].startswith(expected), result.stderr
        assert "write one such as" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == str([expected])


def readme_blocks() -> dict[str, str]:
    return {b.path or f"run:{b.line}": b.text for b in adoption_blocks((REPO_ROOT / "docs" / "adopt.md").read_text())}


def test_the_readme_adoption_blocks_make_a_whole_app_and_the_foreign_app_follows_them() -> None:
    """What `nox -s adoption` executes: the app's files, each written once inside the app, and the
    commands; the foreign app (the workflow check's app) has the same noxfile and uv settings."""
    blocks = readme_blocks()
    table = tomllib.loads(blocks["pyproject.toml"])
    files = {"noxfile.py", table["tool"]["embedding-pipeline"]["pyinstaller-spec"], ".github/workflows/nightly.yml"}
    files |= {table["tool"]["embedding-pipeline"]["app-entry"]}
    assert files <= set(blocks), set(blocks)
    assert all(not Path(path).is_absolute() and ".." not in Path(path).parts for path in blocks if ":" not in path)
    commands = "\n".join(text for path, text in blocks.items() if path.startswith("run:"))
    for step in ("prepare-model", "warm-tiktoken", "build-pyinstaller", "verify-artifact"):
        assert f"nox -s {step}" in commands
    assert commands.index('uv add "embedding-runtime') < commands.index("uv add --group build")
    assert blocks["noxfile.py"] == (TEMPLATE / "noxfile.py").read_text()
    foreign = tomllib.loads((TEMPLATE / "pyproject.toml").read_text())
    assert table["tool"]["uv"] == {"default-groups": ["build"]}, "the README's app takes the suite from the index"
    # The foreign app is the offline variant: the README's settings, plus find-links to a clone's wheels.
    assert foreign["tool"]["uv"] == table["tool"]["uv"] | {"find-links": ["../desktop-embedding-pipeline/dist/wheels"]}
    assert (TEMPLATE / "pocket-search.spec").read_text() == blocks["pocket-search.spec"]


def write_app(root: Path, noxfile_suite: str | None, locked: str | None) -> Path:
    block = f'# /// script\n# dependencies = ["nox", "{noxfile_suite}"]\n# ///\n' if noxfile_suite else ""
    (root / "noxfile.py").write_text(block + "import nox\n")
    if locked:
        package = f'[[package]]\nname = "{DISTRIBUTION}"\nversion = "{locked}"\n'
        (root / "uv.lock").write_text(f'version = 1\n[[package]]\nname = "numpy"\nversion = "2.4.6"\n{package}')
    return root


def test_the_noxfile_refuses_a_suite_that_is_not_the_locked_one(tmp_path: Path) -> None:
    running = metadata.version(DISTRIBUTION)
    check_suite_version(write_app(tmp_path, f"{DISTRIBUTION}=={running}", running))  # agrees: nothing said
    check_suite_version(write_app(tmp_path, f"{DISTRIBUTION}=={running}", None))  # no lock (pip): nothing to compare
    with pytest.raises(SystemExit, match=r"^ERROR: noxfile.py has no PEP 723 block pinning desktop-embedding-pipeline"):
        check_suite_version(write_app(tmp_path, None, None))
    with pytest.raises(SystemExit, match=r"script block asks for \"desktop-embedding-pipeline==9\.9\" but uv\.lock"):
        check_suite_version(write_app(tmp_path, f"{DISTRIBUTION}==9.9", running))
    with pytest.raises(
        SystemExit, match=rf"this is {DISTRIBUTION} {re.escape(running)} but uv\.lock holds {DISTRIBUTION} 9\.9"
    ):
        check_suite_version(write_app(tmp_path, f"{DISTRIBUTION}==9.9", "9.9"))
    (tmp_path / "uv.lock").write_text("version = [")
    with pytest.raises(SystemExit, match=r"cannot be read .*: run `uv lock`"):
        check_suite_version(tmp_path)


def test_a_mismatched_noxfile_stops_nox_with_one_line(tmp_path: Path) -> None:
    """Through nox itself: the app's noxfile names another version than its lock."""
    app = tmp_path / "app"
    shutil.copytree(TEMPLATE, app)
    write_app(app, None, "9.9")
    (app / "noxfile.py").write_text((TEMPLATE / "noxfile.py").read_text())
    env = child_env({"NOX_SCRIPT_MODE": "none"})  # this environment has the suite: no script environment
    result = subprocess.run(
        [sys.executable, "-m", "nox", "-l"], cwd=app, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"uv.lock holds {DISTRIBUTION} 9.9" in errors[0] and "Traceback" not in result.stderr, (
        result.stderr
    )


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


# -- the foreign app run from source -------------------------------------------------


def source_self_check(project: Path, code: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = child_env({"HOME": str(project / "home")})
    env["PYTHONPATH"] += os.pathsep + str(project / "src")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    return result, json.loads(result.stdout)


@pytest.mark.slow
def test_a_correct_source_run_passes_its_self_check(foreign_project: Path) -> None:
    """From source the HTTP clients a development environment always has are listed, not held against it."""
    code = "import sys, pocket_search.__main__ as m; sys.exit(m.main(['--self-check']))"
    result, report = source_self_check(foreign_project, code)
    assert result.returncode == 0 and report["ok"] and report["problems"] == [], result.stderr
    assert report["mode"] == "source" and "urllib.request" in report["http_clients"]
    assert report["folder"]["kind"] == "source" and set(report["token_counts"]) == {"cl100k_base"}
    assert "self-check:" not in result.stderr


@pytest.mark.slow
def test_a_source_run_without_its_project_folder_says_what_to_pass(foreign_project: Path) -> None:
    code = (
        "import sys, tiktoken, embedding_runtime as er, pocket_search.profiles\n"
        "info = {'app_name': 'pocket-search', 'profile_id': 'pocket-mini-v1', 'tiktoken_encodings': ['cl100k_base']}\n"
        "sys.exit(er.self_check_main(info, tiktoken=tiktoken))\n"
    )
    result, report = source_self_check(foreign_project, code)
    assert result.returncode == 1 and not report["ok"]
    assert [p.split(":")[0] for p in report["problems"]] == ["vectors", "tiktoken"]
    assert all("pass source_root=" in p for p in report["problems"]), report["problems"]
    # One stderr line per problem; tiktoken was not asked to download (an offline app never does).
    assert [line for line in result.stderr.splitlines() if line.startswith("self-check: ")] == [
        f"self-check: {p}" for p in report["problems"]
    ]
    assert report["network_connections_attempted"] == [] and report["token_counts"] == {}


def test_the_private_module_contract_names_every_private_module_of_the_runtime() -> None:
    """import-linter's contract lists the runtime's private modules by name: a new one is listed too."""
    contracts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (private,) = [c for c in contracts if c["name"].startswith("Only the runtime itself imports its private")]
    modules = {f"embedding_runtime.{p.stem}" for p in (REPO_ROOT / "embedding_runtime").glob("_*.py")}
    assert set(private["forbidden_modules"]) == modules - {"embedding_runtime.__init__", "embedding_runtime.__main__"}


def test_demo_pythons_finds_each_interpreter_on_path_or_in_pyenv_never_a_shim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`nox -s demo-pythons`: a pyenv shim answers only for activated versions, so it is passed over;
    pyenv's newest patch release wins (3.12.10 over 3.12.9)."""
    from devtools.dev_sessions import find_python

    def executable(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
        return path

    pyenv = tmp_path / "pyenv"
    shim = executable(pyenv / "shims" / "python3.12")
    for version in ("3.12.9", "3.12.10", "3.13.0"):
        executable(pyenv / "versions" / version / "bin" / f"python{version.rsplit('.', 1)[0]}")
    monkeypatch.setenv("PYENV_ROOT", str(pyenv))
    monkeypatch.setenv("PATH", str(shim.parent))
    assert find_python("3.12") == str(pyenv / "versions" / "3.12.10" / "bin" / "python3.12")
    assert find_python("3.14") is None
    on_path = executable(tmp_path / "bin" / "python3.13")
    monkeypatch.setenv("PATH", f"{on_path.parent}{os.pathsep}{shim.parent}")
    assert find_python("3.13") == str(on_path)
