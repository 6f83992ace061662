"""The adopter's surface, recorded per release, and the rule that guards it.

What an app (or its build) touches of the two packages:

- the Python names: the runtime's ``__all__``; ``register`` and the rest of
  ``build_hooks.nox_sessions``; ``SpecInputs``; ``options_for_project``; the errors;
- the configuration keys of ``[tool.embedding-pipeline]`` and their defaults;
- the ``embedding-pipeline`` commands and each one's flags;
- the reusable workflow's inputs and secrets.

``api-snapshot.json`` records it as the last release left it (``update-api`` when a release is
cut), with that release's version. ``check-api`` compares this checkout with it. A compatible
change (a new name, key, flag or optional input) passes. A breaking one passes only when the
version in ``pyproject.toml`` is a breaking step up from the recorded one (before 1.0 the minor,
then the major) and CHANGELOG.md's part for that version has an Upgrading line naming what
changed; otherwise each one fails ``nox -s lint`` with a line naming it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.version import Version

from devtools.release import WORKFLOW, changelog_part, project_version, version_places

REPO_ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT_NAME = "api-snapshot.json"
# The Python modules whose `__all__` an adopter uses.
PYTHON_SURFACE = (
    "embedding_runtime",
    "build_hooks.nox_sessions",
    "build_hooks.pyinstaller_spec",
    "build_hooks.build_nuitka",
    "build_hooks.errors",
)
# A value that changes with every release, not with the API.
_RELEASE_VALUES = {"__version__"}
# Recorded per object, but not part of the API: where it sits and what it says.
_NOT_API = {"docstring", "lineno", "endlineno", "filepath", "relative_filepath", "relative_package_filepath"}
# Run in a child with the checkout's packages first on the path: the keys and the parsers as they are.
_CHILD = r"""
import argparse, importlib, json, sys
from pathlib import Path
from build_hooks.config import KEYS
from build_hooks.pipeline_steps import COMMANDS

class Parsed(Exception):
    pass

def parsed(self, args=None, namespace=None):
    raise Parsed(self)

argparse.ArgumentParser.parse_known_args = parsed

def plain(value):
    here = str(Path.cwd())
    if isinstance(value, (str, Path)) and str(value).startswith(here):  # a default under the project
        return "<project>" + str(value)[len(here):].replace("\\", "/")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)

commands = {}
for command in COMMANDS:
    try:
        importlib.import_module(command.module).main(list(command.args), prog=command.name)
    except Parsed as caught:
        parser = caught.args[0]
    else:
        raise SystemExit(f"{command.name}: its main() returned without parsing a command line")
    flags = {}
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        name = "/".join(action.option_strings) or action.dest
        flags[name] = {
            "action": type(action).__name__, "required": bool(action.required), "nargs": plain(action.nargs),
            "default": plain(action.default), "choices": plain(sorted(action.choices)) if action.choices else None,
        }
    commands[command.name] = flags
json.dump({"config": {key: plain(default) for key, default in KEYS.items()}, "cli": commands}, sys.stdout)
"""


class SurfaceError(Exception):
    """The surface cannot be read (a module, the workflow or a command line would not load)."""


@dataclass(frozen=True)
class Change:
    """One difference between the recorded surface and this checkout's."""

    part: str  # "python", "config", "cli", "workflow"
    subject: str  # what an Upgrading line must name: `SpecInputs.hiddenimports`, `--lock`, `skip-nuitka`
    what: str  # the whole line
    breaking: bool


# -- reading the surface -----------------------------------------------------------------


def surface(root: Path = REPO_ROOT) -> dict[str, Any]:
    """The adopter's surface of the checkout at ``root``, as the snapshot records it."""
    return {
        "version": project_version(root),
        "python": {module: python_surface(root, module) for module in PYTHON_SURFACE},
        **_child_surface(root),
        "workflow": workflow_surface(root),
    }


def python_surface(root: Path, module: str) -> dict[str, Any]:
    """A module's ``__all__`` as griffe sees it: each name's signature, members and values, without
    docstrings or line numbers (a docstring is not the API) and without private members."""
    import griffe

    try:
        loaded = griffe.load(module, search_paths=[str(root)], resolve_aliases=True, resolve_external=False)
    except Exception as err:  # griffe raises its own and the parser's errors
        raise SurfaceError(f"{module} cannot be loaded from {root}: {err}") from err
    exports = sorted(str(name) for name in loaded.exports or ())
    if not exports:
        raise SurfaceError(f"{module} has no __all__: its surface would be empty")
    members = {}
    for name in exports:
        obj = loaded[name]
        target = obj.final_target if obj.is_alias else obj
        members[name] = _without(json.loads(target.as_json()), _NOT_API) | {"name": name}
        if name in _RELEASE_VALUES:
            members[name].pop("value", None)
    return {"kind": "module", "name": module, "members": members, "exports": exports}


