"""``archive-artifact``: one archive per verified artifact, as users download it

``embedding-pipeline archive-artifact``; ``nox -s archive-artifact``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from build_hooks.archive import archive_name, archives_dir, pack, source_date_epoch
from build_hooks.cli._common import Parser, add_pin_flags, exits_on_error, fail, log, pin_from
from build_hooks.config import load_config
from build_hooks.freezing.target import BUILDERS, Builder, target_for


@exits_on_error()
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    config = load_config()
    parser = Parser(
        prog=prog or "embedding-pipeline archive-artifact",
        description="Pack each artifact verify passed, with its SHA256SUMS, SBOM, verify report and manifest, "
        "into dist/archives/<app>-<version>-<os>-<arch>-py<X.Y>-<builder>.tar.gz (.zip on Windows): every byte, mode, "
        "dotfile and symlink kept, reproducibly (entry times from SOURCE_DATE_EPOCH, else the app's commit time).",
    )
    parser.add_argument("dist", nargs="*", type=Path, help="artifact folders (default: every one under dist/)")
    parser.add_argument("--out", type=Path, help="where the archives go (default: dist/archives/)")
    parser.add_argument(
        "--print-names",
        action="store_true",
        help="print `<builder>=<archive file name>` for each builder on this machine and pack nothing "
        "(what the workflow's download job asks for)",
    )
    add_pin_flags(parser, config)
    args = parser.parse_args(argv)
    target = target_for(config, pin_from(args, config))
    if args.print_names:
        for builder in BUILDERS:
            print(f"{builder}={archive_name(target, builder)}")
        return 0
    dists = list(args.dist) or target.artifacts()
    if not dists:
        fail("no artifact to pack: run the build and verify-artifact steps first", 1)
    if config.app_version is None:
        log(f"{config.project_root / 'pyproject.toml'} has no [project] version: the archives say unversioned")
    epoch = source_date_epoch(config.app_entry.parent)
    jobs: list[tuple[Path, Builder, Path]] = []
    for dist in (d.resolve() for d in dists):
        if not dist.is_dir():
            fail(f"{dist} is not an artifact folder", 2)
        builder = target.builder_of(dist)
        jobs.append((dist, builder, (args.out or archives_dir(target)) / archive_name(target, builder)))
    # One artifact per core at a time (zlib compresses outside the GIL): the demo's two took 27 s one by one.
    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        packed = list(pool.map(lambda job: pack(job[0], job[2], epoch), jobs))
    for (_dist, builder, out), written in zip(jobs, packed, strict=True):
        print(written)
        if github_output := os.environ.get("GITHUB_OUTPUT"):  # the workflow's upload steps name them
            with Path(github_output).open("a", encoding="utf-8") as fh:
                fh.write(f"{builder}={out.name}\n")
    return 0
