"""The suite's version, the places an app names it, and the old usages an upgrade must remove.

An app names the suite's version in three places: its noxfile's PEP 723 block (what nox
installs before it reads the noxfile), its ``uv.lock`` (what every session installs) and the
ref its workflows call the reusable pipeline at (``embedding-pipeline.yml@v0.2.0``). They must
agree, and agree with the suite that runs. :func:`project_problems` says, one line each, where
they do not, and names every usage an earlier version took that this one refuses, with the edit
that fixes it (the same edit CHANGELOG.md's Upgrading part gives). ``register`` (nox) and
``embedding-pipeline check-project`` run it before anything is built.

Versions follow semantic versioning; before 1.0 a minor release (0.2 to 0.3) may break, a patch
release never does (see CHANGELOG.md).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from build_hooks.errors import UsageError

__all__ = [
    "DISTRIBUTION",
    "RUNTIME_DISTRIBUTION",
    "installed_versions",
    "locked_packages",
    "locked_version",
    "locked_versions",
    "named_python",
    "project_problems",
    "python_version_problem",
    "script_requirements",
    "spec_problems",
    "suite_version",
    "workflow_refs",
]

DISTRIBUTION = "desktop-embedding-pipeline"
"""The suite's distribution name, as the app's ``uv.lock`` and the noxfile's PEP 723 block name it."""
RUNTIME_DISTRIBUTION = "embedding-runtime"
"""The runtime's distribution name (the app's run-time dependency)."""
REUSABLE_WORKFLOW = "embedding-pipeline.yml"
_UPGRADING = "CHANGELOG.md, Upgrading to 0.2.0"
# PEP 723's reference regular expression for a `# /// script` block.
_SCRIPT_BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")
_USES = re.compile(
    r"""uses:\s*["']?(?P<target>[^\s"'#]*/\.github/workflows/embedding-pipeline\.yml)@(?P<ref>[^\s"'#]+)"""
)
_SHA = re.compile(r"[0-9a-f]{40}")
# SpecInputs attributes a spec of an earlier version used, with the edit that replaces each.
REMOVED_SPEC_ATTRIBUTES = {
    "hiddenimports": (
        "0.2.0",
        "delete the line `hiddenimports=spec.hiddenimports,` from the spec's Analysis(...): the runtime's "
        "hooks come through the pyinstaller40 entry point",
    ),
}


def suite_version() -> str:
    """The version of the suite that runs: its installed metadata, or (a source checkout, as this
    repository's own noxfile imports it) the version its ``pyproject.toml`` declares."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        source = Path(__file__).resolve().parents[1] / "pyproject.toml"
        return str(tomllib.loads(source.read_text(encoding="utf-8"))["project"]["version"])


def locked_packages(lock: Path) -> list[dict[str, Any]] | None:
    """The package tables of a uv lock file, read once by each caller; ``None`` without a lock.
    :class:`UsageError` when the lock cannot be read."""
    try:
        packages = tomllib.loads(lock.read_text(encoding="utf-8")).get("package", [])
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise UsageError(f"{lock} cannot be read ({err}): run `uv lock` in {lock.parent}") from None
    return [p for p in packages if isinstance(p, dict) and "name" in p]


def locked_versions(lock: Path) -> dict[str, str]:
    """Every distribution a uv lock file names, by canonical name, with its version (none without a lock)."""
    return {canonicalize_name(str(p["name"])): str(p.get("version")) for p in locked_packages(lock) or []}


def installed_versions(names: Iterable[str]) -> dict[str, str]:
    """The installed version of each distribution (``absent`` for one that is not installed), by name."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def locked_version(lock: Path, name: str) -> str | None:
    """The version of ``name`` in a uv lock file; ``None`` without a lock or without the package."""
    return locked_versions(lock).get(canonicalize_name(name))


