"""``verify-artifact``: prove built artifacts complete, intact and offline (``embedding-pipeline verify-artifact``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from build_hooks.bundle import target_for
from build_hooks.cli._common import Parser, add_pin_flags, exits_on_error, fail, log, pin_from
from build_hooks.config import load_config
from build_hooks.verification.verify import Verdict, markdown_summary, publish, summary_table, verify


@exits_on_error()
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    config = load_config()
    parser = Parser(
        prog=prog or "embedding-pipeline verify-artifact",
        description="Prove built artifacts complete, intact and offline: each file against what its freezer "
        "makes of the build's sources now (PyInstaller's analysis re-run, Nuitka's program rebuilt), then the "
        "artifact's self-check with no network.",
    )
    parser.add_argument("dist", nargs="*", type=Path, help="artifact folders (default: every one under dist/)")
    parser.add_argument("--reports", type=Path, help="where reports and SHA256SUMS go (default: beside each artifact)")
    parser.add_argument("--static-only", action="store_true", help="skip running the artifact's self-check")
    parser.add_argument(
        "--no-rebuild",
        action="store_true",
        help="do not rebuild a Nuitka program to compare it with (no Nuitka or C compiler here): hold the "
        "artifact to rules instead; the program is then unanchored, held to the manifest only",
    )
    add_pin_flags(parser, config)
    args = parser.parse_args(argv)
    target = target_for(config, pin_from(args, config))
    dists = list(args.dist) or target.artifacts()
    if not dists:
        fail("no artifact to verify: run `nox -s build-nuitka` or `nox -s build-pyinstaller` first", 1)
    for dist in dists:
        if not dist.is_dir():
            fail(f"{dist} is not an artifact folder", 2)
    verdicts: list[Verdict] = []
    for dist in (d.resolve() for d in dists):
        out_dir = args.reports or dist.parent

        def run(dist: Path = dist) -> Verdict:
            return verify(dist, target, run_self_check=not args.static_only, rebuild=not args.no_rebuild, log=log)

        try:
            verdict, report, sums = publish(dist, out_dir, run, log=log)
        except OSError as err:
            fail(f"cannot write the reports to {out_dir}: {err.strerror}; pass --reports with a writable folder", 1)
        print(
            f"{verdict.artifact.name}: report {report}, "
            + (f"checksums {sums}" if sums else "no checksums (it failed)")
        )
        verdicts.append(verdict)
    print(summary_table(verdicts))
    if summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with Path(summary).open("a", encoding="utf-8") as fh:
            fh.write(markdown_summary(verdicts))
    failures = [f"{v.artifact.name}: {f}" for v in verdicts for f in v.failures]
    for failure in failures:
        print(f"ERROR: {failure}", file=sys.stderr)
    return 1 if failures else 0
