"""``verify-artifact``: prove built artifacts complete, intact and offline (``embedding-pipeline verify-artifact``)."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

from build_hooks.archive import ArchiveError, is_archive, records_of, unpack
from build_hooks.cli._common import Parser, add_pin_flags, exits_on_error, fail, log, pin_from
from build_hooks.config import load_config
from build_hooks.freezing.target import target_for
from build_hooks.verification.lock import WHEELHOUSE_ENV
from build_hooks.verification.verify import (
    Anchors,
    Verdict,
    markdown_summary,
    publish,
    summary_table,
    sums_text,
    verify,
)


@exits_on_error()
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    config = load_config()
    parser = Parser(
        prog=prog or "embedding-pipeline verify-artifact",
        description="Prove built artifacts complete, intact and offline: each file against what its freezer "
        "makes now from the files uv.lock pins (PyInstaller's analysis re-run, Nuitka's program rebuilt), then the "
        "artifact's self-check with no network. Takes artifact folders or the archives archive-artifact packs "
        "(as users download them). Needs no network once `embedding-pipeline wheelhouse` has run.",
    )
    parser.add_argument(
        "dist",
        nargs="*",
        type=Path,
        help="artifact folders or .tar.gz/.zip archives (default: every folder under dist/)",
    )
    parser.add_argument(
        "--reports",
        type=Path,
        help="where reports and SHA256SUMS go (default: beside each artifact, or beside the archive)",
    )
    parser.add_argument("--static-only", action="store_true", help="skip running the artifact's self-check")
    parser.add_argument(
        "--no-rebuild",
        action="store_true",
        help="do not rebuild a Nuitka program to compare it with (no Nuitka or C compiler here): hold the "
        "artifact to rules instead; the program is then unanchored, held to the manifest only",
    )
    parser.add_argument("--lock", type=Path, help="the lock third-party files are held to (default: uv.lock)")
    parser.add_argument(
        "--wheelhouse", type=Path, help=f"the files the lock pins (default: ${WHEELHOUSE_ENV}, else build/wheelhouse/)"
    )
    parser.add_argument(
        "--allow-patched",
        action="append",
        default=[],
        metavar="DISTRIBUTION",
        help="a distribution the build environment holds patched on purpose (the Wine smoke's numpy): it is taken "
        "from the environment, and the artifact's copies of its files are listed as NOT ANCHORED; never for a release",
    )
    add_pin_flags(parser, config)
    args = parser.parse_args(argv)
    target = target_for(config, pin_from(args, config))
    anchors = Anchors.of(target, args.lock, args.wheelhouse, args.allow_patched)
    items = list(args.dist) or target.artifacts()
    if not items:
        fail("no artifact to verify: run `nox -s build-nuitka` or `nox -s build-pyinstaller` first", 1)
    for item in items:
        if not item.is_dir() and not (item.is_file() and is_archive(item)):
            fail(f"{item} is neither an artifact folder nor a .tar.gz or .zip archive of one", 2)
    verdicts: list[Verdict] = []
    with ExitStack() as stack:
        for item in (i.resolve() for i in items):
            out_dir = args.reports or item.parent
            archived_sums: list[str] = []

            def run(dist: Path, archived: list[str] = archived_sums) -> Verdict:
                verdict = verify(
                    dist, target, run_self_check=not args.static_only, rebuild=not args.no_rebuild,
                    anchors=anchors, log=log,
                )  # fmt: skip
                if archived:
                    check_archived_sums(verdict, archived[0])
                return verdict

            if item.is_dir():
                verdicts.append(_publish(item, out_dir, run))
                continue
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="verify-archive-")))

            def unpacked(item: Path = item, scratch: Path = scratch, archived: list[str] = archived_sums) -> Path:
                # After the earlier reports of this archive are gone: an archive that cannot be unpacked
                # leaves no pass behind.
                try:
                    dist = unpack(item, scratch)
                except ArchiveError as err:
                    fail(str(err), 1)
                log(f"unpacked {item.name} into {scratch}")
                archived.append(records_of(dist)[0].read_text(encoding="utf-8"))
                return dist

            verdicts.append(_publish(unpacked, out_dir, run, name=archive_stem(item)))
    print(summary_table(verdicts))
    if summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with Path(summary).open("a", encoding="utf-8") as fh:
            fh.write(markdown_summary(verdicts))
    failures = [f"{v.artifact.name}: {f}" for v in verdicts for f in v.failures]
    for failure in failures:
        print(f"ERROR: {failure}", file=sys.stderr)
    return 1 if failures else 0


def check_archived_sums(verdict: Verdict, archived: str) -> None:
    """An archive's SHA256SUMS (what the workflow attests) must be the one verify writes for what it holds."""
    problems = []
    if verdict.ok and archived != sums_text(verdict):
        problems = ["its SHA256SUMS is not the list of the files it holds: the archive was altered after packing"]
    verdict.record("archive", problems)


def archive_stem(archive: Path) -> str:
    """What an archive's reports are named after: its name without ``.tar.gz`` or ``.zip``."""
    return archive.name.removesuffix(".tar.gz").removesuffix(".zip")


def _publish(
    dist: Path | Callable[[], Path], out_dir: Path, run: Callable[[Path], Verdict], name: str | None = None
) -> Verdict:
    try:
        verdict, report, sums = publish(dist, out_dir, run, name=name, log=log)
    except OSError as err:
        fail(f"cannot write the reports to {out_dir}: {err.strerror}; pass --reports with a writable folder", 1)
    print(f"{verdict.artifact.name}: report {report}, " + (f"checksums {sums}" if sums else "no checksums (it failed)"))
    return verdict