def script_requirements(noxfile: Path) -> list[Requirement] | None:
    """The requirements of the noxfile's PEP 723 ``script`` block; ``None`` when it has no block.
    :class:`UsageError` when the block is not TOML or names a requirement that is not one."""
    try:
        text = noxfile.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    blocks = [m for m in _SCRIPT_BLOCK.finditer(text) if m["type"] == "script"]
    if not blocks:
        return None
    content = "".join(line[2:] if line.startswith("# ") else line[1:] for line in blocks[0]["content"].splitlines(True))
    try:
        return [Requirement(str(dep)) for dep in tomllib.loads(content).get("dependencies", [])]
    except (tomllib.TOMLDecodeError, InvalidRequirement) as err:
        raise UsageError(f"{noxfile}'s `# /// script` block cannot be read ({err}): see PEP 723") from None


def workflow_refs(root: Path) -> Iterator[tuple[Path, str]]:
    """Each place the app's workflows call the reusable pipeline, with the ref it is called at
    (a workflow of this repository calls it by path, ``./.github/...``, at no ref: not listed)."""
    for workflow in sorted((root / ".github" / "workflows").glob("*.y*ml")):
        for match in _USES.finditer(workflow.read_text(encoding="utf-8", errors="replace")):
            if not match["target"].startswith("./"):
                yield workflow, match["ref"]


def spec_problems(spec: Path) -> list[str]:
    """The usages of SpecInputs an earlier version had and this one removed, in the spec's text."""
    try:
        text = spec.read_text(encoding="utf-8")
    except OSError:
        return []  # the build names a missing spec itself
    return [
        f"{spec.name} uses SpecInputs.{name}, removed in {version}: {fix} ({_UPGRADING})"
        for name, (version, fix) in REMOVED_SPEC_ATTRIBUTES.items()
        if re.search(rf"\.{name}\b", text)
    ]


def project_problems(root: Path, running: str | None = None) -> list[str]:
    """Every place the app at ``root`` disagrees with the suite that runs (``running``, default the
    installed one), one line each naming the fix: the PEP 723 block, ``uv.lock``, the workflows'
    refs, ``[tool.uv.sources]`` and the removed usages in its PyInstaller spec."""
    running = running or suite_version()
    document = _pyproject(root)
    if canonicalize_name(str(document.get("project", {}).get("name", ""))) == DISTRIBUTION:
        return []  # the suite's own checkout: its noxfile imports the source it stands in
    problems: list[str] = []
    locked = locked_version(root / "uv.lock", DISTRIBUTION)
    expected = locked or running
    declared = script_requirements(root / "noxfile.py")
    if declared is None or not (pins := [r for r in declared if canonicalize_name(r.name) == DISTRIBUTION]):
        problems.append(
            f"noxfile.py has no PEP 723 block pinning {DISTRIBUTION}: put `# /// script`, "
            f'`# dependencies = ["nox", "uv", "{DISTRIBUTION}=={expected}"]`, `# ///` at its top, so nox '
            f"installs the suite before it reads the noxfile ({_UPGRADING})"
        )
    else:
        problems += [
            f'noxfile.py\'s script block asks for "{pin}" but uv.lock holds {DISTRIBUTION} {locked}: make them the '
            f"same (edit the block, or `uv lock --upgrade-package {DISTRIBUTION}`)"
            for pin in pins
            if locked is not None and not pin.specifier.contains(locked, prereleases=True)
        ]
    if locked is not None and running != locked:
        problems.append(
            f"this is {DISTRIBUTION} {running} but uv.lock holds {DISTRIBUTION} {locked}: pin "
            f'"{DISTRIBUTION}=={locked}" in noxfile.py\'s script block (or `uv add --group build '
            f'"{DISTRIBUTION}=={running}"` to move the app to this one)'
        )
    problems += _ref_problems(root, expected)
    problems += _source_problems(document)
    problems += _pin_problems(document, running)
    spec = document.get("tool", {}).get("embedding-pipeline", {}).get("pyinstaller-spec")
    if isinstance(spec, str):
        problems += spec_problems(root / spec)
    return problems


