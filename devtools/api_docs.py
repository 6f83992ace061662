"""The API reference (pdoc, from docstrings) and the adopter's surface check (griffe and more).

    python -m devtools.api_docs build [OUT]     HTML into OUT (build/docs); fails on a warning
                                               or a public name without a docstring
    python -m devtools.api_docs check-api       the adopter's surface against api-snapshot.json (the last
                                               release's) and CHANGELOG.md (devtools/surface.py)
    python -m devtools.api_docs update-api      record this checkout's surface (a release does this)

The reference covers what an app calls (the runtime's ``__all__``) and what an
adopting build uses of the suite: ``register`` (noxfile), ``SpecInputs`` (spec),
``options_for_project`` (a Nuitka command line), the configuration table and
the ``embedding-pipeline`` console script.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from devtools import surface

REPO_ROOT = Path(__file__).resolve().parent.parent
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.api_docs", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "check-api", "update-api"])
    parser.add_argument("out", nargs="?", type=Path, default=REPO_ROOT / "build" / "docs")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the checkout whose surface to check")
    args = parser.parse_args(argv)
    if args.command == "build":
        try:
            pages = build(args.out)
        except DocsError as err:
            print(f"ERROR: the API reference is not clean:\n{err}", file=sys.stderr)
            return 1
        print(f"API reference: {len(pages)} pages in {args.out} (open {args.out / 'index.html'})")
        return 0
    try:
        if args.command == "update-api":
            print(f"adopter surface: recorded in {surface.update(args.root)}")
            return 0
        failures, notes = surface.check(args.root)
    except surface.SurfaceError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    for line in notes:
        print(f"adopter surface: {line}")
    for line in failures:
        print(f"ERROR: adopter surface: {line}", file=sys.stderr)
    if failures:
        return 1
    print(f"adopter surface: checked against {surface.SNAPSHOT_NAME} and CHANGELOG.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