def _child_surface(root: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDING_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", _CHILD], cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise SurfaceError(f"the commands and keys of {root} cannot be read: {result.stderr.strip()[-2000:]}")
    return dict(json.loads(result.stdout))


def workflow_surface(root: Path) -> dict[str, Any]:
    """The reusable workflow's inputs (type, default, required) and secrets (required)."""
    try:
        document = yaml.safe_load((root / WORKFLOW).read_text(encoding="utf-8"))
        called = (document.get("on") or document.get(True))["workflow_call"]
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as err:
        raise SurfaceError(f"{WORKFLOW} declares no workflow_call: {err}") from err
    inputs = {
        name: {"type": spec.get("type"), "default": spec.get("default"), "required": bool(spec.get("required"))}
        for name, spec in (called.get("inputs") or {}).items()
    }
    secrets = {
        name: {"required": bool((spec or {}).get("required"))} for name, spec in (called.get("secrets") or {}).items()
    }
    return {"inputs": inputs, "secrets": secrets}


def _without(value: Any, keys: set[str]) -> Any:
    """``value`` without ``keys`` and without private members (``_roots``: how a class works, not what
    an app calls; dunders such as ``__init__`` stay)."""
    if isinstance(value, dict):
        shaped = {k: _without(v, keys) for k, v in value.items() if k not in keys}
        if isinstance(shaped.get("members"), dict):
            shaped["members"] = {k: v for k, v in shaped["members"].items() if not _private(k)}
        return shaped
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


# -- comparing ---------------------------------------------------------------------------


def changes(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[Change]:
    """Every difference, breaking or not, part by part."""
    found: list[Change] = []
    for module in sorted(set(recorded["python"]) | set(current["python"])):
        found += _python_changes(module, recorded["python"].get(module), current["python"].get(module))
    found += _mapping_changes("config", "key", recorded["config"], current["config"], _config_break)
    for name in sorted(set(recorded["cli"]) | set(current["cli"])):
        before, after = recorded["cli"].get(name), current["cli"].get(name)
        if before is None:
            found.append(Change("cli", name, f"command `{name}` was added", False))
        elif after is None:
            found.append(Change("cli", name, f"command `{name}` was removed", True))
        else:
            found += _mapping_changes("cli", f"`{name}` flag", before, after, _flag_break)
    found += _mapping_changes(
        "workflow", "input", recorded["workflow"]["inputs"], current["workflow"]["inputs"], _input_break
    )
    found += _mapping_changes(
        "workflow", "secret", recorded["workflow"]["secrets"], current["workflow"]["secrets"], _input_break
    )
    return found


def _python_changes(module: str, before: Any, after: Any) -> Iterator[Change]:
    import griffe

    if before == after:
        return
    if before is None or after is None:
        yield Change("python", module, f"module {module} was {'added' if before is None else 'removed'}", after is None)
        return
    old, new = _as_griffe(before), _as_griffe(after)
    broken = False
    for breakage in griffe.find_breaking_changes(old, new):
        broken = True
        line = re.sub(r"\x1b\[[0-9;]*m", "", breakage.explain(style=griffe.ExplanationStyle.ONE_LINE))
        line = re.sub(r"^[^ ]*:\d+: ", "", line)
        subject = breakage.obj.path.removeprefix(f"{module}.")
        yield Change("python", subject, f"{module}: {line}", True)
    if not broken:
        added = sorted(set(after["members"]) - set(before["members"]))
        yield Change(
            "python", module, f"{module} changed compatibly ({', '.join(added) or 'signatures or members'})", False
        )


def _mapping_changes(
    part: str, kind: str, before: Mapping[str, Any], after: Mapping[str, Any], rule: Any
) -> Iterator[Change]:
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, _ABSENT), after.get(name, _ABSENT)
        if old == new:
            continue
        subject = name.split("/")[-1]
        if old is _ABSENT:
            breaking = rule(None, new)
            yield Change(part, subject, f"{kind} {name} was added{' as required' if breaking else ''}", breaking)
        elif new is _ABSENT:
            yield Change(part, subject, f"{kind} {name} was removed", True)
        else:
            breaking = rule(old, new)
            yield Change(part, subject, f"{kind} {name} changed from {json.dumps(old)} to {json.dumps(new)}", breaking)


_ABSENT = object()


def _config_break(old: Any, new: Any) -> bool:
    if old is None:  # a new key: breaking only when every table must now write it
        return bool(new == "required")
    return True  # another default changes what an unchanged table means


def _flag_break(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    if old is None:
        return bool(new["required"])
    choices_lost = old["choices"] is not None and (
        new["choices"] is None or not set(old["choices"]) <= set(new["choices"])
    )
    return bool(
        (new["required"] and not old["required"])
        or old["default"] != new["default"]
        or old["action"] != new["action"]
        or (old["nargs"] != new["nargs"] and not (new["nargs"] in ("*", "?") and old["nargs"] in (None, "?")))
        or choices_lost
    )


def _input_break(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    if old is None:
        return bool(new["required"])
    became_required = bool(new["required"]) and not old["required"]
    return became_required or old.get("type") != new.get("type") or old.get("default") != new.get("default")


def _as_griffe(module_surface: Mapping[str, Any]) -> Any:
    import griffe

    shaped = _with_positions(module_surface, str(module_surface["name"]))
    return json.loads(json.dumps(shaped), object_hook=griffe.json_decoder)


def _with_positions(value: Any, module: str) -> Any:
    # griffe's decoder wants a line number on every object; the snapshot leaves them out.
    if isinstance(value, dict):
        shaped = {k: _with_positions(v, module) for k, v in value.items()}
        for decorator in shaped.get("decorators", []):
            decorator.update(lineno=1, endlineno=1)
        if "kind" in shaped and shaped["kind"] in ("module", "class", "function", "attribute"):
            shaped.setdefault("lineno", 1)
            shaped.setdefault("endlineno", 1)
            if shaped["kind"] == "module":
                shaped.setdefault("filepath", f"{module.replace('.', '/')}.py")
        return shaped
    if isinstance(value, list):
        return [_with_positions(v, module) for v in value]
    return value


# -- the rule ----------------------------------------------------------------------------


def breaking_step(recorded: str, current: str) -> bool:
    """Is ``current`` a version that may break what ``recorded`` offered? Before 1.0 a minor step
    (0.2 to 0.3), from 1.0 a major one."""
    old, new = Version(recorded), Version(current)
    if new.major != old.major:
        return new.major > old.major
    return new.major == 0 and new.minor > old.minor


def upgrading_text(part: str) -> str:
    """A changelog part's ``### Upgrading`` section ('' without one)."""
    match = re.search(r"(?ms)^### Upgrading[^\n]*\n(.*?)(?=^### |\Z)", part)
    return match[1] if match else ""


def check(root: Path = REPO_ROOT) -> tuple[list[str], list[str]]:
    """(failures, notes): every breaking change the version and the changelog do not allow, and a
    note for each allowed or compatible one. An unreadable snapshot or a version without its
    changelog part is a failure too."""
    snapshot = root / SNAPSHOT_NAME
    try:
        recorded = json.loads(snapshot.read_text(encoding="utf-8"))
        recorded_version = str(recorded["version"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        return [f"{SNAPSHOT_NAME} cannot be read ({err}): run `python -m devtools.api_docs update-api`"], []
    current = surface(root)
    version = current["version"]
    changelog = (root / "CHANGELOG.md").read_text(encoding="utf-8")
    part = changelog_part(changelog, version)
    failures: list[str] = version_places(root, version)
    if part is None:
        failures.append(f"CHANGELOG.md has no part `## [{version}]` for the version in pyproject.toml: add it")
    upgrading = upgrading_text(part or "")
    notes: list[str] = []
    for change in changes(recorded, current):
        if not change.breaking:
            notes.append(f"compatible: {change.what}")
            continue
        if not breaking_step(recorded_version, version):
            failures.append(
                f"breaking: {change.what}: {recorded_version} -> {version} may not break; make the version "
                f"{_next_breaking(recorded_version)} and give it an Upgrading line naming `{change.subject}`"
            )
        elif change.subject not in upgrading:
            failures.append(
                f"breaking: {change.what}: CHANGELOG.md's [{version}] has no Upgrading line naming `{change.subject}`"
            )
        else:
            notes.append(f"breaking, with its Upgrading line in [{version}]: {change.what}")
    return failures, notes


def _next_breaking(version: str) -> str:
    parsed = Version(version)
    return f"0.{parsed.minor + 1}.0" if parsed.major == 0 else f"{parsed.major + 1}.0.0"


def update(root: Path = REPO_ROOT) -> Path:
    """Record this checkout's surface (a release does this): temp name, then rename."""
    snapshot = root / SNAPSHOT_NAME
    text = json.dumps(surface(root), indent=1, sort_keys=True) + "\n"
    temp = snapshot.with_name(snapshot.name + ".tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(snapshot)
    return snapshot
