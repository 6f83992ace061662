"""``clean``: remove builds, the prepare step's working folders and temp files (``nox -s clean``).

The prepared profile and the tiktoken cache stay unless ``--profile``: they cost a
download to recreate.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from build_hooks.cli._common import Parser, exits_on_error, log
from build_hooks.config import find_pyproject, load_config


@exits_on_error()
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = Parser(prog=prog or "embedding-pipeline clean", description="Remove builds and leftovers.")
    parser.add_argument("--profile", action="store_true", help="remove the prepared profile too")
    args = parser.parse_args(argv)
    root = find_pyproject().parent
    for target in clean_targets(root, with_profile=args.profile):
        log(f"remove {target.relative_to(root)}")
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return 0


def clean_targets(project_root: Path, *, with_profile: bool = False) -> list[Path]:
    """What ``clean`` removes: builds, the prepare step's working folders, temp files."""
    config = load_config(project_root / "pyproject.toml")
    targets = [project_root / "dist", project_root / "build"]
    root = config.output_root
    if root.is_dir():
        targets += [
            p
            for p in root.iterdir()
            if p.name.startswith(".") and p.name.endswith((".staging", ".download", ".previous"))
        ]
        targets += [p for p in root.rglob("*.tmp")] + [p for p in root.rglob("*.incomplete")]
        if with_profile:
            targets += [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if config.tiktoken_cache.is_dir():
        targets += list(config.tiktoken_cache.glob(".*.tmp"))
    return [t for t in targets if t.exists()]
