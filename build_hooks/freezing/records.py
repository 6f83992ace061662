"""The records a build writes after its freezer, the same for both freezers.

In this order: every ELF file stripped of its symbols and debug data on Linux
(:mod:`build_hooks.freezing.elf_strip`); every file made readable for every user;
the licence texts of what the freezer collected, into the dist (``licenses/``);
the manifest, hashing every file of the dist once; the one check of the data
copies against the plan, from those hashes; the SBOM of what was collected;
and last the stamp of the plan's inputs, which lets the next build with the
same inputs skip. The records are made first and written
together, the stamp last. A check that fails, or a record that cannot be
written, removes the dist and every record beside it: nothing that failed its
checks stays where an artifact goes. (A build that starts has voided the last
one's records: :func:`build_hooks.freezing.stamp.void_records`.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from build_hooks import fsutil
from build_hooks.errors import BuildFailedError, PipelineError
from build_hooks.freezing.collection import Collection
from build_hooks.freezing.elf_strip import strip_dist, strips, summary, why_not_stripped
from build_hooks.freezing.licenses import notices, shipped, system_licences, write_notices
from build_hooks.freezing.manifest import data_problems, dist_entries, manifest_document
from build_hooks.freezing.plan import BuildPlan
from build_hooks.freezing.sbom import sbom_document
from build_hooks.freezing.stamp import stamp_document

READABLE = 0o444


def write_records(plan: BuildPlan, collection: Collection, log: Callable[[str], None] = print) -> None:
    """Licences, manifest, data check, SBOM and stamp of ``plan.dist``, given what the freezer
    collected. :class:`BuildFailedError` when the dist is not the plan's, a licence text is missing,
    or a record cannot be written: the dist and its records are removed."""
    dist, (manifest, sbom, stamp) = plan.dist, plan.records
    try:
        log(summary(strip_dist(dist)) if strips() else why_not_stripped())
        make_readable(dist)
        what = shipped(collection.sources)
        write_notices(dist, notices(what))
        licences = system_licences(what)
        entries = dist_entries(dist)
        if problems := data_problems(plan, dist, entries):
            raise BuildFailedError(f"the dist is not what the plan lists: {'; '.join(problems)}")
        records = {
            manifest: manifest_document(plan, dist, entries),
            sbom: sbom_document(plan, dist, collection, entries, licences),
            stamp: stamp_document(plan.inputs),  # last: a stamp says every record before it was written
        }
        fsutil.atomic_write_files(records)
    except (PipelineError, OSError) as err:
        fsutil.remove_all([dist, manifest, sbom, stamp])
        raise BuildFailedError(f"{err} (the build was removed)") from err
    except BaseException:  # an interrupt: no half-recorded artifact either
        fsutil.remove_all([dist, manifest, sbom, stamp])
        raise


def make_readable(dist: Path) -> None:
    """Every file of the artifact readable for every user: a freezer copies a file's mode, and some
    arrive 0600 (onnx writes its sidecars so). Only read bits are added."""
    for path in dist.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_mode & READABLE != READABLE:
            path.chmod(path.stat().st_mode | READABLE)
