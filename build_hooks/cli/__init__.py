"""One command line per pipeline step, all of one shape: ``main(argv) -> int`` with ``--help``.

Each module parses, calls its library, prints; only ``main`` turns an error
into an exit code (2 for usage errors, 1 for the rest, 130 for Ctrl-C).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# sub-command -> (module under build_hooks.cli, extra arguments, one-line help)
COMMANDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "prepare-model": ("prepare_model", (), "mirror and verify the pinned model profile"),
    "warm-tiktoken": ("warm_tiktoken", (), "warm the verified, offline tiktoken cache"),
    "build-nuitka": ("build_nuitka", (), "build the app with Nuitka (standalone)"),
    "build-pyinstaller": ("build_pyinstaller", (), "build the app with PyInstaller (onedir)"),
    "verify-artifact": ("verify_artifact", (), "prove each built artifact complete, intact and offline"),
    "nuitka-options": ("build_nuitka", ("--print-options",), "print the Nuitka options for the app, one per line"),
}
USAGE = "usage: embedding-pipeline <command> [options]   (embedding-pipeline <command> --help)"


def main(argv: Sequence[str] | None = None) -> int:
    """``embedding-pipeline <command> …``: every step, run from the app's project root."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        lines = [USAGE, "", "commands:", *(f"  {name:<18} {entry[2]}" for name, entry in COMMANDS.items())]
        print("\n".join(lines))
        return 0 if args else 2
    if args[0] not in COMMANDS:
        print(f"ERROR: unknown command {args[0]!r}: pick one of {', '.join(COMMANDS)} (see --help)", file=sys.stderr)
        return 2
    module, extra, _ = COMMANDS[args[0]]
    step = importlib.import_module(f"{__name__}.{module}")
    return int(step.main([*args[1:], *extra]))
