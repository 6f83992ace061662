"""The API reference (pdoc, from docstrings) and the runtime's API snapshot (griffe).

    python -m devtools.api_docs build [OUT]     HTML into OUT (build/docs); fails on a warning
                                               or a public name without a docstring
    python -m devtools.api_docs check-api       the runtime's public API against runtime/api-snapshot.json
    python -m devtools.api_docs update-api      rewrite the snapshot (a deliberate act, in the commit
                                               that changes the API)

The reference covers what an app calls (the runtime's ``__all__``) and what an
adopting build uses of the suite: ``register`` (noxfile), ``SpecInputs`` (spec),
``options_for_project`` (a Nuitka command line), the configuration table and
the ``embedding-pipeline`` console script.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = REPO_ROOT / "runtime" / "api-snapshot.json"
RUNTIME = "embedding_runtime"
DOCUMENTED = (
    RUNTIME,
    "build_hooks.nox_sessions",
    "build_hooks.pyinstaller_spec",
    "build_hooks.build_nuitka",
    "build_hooks.config",
    "build_hooks.cli",
    "build_hooks.errors",
)
# Documented by their class's docstring (its Args, or the fields' own docstrings).
_UNDOCUMENTED_OK = {"__init__"}
# Recorded per object, but not part of the API: where it sits and what it says.
_NOT_API = {"docstring", "lineno", "endlineno", "filepath", "relative_filepath", "relative_package_filepath"}


class DocsError(Exception):
    """The reference cannot be built clean, or the API changed without its snapshot."""


# -- the reference ----------------------------------------------------------------------


def undocumented(modules: tuple[str, ...] = DOCUMENTED) -> list[str]:
    """Every public name of the documented modules (and of their classes) without a docstring."""
    import pdoc.doc

    def walk(doc: pdoc.doc.Module | pdoc.doc.Class) -> Iterator[str]:
        members = doc.members.values() if isinstance(doc, pdoc.doc.Module) else doc.own_members
        for member in members:
            if (member.name.startswith("_") and member.name != "__version__") or member.name in _UNDOCUMENTED_OK:
                continue
            if not member.docstring.strip():
                yield f"{member.modulename}.{member.qualname}"
            if isinstance(member, pdoc.doc.Class):
                yield from walk(member)

    return [name for module in modules for name in walk(pdoc.doc.Module(importlib.import_module(module)))]


def build(out: Path) -> list[Path]:
    """The HTML reference in ``out``; :class:`DocsError` on a warning or an undocumented name."""
    import pdoc
    import pdoc.render

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.render.configure(docformat="google", show_source=False, search=True)
        pdoc.pdoc(*DOCUMENTED, rf"!{RUNTIME}\.build_api", r"!build_hooks\.cli\.", output_directory=out)
        missing = undocumented()
    problems = [f"warning: {w.category.__name__}: {w.message}" for w in caught]
    problems += [f"no docstring: {name}" for name in missing]
    if problems:
        raise DocsError("\n".join(problems))
    return sorted(out.rglob("*.html"))


# -- the runtime's API snapshot -----------------------------------------------------------


def api_surface() -> dict[str, Any]:
    """The runtime's public API as griffe sees it: each name of ``__all__`` with its signature,
    members and values, without docstrings or line numbers (a docstring is not the API)."""
    import griffe

    package = griffe.load(RUNTIME, search_paths=[str(REPO_ROOT)], resolve_aliases=True, resolve_external=False)
    exports = sorted(str(name) for name in package.exports or ())  # __all__: plain strings here
    members = {}
    for name in exports:
        obj = package[name]
        target = obj.final_target if obj.is_alias else obj
        members[name] = _without(json.loads(target.as_json()), _NOT_API) | {"name": name}
    return {"kind": "module", "name": RUNTIME, "members": members, "exports": exports}


def _without(value: Any, keys: set[str]) -> Any:
    """``value`` without ``keys`` and without private members (``_roots``, ``_embed``: how a class works,
    not what an app calls; dunders such as ``__init__`` stay)."""
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


def _as_griffe(surface: dict[str, Any]) -> Any:
    import griffe

    shaped = _with_positions(surface)
    return json.loads(json.dumps(shaped), object_hook=griffe.json_decoder)


def _with_positions(value: Any) -> Any:
    # griffe's decoder wants a line number on every object; the snapshot leaves them out.
    if isinstance(value, dict):
        shaped = {k: _with_positions(v) for k, v in value.items()}
        for decorator in shaped.get("decorators", []):
            decorator.update(lineno=1, endlineno=1)
        if "kind" in shaped and shaped["kind"] in ("module", "class", "function", "attribute"):
            shaped.setdefault("lineno", 1)
            shaped.setdefault("endlineno", 1)
            if shaped["kind"] == "module":
                shaped.setdefault("filepath", f"{RUNTIME}/__init__.py")
        return shaped
    if isinstance(value, list):
        return [_with_positions(v) for v in value]
    return value


def check_api(snapshot: Path = SNAPSHOT) -> list[str]:
    """What changed in the runtime's public API since the snapshot: each breaking change (griffe's
    rules), or one line saying it grew; an empty list when the snapshot is current."""
    import griffe

    current = api_surface()
    try:
        recorded = json.loads(snapshot.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return [f"{snapshot} cannot be read ({err}): run `python -m devtools.api_docs update-api`"]
    if recorded == current:
        return []
    breaks = [
        # One line without colours or the (left out) position: "pack_vector(order): Parameter was removed".
        re.sub(
            r"^[^ ]*:\d+: ", "", re.sub(r"\x1b\[[0-9;]*m", "", breakage.explain(style=griffe.ExplanationStyle.ONE_LINE))
        )
        for breakage in griffe.find_breaking_changes(_as_griffe(recorded), _as_griffe(current))
    ]
    if breaks:
        return [f"breaking: {line}" for line in breaks]
    added = sorted(set(current["members"]) - set(recorded["members"]))
    return [f"the API changed compatibly ({', '.join(added) or 'signatures or members'}): update the snapshot"]


def update_api(snapshot: Path = SNAPSHOT) -> None:
    text = json.dumps(api_surface(), indent=1, sort_keys=True) + "\n"
    temp = snapshot.with_name(snapshot.name + ".tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(snapshot)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.api_docs", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "check-api", "update-api"])
    parser.add_argument("out", nargs="?", type=Path, default=REPO_ROOT / "build" / "docs")
    args = parser.parse_args(argv)
    if args.command == "build":
        try:
            pages = build(args.out)
        except DocsError as err:
            print(f"ERROR: the API reference is not clean:\n{err}", file=sys.stderr)
            return 1
        print(f"API reference: {len(pages)} pages in {args.out} (open {args.out / 'index.html'})")
    elif args.command == "check-api":
        changes = check_api()
        for line in changes:
            print(f"ERROR: runtime API: {line}", file=sys.stderr)
        if changes:
            print(
                "ERROR: the runtime's public API differs from runtime/api-snapshot.json: if that is intended,"
                " run `python -m devtools.api_docs update-api` in the same commit (and bump the runtime's"
                " version for a breaking change)",
                file=sys.stderr,
            )
            return 1
        print(f"runtime API: as recorded in {SNAPSHOT.relative_to(REPO_ROOT)}")
    else:
        update_api()
        print(f"runtime API: recorded in {SNAPSHOT.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
