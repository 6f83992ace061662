"""The documentation site (the guide and the API reference) and the adopter's surface check.

    python -m devtools.api_docs build [OUT]     the site into OUT (build/docs): README, docs/ and CHANGELOG
                                               rendered, the API reference (pdoc) in OUT/api; fails on a
                                               warning, a public name without a docstring, a broken link
                                               or a stale table of keys
    python -m devtools.api_docs check-api       the adopter's surface against api-snapshot.json (the last
                                               release's) and CHANGELOG.md (devtools/surface.py)
    python -m devtools.api_docs update-api      record this checkout's surface (a release does this)
    python -m devtools.api_docs config-keys     rewrite docs/configuration.md's table of keys from config.py

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
    """The site in ``out``: the guide (README, docs/, CHANGELOG) and the API reference under ``api/``;
    :class:`DocsError` on a warning, an undocumented name, a broken link or a stale table of keys."""
    import pdoc
    import pdoc.render

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.render.configure(docformat="google", show_source=False, search=True)
        pdoc.pdoc(*DOCUMENTED, rf"!{RUNTIME}\.build_api", r"!build_hooks\.cli\.", output_directory=out / "api")
        missing = undocumented()
    problems = [f"warning: {w.category.__name__}: {w.message}" for w in caught]
    problems += [f"no docstring: {name}" for name in missing]
    _, link_problems = render_guide(out)
    problems += link_problems + config_doc_problems()
    if problems:
        raise DocsError("\n".join(problems))
    return sorted(out.rglob("*.html"))


# -- the guide: README.md, docs/*.md and CHANGELOG.md, rendered beside the reference ------------

CONFIG_DOC = REPO_ROOT / "docs" / "configuration.md"
_GENERATED = re.compile(r"(<!-- generated: config-keys -->\n)(.*?)(<!-- end generated -->)", re.DOTALL)
_LINK = re.compile(r'href="(?!https?:|mailto:)([^"#]*)(?:#([^"]*))?"')


def guide_pages(root: Path = REPO_ROOT) -> dict[Path, str]:
    """Each page of the guide, by its source, with the name of the HTML page it becomes."""
    pages = {root / "README.md": "index.html", root / "CHANGELOG.md": "changelog.html"}
    pages |= {page: f"{page.stem}.html" for page in sorted((root / "docs").glob("*.md"))}
    return pages


def config_keys_table() -> str:
    """docs/configuration.md's table, from ``build_hooks.config``'s ``KEYS`` and ``KEY_HELP``."""
    from build_hooks.config import KEY_HELP, KEYS, REQUIRED

    def shown(default: Any) -> str:
        if default == REQUIRED:
            return "required"
        return "left out: off" if default is None else f"`{json.dumps(default)}`"

    rows = [f"| `{key}` | {shown(default)} | {KEY_HELP[key]} |" for key, default in KEYS.items()]
    return "\n".join(["| key | default | what it is for |", "| --- | --- | --- |", *rows]) + "\n"


def config_doc_problems(doc: Path = CONFIG_DOC) -> list[str]:
    match = _GENERATED.search(doc.read_text(encoding="utf-8"))
    if match is None:
        return [f"{doc.name} has no `<!-- generated: config-keys -->` block"]
    if match[2] != config_keys_table():
        return [f"{doc.name}'s table of keys is not config.py's: run `python -m devtools.api_docs config-keys`"]
    return []


def update_config_doc(doc: Path = CONFIG_DOC) -> None:
    text = doc.read_text(encoding="utf-8")
    doc.write_text(_GENERATED.sub(lambda m: m[1] + config_keys_table() + m[3], text), encoding="utf-8")


def render_guide(out: Path, root: Path = REPO_ROOT) -> tuple[list[Path], list[str]]:
    """The guide's pages as HTML in ``out`` (links between pages and to the API reference kept), and
    every link to a page or a heading that does not exist."""
    import markdown2

    pages = guide_pages(root)
    by_link = {page.relative_to(root).as_posix(): html for page, html in pages.items()}
    rendered: dict[str, str] = {}
    extras = ["fenced-code-blocks", "tables", "header-ids"]
    for page, html in pages.items():
        body = str(markdown2.markdown(page.read_text(encoding="utf-8"), extras=extras))
        here = page.parent.relative_to(root)

        def relink(match: re.Match[str], here: Path = here) -> str:
            return _relinked(match, here, by_link)

        rendered[html] = _LINK.sub(relink, body)
    problems = []
    for html, body in rendered.items():
        for target, anchor in _LINK.findall(body):
            target = target or html  # "#anchor": this page
            if target.startswith("api/"):
                continue  # the API reference: pdoc's own pages
            if target not in rendered:
                problems.append(f"{html}: a link to {target}, which is not a page of the guide")
            elif anchor and f'id="{anchor}"' not in rendered[target]:
                problems.append(f"{html}: a link to {target}#{anchor}, a heading that does not exist")
    out.mkdir(parents=True, exist_ok=True)
    style = "body{max-width:52rem;margin:2rem auto;font:16px/1.5 system-ui,sans-serif;padding:0 1rem}pre{overflow:auto}"
    nav = " | ".join(f'<a href="{html}">{page.stem}</a>' for page, html in pages.items())
    written = []
    for html, body in rendered.items():
        path = out / html
        path.write_text(
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html}</title><style>{style}</style></head>"
            f"<body><nav>{nav} | <a href='api/index.html'>API reference</a></nav>{body}</body></html>\n",
            encoding="utf-8",
        )
        written.append(path)
    return written, problems


def _relinked(match: re.Match[str], here: Path, by_link: dict[str, str]) -> str:
    target, anchor = match[1], match[2]
    resolved = (here / target).as_posix() if target else ""
    resolved = str(Path(resolved)).replace("\\", "/") if resolved else ""
    page = by_link.get(resolved, target)
    return f'href="{page}{"#" + anchor if anchor else ""}"'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.api_docs", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "check-api", "update-api", "config-keys"])
    parser.add_argument("out", nargs="?", type=Path, default=REPO_ROOT / "build" / "docs")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the checkout whose surface to check")
    args = parser.parse_args(argv)
    if args.command == "build":
        try:
            pages = build(args.out)
        except DocsError as err:
            print(f"ERROR: the API reference is not clean:\n{err}", file=sys.stderr)
            return 1
        print(f"documentation: {len(pages)} pages in {args.out} (open {args.out / 'index.html'})")
        return 0
    if args.command == "config-keys":
        update_config_doc()
        print(f"configuration keys: written into {CONFIG_DOC.relative_to(REPO_ROOT)}")
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
