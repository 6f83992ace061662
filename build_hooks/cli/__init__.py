"""The ``embedding-pipeline`` console script: one sub-command per command of the step table.

Each command's module (``build_hooks.cli.<command>``) parses, calls its library,
prints; only its ``main(argv, prog)`` turns an error into an exit code (2 for
usage errors, 1 for the rest, 130 for Ctrl-C). The table is
:data:`build_hooks.pipeline_steps.COMMANDS`, the one every door reads.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from build_hooks.errors import UsageError
from build_hooks.pipeline_steps import COMMANDS, CONSOLE_SCRIPT, command, run_command
from build_hooks.versions import DISTRIBUTION, suite_version


def main(argv: Sequence[str] | None = None, prog: str = CONSOLE_SCRIPT) -> int:
    """``embedding-pipeline <command> …``: every step, run from the app's project root."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--version"]:
        print(f"{DISTRIBUTION} {suite_version()}")
        return 0
    if not args or args[0] in ("-h", "--help"):
        usage = f"usage: {prog} [--version] <command> [options]   ({prog} <command> --help)"
        lines = [usage, "", "commands:", *(f"  {c.name:<18} {c.summary}" for c in COMMANDS)]
        print("\n".join(lines))
        return 0 if args else 2
    try:
        command(args[0])
    except UsageError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 2
    return run_command(args[0], args[1:], prog=f"{prog} {args[0]}")
