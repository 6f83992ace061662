"""``verify-artifact``: prove built artifacts complete, intact and offline (``embedding-pipeline verify-artifact``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from build_hooks.bundle import target_for
from build_hooks.cli._common import Parser, add_pin_flags, exits_on_error, fail, pin_from
from build_hooks.config import load_config
from build_hooks.verify import markdown_summary, summary_table, verify, write_outputs


@exits_on_error()
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    config = load_config()
    parser = Parser(
        prog=prog or "embedding-pipeline verify-artifact",
        description="Prove built artifacts complete, intact and offline.",
    )
    parser.add_argument("dist", nargs="*", type=Path, help="artifact folders (default: every one under dist/)")
    parser.add_argument("--reports", type=Path, help="where reports and SHA256SUMS go (default: beside each artifact)")
    parser.add_argument("--static-only", action="store_true", help="skip running the artifact's self-check")
    add_pin_flags(parser, config)
    args = parser.parse_args(argv)
    target = target_for(config, pin_from(args, config))
    dists = list(args.dist) or target.artifacts()
    if not dists:
        fail("no artifact to verify: run `nox -s build-nuitka` or `nox -s build-pyinstaller` first", 1)
    verdicts = []
    for dist in dists:
        if not dist.is_dir():
            fail(f"{dist} is not an artifact folder", 2)
        verdict = verify(dist.resolve(), target, run_self_check=not args.static_only)
        out_dir = args.reports or dist.resolve().parent
        try:
            report, sums = write_outputs(verdict, out_dir, log=lambda line: print(line, file=sys.stderr, flush=True))
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
