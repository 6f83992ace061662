"""What the release workflow (.github/workflows/release.yml) asks of this repository, standard library only.

    python -m devtools.release check-tag v0.2.0   the tag names the version every place names, and
                                                  CHANGELOG.md has its dated part
    python -m devtools.release notes v0.2.0       that part, as the GitHub release's notes

Both packages share one version number; a tag ``v<version>`` releases both.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = Path(".github/workflows/embedding-pipeline.yml")


class ReleaseError(Exception):
    """The tag cannot be released as it is: the message names what to change."""


def project_version(root: Path = REPO_ROOT) -> str:
    return str(tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])


def version_places(root: Path, version: str) -> list[str]:
    """Where the two packages name their one version, each place that names another."""
    runtime = tomllib.loads((root / "runtime" / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    suite = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    init = (root / "embedding_runtime" / "__init__.py").read_text(encoding="utf-8")
    workflow = (root / WORKFLOW).read_text(encoding="utf-8")
    found = {
        "runtime/pyproject.toml's version": str(runtime["version"]),
        "embedding_runtime.__version__": _first(r'^__version__ = "([^"]+)"', init),
        "the suite's embedding-runtime pin": _first(r"^embedding-runtime==(\S+)$", "\n".join(suite["dependencies"])),
        f"{WORKFLOW}'s SUITE_VERSION": _first(r'^  SUITE_VERSION: "([^"]+)"', workflow),
    }
    return [
        f"{place} says {said}, pyproject.toml's version {version}: the packages share one version (make them the same)"
        for place, said in found.items()
        if said != version
    ]


def _first(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.M)
    return match[1] if match else "nothing"


def changelog_part(changelog: str, version: str) -> str | None:
    """The text of CHANGELOG.md's ``## [version]`` part (its heading line first), up to the next ``## [``
    or the link references."""
    match = re.search(rf"(?ms)^(## \[{re.escape(version)}\][^\n]*)\n(.*?)(?=^## \[|^\[[^\]]+\]: |\Z)", changelog)
    return f"{match[1]}\n{match[2]}" if match else None


def release_notes(root: Path, tag: str) -> str:
    """The changelog's part for the tag's version, without its heading: the GitHub release's notes."""
    check_tag(root, tag)
    part = changelog_part((root / "CHANGELOG.md").read_text(encoding="utf-8"), tag.removeprefix("v"))
    assert part is not None  # check_tag made sure
    return part.split("\n", 1)[1].strip() + "\n"


def check_tag(root: Path, tag: str) -> str:
    """The version ``tag`` releases; :class:`ReleaseError` naming each place that disagrees."""
    version = project_version(root)
    problems = (
        [] if tag == f"v{version}" else [f"the tag is {tag} but pyproject.toml's version is {version}: tag v{version}"]
    )
    problems += version_places(root, version)
    part = changelog_part((root / "CHANGELOG.md").read_text(encoding="utf-8"), version)
    if part is None:
        problems.append(f"CHANGELOG.md has no part `## [{version}] - YYYY-MM-DD`: write the release's entry")
    elif not re.match(rf"## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", part.split("\n", 1)[0]):
        problems.append(f"CHANGELOG.md's part for {version} has no release date: `## [{version}] - YYYY-MM-DD`")
    if problems:
        raise ReleaseError("; ".join(problems))
    return version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.release", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["check-tag", "notes"])
    parser.add_argument("tag", help="the tag to release, v<version>")
    parser.add_argument("--root", type=Path, default=REPO_ROOT)
    args = parser.parse_args(argv)
    try:
        if args.command == "check-tag":
            print(
                f"{args.tag} releases {check_tag(args.root, args.tag)}: every place names it, CHANGELOG.md has its part"
            )
        else:
            sys.stdout.write(release_notes(args.root, args.tag))
    except ReleaseError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
