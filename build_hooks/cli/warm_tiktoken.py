"""``warm-tiktoken``: a verified, offline tiktoken cache (``embedding-pipeline warm-tiktoken``)."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path

from build_hooks.cli._common import Parser, add_pin_flags, exits_on_error, log, pin_from
from build_hooks.config import PipelineConfig, load_config
from build_hooks.tiktoken_cache.warm import MIRROR_ENV, WarmRequest, WarmResult, parse_from_file, warm_cache


def build_parser(config: PipelineConfig, prog: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(
        prog=prog or "embedding-pipeline warm-tiktoken", description="Warm a verified, offline tiktoken cache."
    )
    add_pin_flags(parser, config)  # accepted (and checked) so one override can go to every step
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
    parser.add_argument(
        "--mirror",
        metavar="URL",
        default=os.environ.get(MIRROR_ENV, "").strip() or None,
        help=f"download from URL/<original path> instead of tiktoken's host (default: ${MIRROR_ENV})",
    )
    parser.add_argument("--prune", action="store_true", help="remove cache files no configured encoding needs")
    return parser


@exits_on_error()
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    config = load_config()
    args = build_parser(config, prog).parse_args(argv)
    pin_from(args, config)
    request = WarmRequest(
        cache_dir=args.cache_dir,
        encodings=tuple(args.encoding) or config.tiktoken_encodings,
        from_files=parse_from_file(args.from_file),
        mirror=args.mirror,
        prune=args.prune,
    )
    started = time.monotonic()
    result = warm_cache(request, log=log)
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