def _ref_problems(root: Path, expected: str) -> Iterator[str]:
    for workflow, ref in workflow_refs(root):
        where = workflow.relative_to(root).as_posix()
        if _SHA.fullmatch(ref):
            continue  # a commit: pinned, whatever it released
        try:
            version = Version(ref.removeprefix("v"))
        except InvalidVersion:
            yield (
                f"{where} calls {REUSABLE_WORKFLOW}@{ref}, a branch that moves on without the app: call it at "
                f"@v{expected}, the tag of the suite the app uses"
            )
            continue
        if version != Version(expected):
            yield (
                f"{where} calls {REUSABLE_WORKFLOW}@{ref} but uv.lock holds {DISTRIBUTION} {expected}: call it at "
                f"@v{expected} (or lock the suite the tag released)"
            )


def _pyproject(root: Path) -> dict[str, Any]:
    try:
        return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}  # the configuration's own loader names what is wrong with it


def _pin_problems(document: dict[str, Any], running: str) -> Iterator[str]:
    """The app's own requirements on the suite and the runtime (they share one version number)."""
    project = document.get("project", {})
    places: dict[str, list[Any]] = {"[project] dependencies": list(project.get("dependencies", []))}
    for group, listed in {**project.get("optional-dependencies", {}), **document.get("dependency-groups", {})}.items():
        places[f"{group} group"] = list(listed)
    for where, listed in places.items():
        for text in listed:
            if not isinstance(text, str):
                continue  # {include-group = ...}
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue  # uv names it
            name = canonicalize_name(requirement.name)
            if name in (DISTRIBUTION, RUNTIME_DISTRIBUTION) and not requirement.specifier.contains(running, True):
                group = " --group build" if name == DISTRIBUTION and where.endswith("group") else ""
                extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
                yield (
                    f'pyproject.toml ({where}) asks for "{requirement}", not {running}: '
                    f'`uv add{group} "{requirement.name}{extras}=={running}"` ({_UPGRADING})'
                )


def _source_problems(document: dict[str, Any]) -> Iterator[str]:
    sources = document.get("tool", {}).get("uv", {}).get("sources", {})
    for name, source in sources.items():
        if canonicalize_name(name) in (DISTRIBUTION, RUNTIME_DISTRIBUTION):
            yield (
                f"pyproject.toml's [tool.uv.sources] takes {name} from {source}: delete that line; the suite and the "
                f"runtime install from the package index (or, unreleased, from `find-links`) ({_UPGRADING})"
            )


_PYTHON_VERSION = re.compile(r"^3\.\d{1,2}(\.\d{1,3})?$")


def named_python(root: Path) -> tuple[object, str] | None:
    """The Python the app at ``root`` names, and where: ``python`` in its ``[tool.embedding-pipeline]``
    table, else the first line of its ``.python-version``; ``None`` when it names none (unchecked:
    :func:`python_version_problem` says what is wrong with it)."""
    tool = _pyproject(root).get("tool")
    table = tool.get("embedding-pipeline") if isinstance(tool, dict) else None
    if isinstance(table, dict) and table.get("python") is not None:
        return table["python"], "[tool.embedding-pipeline] python"
    pinned = root / ".python-version"
    if pinned.is_file():
        lines = [line.strip() for line in pinned.read_text(encoding="utf-8").splitlines()]
        if first := next((line for line in lines if line and not line.startswith("#")), None):
            return first, str(pinned)
    return None


def python_version_problem(value: object) -> str:
    """Why ``value`` is not a Python version an app may build with (``"3.12"``, ``"3.12.1"``), or "".
    The ``python`` key of the table is read by nox's own interpreter only (``nox_sessions.app_python``)."""
    if isinstance(value, str) and _PYTHON_VERSION.match(value):
        return ""
    return f'{value!r} is not a Python version: write one such as "3.12"'
