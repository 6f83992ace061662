"""``build-nuitka``: the standalone Nuitka build of the app (``embedding-pipeline build-nuitka``)."""

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
from build_hooks.freezing import nuitka
from build_hooks.freezing.nuitka_options import nuitka_options
from build_hooks.freezing.plan import make_plan, write_plan
from build_hooks.freezing.target import target_for


@exits_on_error()
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    config = load_config()
    parser = build_step_parser(prog or "embedding-pipeline build-nuitka", "Build the app with Nuitka (standalone).")
    add_pin_flags(parser, config)
    args, compiler_args = parser.parse_known_args(argv)
    target = target_for(config, pin_from(args, config))
    dist_root = args.dist_root or target.dist_root
    if args.check:
        check_only(target)
        return 0
    if args.print_options:
        plan = make_plan(target, "nuitka", dist=target.dist_dir("nuitka", dist_root))
        write_plan(plan)  # the options name the generated data files
        print("\n".join(nuitka_options(plan)))
        return 0
    prove_exclusions(target, nuitka.build(target, dist_root, compiler_args, force=args.force, log=log))
    return 0
