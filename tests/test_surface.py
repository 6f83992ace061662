"""The adopter's surface is guarded: a breaking change fails `nox -s lint` (its check-api) unless the
version steps up and CHANGELOG.md's part for it has an Upgrading line naming the change.

Each test edits a copy of this checkout's packages, workflow, changelog and snapshot, and runs the
check exactly as the lint session does (``python -m devtools.api_docs check-api``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.release import changelog_part, project_version
from devtools.surface import SNAPSHOT_NAME, breaking_step
from tests.support import REPO_ROOT, child_env

COPIED = ("build_hooks", "embedding_runtime", "runtime/pyproject.toml", "pyproject.toml", "CHANGELOG.md", SNAPSHOT_NAME)
WORKFLOW = ".github/workflows/embedding-pipeline.yml"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    for name in (*COPIED, WORKFLOW):
        source, target = REPO_ROOT / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    return root


def check_api(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devtools.api_docs", "check-api", "--root", str(root)],
        cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]


def set_version(root: Path, version: str) -> None:
    """``version`` in every place the packages name theirs."""
    old = project_version(root)
    replace(root / "pyproject.toml", f'version = "{old}"', f'version = "{version}"')
    replace(root / "pyproject.toml", f'"embedding-runtime=={old}"', f'"embedding-runtime=={version}"')
    replace(root / "runtime" / "pyproject.toml", f'version = "{old}"', f'version = "{version}"')
    replace(root / "embedding_runtime" / "__init__.py", f'__version__ = "{old}"', f'__version__ = "{version}"')
    replace(root / WORKFLOW, f'SUITE_VERSION: "{old}"', f'SUITE_VERSION: "{version}"')


def release(root: Path, version: str, upgrading: str) -> None:
    """Make ``version`` the checkout's version, with its changelog part and Upgrading lines."""
    set_version(root, version)
    part = f"## [{version}] - unreleased\n\n### Changed\n- a change\n\n### Upgrading\n{upgrading}\n\n"
    replace(root / "CHANGELOG.md", "## [Unreleased]\n", f"## [Unreleased]\n\n{part}")


def test_the_recorded_surface_is_this_checkouts(checkout: Path) -> None:
    result = check_api(checkout)
    assert result.returncode == 0, result.stderr
    assert errors(result) == []


def test_renaming_a_parameter_of_register_fails_and_names_it(checkout: Path) -> None:
    sessions = checkout / "build_hooks" / "nox_sessions.py"
    replace(sessions, "def register(root: Path,", "def register(project_root: Path,")
    replace(sessions, "    check_suite_version(root)\n", "    check_suite_version(project_root)\n")
    result = check_api(checkout)
    assert result.returncode == 1
    lines = [e for e in errors(result) if "build_hooks.nox_sessions: register(" in e]
    assert any("register(root): Parameter was removed" in line and "may not break" in line for line in lines), lines
    assert any("register(project_root): Parameter was added as required" in line for line in lines), lines


def test_removing_a_spec_inputs_attribute_fails_and_names_it(checkout: Path) -> None:
    spec = checkout / "build_hooks" / "pyinstaller_spec.py"
    text = spec.read_text(encoding="utf-8")
    removed = re.sub(r"    @property\n    def excludes\(self\).*?(?=\n    def |\n    @)", "", text, count=1, flags=re.S)
    assert removed != text
    spec.write_text(removed, encoding="utf-8")
    result = check_api(checkout)
    assert result.returncode == 1
    assert any("SpecInputs.excludes" in line and "removed" in line.lower() for line in errors(result)), result.stderr


