"""``build-pyinstaller``: the onedir PyInstaller build through the spec (``scripts/build_pyinstaller.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from build_hooks import pyinstaller_build
from build_hooks.bundle import plan_for
from build_hooks.cli._common import add_pin_flags, build_step_parser, check_only, exits_on_error, log, pin_from
from build_hooks.config import load_config


@exits_on_error()
def main(argv: Sequence[str] | None = None) -> int:
    config = load_config()
    parser = build_step_parser("build_pyinstaller.py", "Build the app with PyInstaller (onedir) through its spec.")
    add_pin_flags(parser, config)
    args, freezer_args = parser.parse_known_args(argv)
    plan = plan_for(config, pin_from(args, config))
    dist_root = args.dist_root or plan.dist_root
    if args.check:
        check_only(plan)
        return 0
    if args.print_options:
        print("\n".join(pyinstaller_build.pyinstaller_command(plan, dist_root)[3:]))
        return 0
    pyinstaller_build.build(plan, dist_root, freezer_args, force=args.force, log=log)
    return 0
