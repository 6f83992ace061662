"""``check-project``: does the app agree with this suite? Its version in the noxfile's PEP 723 block,
``uv.lock`` and the workflows' refs, and no usage an earlier version took (CHANGELOG.md's Upgrading).

Run it first after an upgrade: ``uvx --from desktop-embedding-pipeline==<new> embedding-pipeline
check-project`` lists each edit still to make, one line each; ``register`` refuses with the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from build_hooks.cli._common import Parser, exits_on_error, log
from build_hooks.errors import UsageError
from build_hooks.versions import DISTRIBUTION, project_problems, suite_version


@exits_on_error()
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = Parser(
        prog=prog or "embedding-pipeline check-project",
        description=f"Check that the app names this {DISTRIBUTION} everywhere and uses nothing it removed.",
    )
    parser.add_argument("--project", type=Path, help="the app's folder (default: the working directory)")
    args = parser.parse_args(argv)
    args.project = args.project or Path.cwd()
    if not (args.project / "pyproject.toml").is_file():
        raise UsageError(f"{args.project} has no pyproject.toml: pass the app's folder with --project")
    problems = project_problems(args.project)
    for line in problems:
        log(f"ERROR: {line}")
    if problems:
        log(f"{len(problems)} edit(s) to make for {DISTRIBUTION} {suite_version()} (see CHANGELOG.md, Upgrading)")
        return 1
    print(f"{args.project.resolve()} agrees with {DISTRIBUTION} {suite_version()}")
    return 0
