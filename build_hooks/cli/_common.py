"""What every step's command line shares: the parser, the pin flags, and turning errors into exits."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn, Protocol

from build_hooks import fsutil
from build_hooks.config import Pin, PipelineConfig, resolve_pin
from build_hooks.errors import BuildFailedError, PipelineError, PreflightError
from build_hooks.freezing.content import preflight_problems
from build_hooks.freezing.stamp import void_records
from build_hooks.freezing.target import Target
from embedding_runtime import readable_output
from embedding_runtime.build_api import UsageParser as Parser

__all__ = ["Parser", "add_pin_flags", "build_step_parser", "check_only", "exits_on_error", "fail", "log", "pin_from"]


class Main(Protocol):
    def __call__(self, argv: Sequence[str] | None = None, prog: str | None = None) -> int: ...


def add_pin_flags(parser: argparse.ArgumentParser, config: PipelineConfig) -> None:
    """--repo, --revision, --profile-id: the same override on every step (then env, then the table)."""
    pin = config.pin
    group = parser.add_argument_group("pin (default: $EMBEDDING_MODEL_REPO etc., then pyproject.toml)")
    group.add_argument("--repo", help=f"hub repo id (table: {pin.repo})")
    group.add_argument("--revision", help=f"40-hex commit SHA (table: {pin.revision[:12]}…)")
    group.add_argument("--profile-id", help=f"profile folder name (table: {pin.profile_id})")


def pin_from(args: argparse.Namespace, config: PipelineConfig, env: Mapping[str, str] | None = None) -> Pin:
    variants = getattr(args, "variant", None)
    return resolve_pin(
        config, repo=args.repo, revision=args.revision, profile_id=args.profile_id, variants=variants, env=env
    )


def build_step_parser(prog: str | None, description: str) -> argparse.ArgumentParser:
    """The flags both builds share; anything else goes to the freezer."""
    parser = Parser(prog=prog, description=description, epilog="Other arguments are passed to the freezer.")
    parser.add_argument("--dist-root", type=Path, help="folder of <builder>/ artifact folders (default: dist/)")
    parser.add_argument("--force", action="store_true", help="rebuild even when no input changed")
    parser.add_argument("--check", action="store_true", help="run the refusal checks (pin, profile, cache) only")
    parser.add_argument("--print-options", action="store_true", help="print the freezer options and build nothing")
    return parser


def check_only(target: Target) -> None:
    """A build's refusal checks, nothing written: :class:`PreflightError`, or a line saying it may build."""
    if problems := preflight_problems(target):
        raise PreflightError(problems)
    print(f"ready to build {target.config.app_name} from {target.pin}")


def prove_exclusions(target: Target, dist: Path) -> None:
    """After a build: the artifact's self-check imports nothing the table's ``exclude-modules`` left out.
    :class:`BuildFailedError` (one line) when it does, or when it cannot tell; the build is then removed."""
    if not target.config.exclude_modules:
        return
    from build_hooks.verification.selfcheck import exclusion_problem  # numpy and the runtime: only when needed

    if (problem := exclusion_problem(target.executable(dist), target.config.exclude_modules)) is not None:
        void_records(dist)
        fsutil.remove_all([dist])
        raise BuildFailedError(f"{dist.name}: {problem} (the build was removed)")
    left_out = ", ".join(target.config.exclude_modules)
    log(f"exclude-modules proven: the self-check of {dist.name} imports none of {left_out}")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fail(message: str, code: int) -> NoReturn:
    print(f"ERROR: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


StepMain = Callable[[Sequence[str] | None, str | None], int]


def exits_on_error(interrupted: str = "interrupted") -> Callable[[StepMain], Main]:
    """Make ``main(argv, prog)`` turn the pipeline's errors into one ``ERROR:`` line and its exit code."""

    def decorate(main: StepMain) -> Main:
        @functools.wraps(main)
        def wrapper(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
            readable_output()  # paths outside the console's code page (a Windows pipe) print escaped
            try:
                return main(argv, prog)
            except PipelineError as err:  # a refusal lists one line per problem
                print(err.report(), file=sys.stderr, flush=True)
                raise SystemExit(err.exit_code) from None
            except KeyboardInterrupt:
                fail(interrupted, 130)

        return wrapper

    return decorate