def test_a_breaking_change_passes_with_a_breaking_version_and_its_upgrading_line(checkout: Path) -> None:
    replace(checkout / "build_hooks" / "cli" / "verify_artifact.py", '"--static-only"', '"--no-self-check"')
    failing = check_api(checkout)
    assert any("`verify-artifact` flag --static-only was removed" in line for line in errors(failing)), failing.stderr
    release(checkout, "0.2.1", "- pass `--no-self-check` for `--static-only`")
    patch = check_api(checkout)
    assert any("0.2.0 -> 0.2.1 may not break" in line for line in errors(patch)), "a patch release never breaks"
    minor = checkout.parent / "minor"
    shutil.copytree(checkout, minor)
    set_version(minor, "0.3.0")
    replace(minor / "CHANGELOG.md", "## [0.2.1]", "## [0.3.0]")
    allowed = check_api(minor)
    assert allowed.returncode == 0, allowed.stderr
    assert "breaking, with its Upgrading line in [0.3.0]: `verify-artifact` flag --static-only was removed" in (
        allowed.stdout
    )


def test_a_breaking_version_without_the_upgrading_line_fails_naming_what_is_missing(checkout: Path) -> None:
    sessions = checkout / "build_hooks" / "errors.py"
    replace(
        sessions,
        '__all__ = ["PipelineError", "PreflightError", "UsageError"]',
        '__all__ = ["PipelineError", "UsageError"]',
    )
    release(checkout, "0.3.0", "- something else entirely")
    result = check_api(checkout)
    assert result.returncode == 1
    assert any("has no Upgrading line naming `PreflightError`" in line for line in errors(result)), result.stderr


def test_config_keys_and_workflow_inputs_are_part_of_the_surface(checkout: Path) -> None:
    replace(checkout / "build_hooks" / "config.py", '    "variants": "both",\n', '    "variants": "fp32",\n')
    replace(checkout / WORKFLOW, "      skip-nuitka:\n", "      without-nuitka:\n")
    lines = errors(check_api(checkout))
    assert any('key variants changed from "both" to "fp32"' in line for line in lines), lines
    assert any("input skip-nuitka was removed" in line for line in lines), lines


def test_compatible_additions_pass_and_are_reported(checkout: Path) -> None:
    replace(
        checkout / "build_hooks" / "cli" / "clean.py",
        "    args = parser.parse_args(argv)\n",
        '    parser.add_argument("--dry-run", action="store_true", help="say what would go")\n'
        "    args = parser.parse_args(argv)\n",
    )
    result = check_api(checkout)
    assert result.returncode == 0, result.stderr
    assert "compatible: `clean` flag --dry-run was added" in result.stdout


def test_an_unreadable_snapshot_or_a_version_without_its_part_fails(checkout: Path) -> None:
    set_version(checkout, "0.2.1")
    assert any("CHANGELOG.md has no part `## [0.2.1]`" in line for line in errors(check_api(checkout)))
    (checkout / SNAPSHOT_NAME).write_text("{")
    assert any(f"{SNAPSHOT_NAME} cannot be read" in line for line in errors(check_api(checkout)))


def test_the_version_rule() -> None:
    assert breaking_step("0.2.0", "0.3.0") and breaking_step("0.9.1", "1.0.0") and breaking_step("1.4.0", "2.0.0")
    assert not breaking_step("0.2.0", "0.2.5") and not breaking_step("1.2.0", "1.3.0")
    assert not breaking_step("0.3.0", "0.2.0")
    changelog = (REPO_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert changelog_part(changelog, project_version(REPO_ROOT)), "this version has its part in CHANGELOG.md"


def test_every_place_that_names_the_version_must_name_the_same(checkout: Path) -> None:
    version = project_version(checkout)
    replace(checkout / "embedding_runtime" / "__init__.py", f'__version__ = "{version}"', '__version__ = "0.1.9"')
    replace(checkout / WORKFLOW, f'SUITE_VERSION: "{version}"', 'SUITE_VERSION: "0.1.9"')
    lines = errors(check_api(checkout))
    assert any(f"embedding_runtime.__version__ says 0.1.9, pyproject.toml's version {version}" in x for x in lines)
    assert any(f"{WORKFLOW}'s SUITE_VERSION says 0.1.9" in line for line in lines), lines
