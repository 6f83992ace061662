"""Every command the documentation shows works on a fresh clone: sessions, scripts, flags and files exist.

The README and docs/ are what a new user follows; a renamed session or flag
must fail here before it fails them. The site they make has no broken link.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from devtools.adoption import adoption_blocks
from tests.support import REPO_ROOT, child_env

README = REPO_ROOT / "README.md"
GUIDE = REPO_ROOT / "docs" / "adopt.md"
PAGES = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]
# The script each pipeline session hands its arguments (after `--`) to.
SESSION_SCRIPTS = {
    "prepare-model": "scripts/prepare_embedding_model.py",
    "warm-tiktoken": "scripts/warm_tiktoken.py",
    "verify-artifact": "scripts/verify_artifact.py",
}


def shell_blocks() -> list[str]:
    """The bash blocks of every page, but the adoption guide's: `nox -s adoption` runs those in an app's folder."""
    executed = {block.text for block in adoption_blocks(GUIDE.read_text(encoding="utf-8")) if block.kind == "run"}
    return [
        block
        for page in PAGES
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
        if block not in executed
    ]


def commands() -> Iterator[list[str]]:
    """Each simple command of every bash block, as words (comments and `&&` chains split)."""
    for block in shell_blocks():
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            command: list[str] = []
            for word in [*words, "&&"]:
                if word in ("&&", ";"):
                    if command:
                        yield command
                    command = []
                elif command or not re.fullmatch(r"[A-Z_]+=.*", word):  # leading VAR=value assignments
                    command.append(word)


@cache
def sessions() -> frozenset[str]:
    import nox.registry

    import noxfile  # noqa: F401 - registers the sessions

    return frozenset(nox.registry.get())


@cache
def script_flags(script: str) -> frozenset[str]:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / script), "--help"],
        cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, f"{script} --help failed: {result.stderr[-500:]}"
    return frozenset(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", result.stdout))


def flags(words: list[str]) -> set[str]:
    return {word.split("=")[0] for word in words if word.startswith("--")}


def check(command: list[str]) -> None:
    """Assert what ``command`` names exists; an unknown kind of command fails (teach it here)."""
    if command[:2] == ["uv", "run"]:
        command = command[2:]
    name = command[0]
    if name == "nox":
        named = command[2 : command.index("--") if "--" in command else None]
        assert command[1] == "-s" and set(named) <= sessions(), f"no nox session {named!r}"
        if "--" in command:
            rest = command[command.index("--") + 1 :]
            assert flags(rest) <= script_flags(SESSION_SCRIPTS[command[2]]), command
    elif name in ("python", "python3.11") and command[1].startswith("scripts/"):
        assert (REPO_ROOT / command[1]).is_file(), f"{command[1]} does not exist"
        assert flags(command[2:]) <= script_flags(command[1]), f"unknown flag in {command}"
    elif name == "pyinstaller":
        assert (REPO_ROOT / command[1]).is_file(), f"{command[1]} does not exist"
    elif name in ("python3.11", "python", ".") and ("venv" in command or "pip" in command or name == "."):
        pass  # the set-up line: checked against .ci/run below
    else:
        raise AssertionError(f"the README shows a command this test does not know: {shlex.join(command)}")


@pytest.mark.parametrize("command", list(commands()), ids=shlex.join)
def test_every_command_names_what_exists(command: list[str]) -> None:
    check(command)


def test_every_session_and_script_the_prose_names_exists() -> None:
    text = "".join(page.read_text(encoding="utf-8") for page in PAGES)
    named = set(re.findall(r"nox -s ([\w-]+)", text))
    assert named and named <= sessions(), named - sessions()
    for script in set(re.findall(r"scripts/\w+\.py", text)):
        assert (REPO_ROOT / script).is_file(), script


def test_ci_runs_the_readme_setup_line_and_test_command() -> None:
    setup = next(line for block in shell_blocks() for line in block.splitlines() if " -m venv " in line)
    ci_lines = [line for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines() if line and line[0] != "#"]
    assert setup in ci_lines, "CI must set up exactly as the README says"
    readme_test_command = next(c for c in commands() if c[:2] == ["nox", "-s"] and c[2] == "tests")
    assert ci_lines[-1] == shlex.join(readme_test_command), "CI runs the README's test command, last"
    assert "apt" not in " ".join(ci_lines), "CI installs nothing with apt"


def test_tool_versions_agree_everywhere() -> None:
    """The README's set-up line, the workflow and the lock pin the same uv and nox."""
    setup = next(line for block in shell_blocks() for line in block.splitlines() if " -m venv " in line)
    pins = dict(re.findall(r"(uv|nox)==([\w.]+)", setup))
    workflow = (REPO_ROOT / ".github" / "workflows" / "embedding-pipeline.yml").read_text()
    assert f'UV_VERSION: "{pins["uv"]}"' in workflow and f'NOX_VERSION: "{pins["nox"]}"' in workflow
    groups = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["dependency-groups"]
    assert f"nox=={pins['nox']}" in groups["test"] and f"uv=={pins['uv']}" in groups["adoption"]
    # An app's noxfile (the README's and the foreign app's) installs the same nox and uv.
    noxfile = next(b.text for b in adoption_blocks(GUIDE.read_text(encoding="utf-8")) if b.path == "noxfile.py")
    for text in (noxfile, (REPO_ROOT / "devtools" / "foreign_app" / "noxfile.py").read_text()):
        assert f'"nox=={pins["nox"]}"' in text and f'"uv=={pins["uv"]}"' in text


def test_the_readme_is_short_and_the_site_has_no_broken_link(tmp_path: Path) -> None:
    """A newcomer reads the README in five minutes; every link between the pages (and to a heading) holds,
    and the table of configuration keys is config.py's."""
    from devtools.api_docs import config_doc_problems, render_guide

    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250
    pages, problems = render_guide(tmp_path / "site")
    assert problems == [] and len(pages) == len(PAGES) + 1, problems  # + CHANGELOG.md
    assert config_doc_problems() == []
    broken = tmp_path / "broken"
    shutil.copytree(REPO_ROOT / "docs", broken / "docs")
    for name in ("README.md", "CHANGELOG.md"):
        shutil.copy(REPO_ROOT / name, broken / name)
    page = broken / "docs" / "ci.md"
    page.write_text(page.read_text() + "\nSee [nowhere](steps.md#no-such-heading) and [gone](gone.md).\n")
    _, problems = render_guide(tmp_path / "broken-site", root=broken)
    assert problems == [
        "ci.html: a link to steps.html#no-such-heading, a heading that does not exist",
        "ci.html: a link to gone.md, which is not a page of the guide",
    ], problems


def test_the_readme_names_the_workflows_inputs_secret_and_ref() -> None:
    """An adopter learns from the README alone what to call, at which ref, with what."""
    import yaml

    from build_hooks.versions import suite_version

    text = README.read_text(encoding="utf-8")
    document = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "embedding-pipeline.yml").read_text())
    called = (document.get("on") or document[True])["workflow_call"]
    assert all(f"`{name}`" in text for name in [*called["inputs"], *called["secrets"]]), "every input and secret"
    assert f"embedding-pipeline.yml@v{suite_version()}`" in text and "`OWNER`" in text
