"""Command line of ``scripts/warm_tiktoken.py``: exit 2 for usage errors, 1 otherwise."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from build_hooks.config import PipelineConfig, load_config
from build_hooks.errors import PipelineError
from build_hooks.tiktoken_warm import WarmRequest, WarmResult, parse_from_file, warm_cache


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        _error(f"{message} (see --help)", 2)


def build_parser(config: PipelineConfig) -> argparse.ArgumentParser:
    parser = _Parser(prog="warm_tiktoken.py", description="Warm a verified, offline tiktoken cache.")
    parser.add_argument(
        "--encoding",
        action="append",
        default=[],
        help=f"encoding to warm, repeatable (default: {', '.join(config.tiktoken_encodings)})",
    )
    parser.add_argument("--cache-dir", type=Path, default=config.tiktoken_cache, help="the cache folder")
    parser.add_argument(
        "--from-file",
        action="append",
        default=[],
        metavar="ENCODING=PATH",
        help="take an encoding from a local file (plain or .gz) instead of downloading it",
    )
    parser.add_argument("--mirror", metavar="URL", help="download from URL/<original path> instead of tiktoken's host")
    parser.add_argument("--prune", action="store_true", help="remove cache files no configured encoding needs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load_config()
        args = build_parser(config).parse_args(argv)
        request = WarmRequest(
            cache_dir=args.cache_dir,
            encodings=tuple(args.encoding) or config.tiktoken_encodings,
            from_files=parse_from_file(args.from_file),
            mirror=args.mirror,
            prune=args.prune,
        )
        started = time.monotonic()
        result = warm_cache(request, log=lambda line: print(line, file=sys.stderr, flush=True))
    except PipelineError as err:
        _error(str(err), err.exit_code)
    print(_summary(request, result, time.monotonic() - started))
    return 0


def _summary(request: WarmRequest, result: WarmResult, seconds: float) -> str:
    line = (
        f"tiktoken cache {request.cache_dir} ready for {', '.join(request.encodings)}: "
        f"{len(result.written)} written, {len(result.kept)} already there ({seconds:.2f} s)"
    )
    if result.stale:
        action = "removed" if result.pruned else "left in place (pass --prune to remove)"
        line += f"; {len(result.stale)} stale file(s) {action}: {', '.join(result.stale)}"
    return line


def _error(message: str, code: int) -> NoReturn:
    print(f"ERROR: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)
