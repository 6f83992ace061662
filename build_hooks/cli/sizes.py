"""``sizes``: the size of every built artifact, as JSON (the nightly's result table asks for it)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from build_hooks import fsutil
from build_hooks.cli._common import Parser, exits_on_error
from build_hooks.config import load_config
from build_hooks.freezing.target import BUILDERS, target_for


@exits_on_error()
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = Parser(prog=prog or "embedding-pipeline sizes", description="Print the size of every built artifact.")
    parser.add_argument("--dist-root", type=Path, help="folder of <builder>/ artifact folders (default: dist/)")
    args = parser.parse_args(argv)
    target = target_for(load_config(), env={})
    sizes = {}
    for builder in BUILDERS:
        if (dist := target.dist_dir(builder, args.dist_root)).is_dir():
            sizes[f"{builder}/{dist.name}"] = fsutil.folder_bytes(dist)
    print(json.dumps(sizes))
    return 0
