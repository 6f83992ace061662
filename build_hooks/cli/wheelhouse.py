"""``wheelhouse``: fetch the files uv.lock pins, verify's anchors (``embedding-pipeline wheelhouse``).

The only command that needs the network besides prepare-model and warm-tiktoken:
it downloads, by the lock's own URLs, the wheel (or sdist) of every build-group
package this environment holds, each checked against the lock's sha256. What is
already there with the right sha256 is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from build_hooks.cli._common import Parser, exits_on_error, log
from build_hooks.config import load_config
from build_hooks.verification.lock import WHEELHOUSE_ENV, default_wheelhouse, fetch, locked_files, needed_names


@exits_on_error()
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    config = load_config()
    parser = Parser(
        prog=prog or "embedding-pipeline wheelhouse",
        description="Download the wheels (and sdists) uv.lock pins for this environment's build-group packages, "
        "each checked against the lock's sha256, into the wheelhouse verify-artifact anchors third-party files to. "
        "Needs the index; verify itself then runs offline.",
    )
    parser.add_argument(
        "--lock", type=Path, default=config.project_root / "uv.lock", help="the lock (default: uv.lock)"
    )
    parser.add_argument(
        "--wheelhouse",
        type=Path,
        default=default_wheelhouse(config.project_root),
        help=f"where the files go (default: ${WHEELHOUSE_ENV}, else build/wheelhouse/)",
    )
    args = parser.parse_args(argv)
    files = locked_files(args.lock, needed_names(args.lock))
    fetched = fetch(files, args.wheelhouse, log=log)
    print(f"{len(fetched)} files uv.lock pins are in {args.wheelhouse}")
    return 0
