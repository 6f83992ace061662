"""``build-nuitka``: the standalone Nuitka build of the app (``scripts/build_nuitka.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from build_hooks import nuitka_build
from build_hooks.bundle import plan_for
from build_hooks.cli._common import add_pin_flags, build_step_parser, check_only, exits_on_error, log, pin_from
from build_hooks.config import load_config


@exits_on_error()
def main(argv: Sequence[str] | None = None) -> int:
    config = load_config()
    parser = build_step_parser(
        "build_nuitka.py", "Build the app with Nuitka (standalone), from the shared bundle plan."
    )
    add_pin_flags(parser, config)
    args, compiler_args = parser.parse_known_args(argv)
    plan = plan_for(config, pin_from(args, config))
    if args.check:
        check_only(plan)
        return 0
    if args.print_options:
        print("\n".join(nuitka_build.nuitka_options(plan, args.dist_root or plan.dist_root)))
        return 0
    nuitka_build.build(plan, args.dist_root or plan.dist_root, compiler_args, force=args.force, log=log)
    return 0
