"""``build-pyinstaller``: the onedir PyInstaller build through the app's spec
(``embedding-pipeline build-pyinstaller``)."""

from __future__ import annotations

from collections.abc import Sequence

from build_hooks.cli._common import (
    add_pin_flags,
    build_step_parser,
    check_only,
    exits_on_error,
    log,
    pin_from,
    prove_exclusions,
)
from build_hooks.config import load_config
from build_hooks.freezing import pyinstaller
from build_hooks.freezing.plan import make_plan, write_plan
from build_hooks.freezing.target import target_for


@exits_on_error()
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    config = load_config()
    parser = build_step_parser(
        prog or "embedding-pipeline build-pyinstaller", "Build the app with PyInstaller (onedir) through its spec."
    )
    add_pin_flags(parser, config)
    args, freezer_args = parser.parse_known_args(argv)
    target = target_for(config, pin_from(args, config))
    dist_root = args.dist_root or target.dist_root
    if args.check:
        check_only(target)
        return 0
    if args.print_options:
        plan = make_plan(target, "pyinstaller", dist=target.dist_dir("pyinstaller", dist_root), options=freezer_args)
        command = pyinstaller.pyinstaller_command(plan, write_plan(plan), freezer_args)
        print("\n".join(command[3:]))
        return 0
    prove_exclusions(target, pyinstaller.build(target, dist_root, freezer_args, force=args.force, log=log))
    return 0
