"""Command line of ``scripts/verify_artifact.py``: verify artifacts, report, exit non-zero on any failure."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from build_hooks.bundle import plan_for
from build_hooks.config import load_config
from build_hooks.errors import PipelineError
from build_hooks.verify import find_artifacts, markdown_summary, summary_table, verify, write_outputs


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"ERROR: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="verify_artifact.py", description="Prove built artifacts complete, intact and offline.")
    parser.add_argument("dist", nargs="*", type=Path, help="artifact folders (default: every one under dist/)")
    parser.add_argument("--reports", type=Path, help="where reports and SHA256SUMS go (default: beside each artifact)")
    parser.add_argument("--static-only", action="store_true", help="skip running the artifact's self-check")
    args = parser.parse_args(argv)
    try:
        config = load_config()
        plan = plan_for(config)
        dists = list(args.dist) or find_artifacts(config.project_root / "dist", config.app_name)
        if not dists:
            print(
                "ERROR: no artifact to verify: run `nox -s build-nuitka` or `nox -s build-pyinstaller` first",
                file=sys.stderr,
            )
            return 1
        verdicts = []
        for dist in dists:
            if not dist.is_dir():
                print(f"ERROR: {dist} is not an artifact folder", file=sys.stderr)
                return 2
            verdict = verify(dist.resolve(), plan, run_self_check=not args.static_only)
            report, sums = write_outputs(verdict, args.reports or dist.resolve().parent)
            print(f"{verdict.artifact.name}: report {report}, checksums {sums}")
            verdicts.append(verdict)
    except PipelineError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return err.exit_code
    print(summary_table(verdicts))
    if summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with Path(summary).open("a", encoding="utf-8") as fh:
            fh.write(markdown_summary(verdicts))
    failures = [f"{v.artifact.name}: {f}" for v in verdicts for f in v.failures]
    for failure in failures:
        print(f"ERROR: {failure}", file=sys.stderr)
    return 1 if failures else 0
