"""Prove a built artifact complete, intact and able to run offline, or say no.

The static checks trust nothing that sits beside the artifact. verify makes the
build's plan anew, from the prepared profile, the tiktoken cache and the
configuration, and holds ``data/`` to it (the canary's probe record by what it
says, :mod:`~build_hooks.verification.probe_check`). Every other path is held to
what its freezer makes of the build's sources, derived now by the freezer itself
(:mod:`~build_hooks.verification.reference`): PyInstaller's analysis re-run, or
Nuitka's program built again. The build's manifest and SBOM remain records of the
build, checked against the artifact; they anchor nothing. The dynamic check runs
the artifact's self-check offline (:mod:`~build_hooks.verification.selfcheck`).

It fails closed: a check that raises is a failure line naming what it was
checking, never a traceback and never a pass; :func:`publish` removes an earlier
pass's report and SHA256SUMS before anything is checked, and writes SHA256SUMS
only for a passing artifact.
"""

from __future__ import annotations

import functools
import json
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from build_hooks import fsutil
from build_hooks.errors import AnchorUnavailableError, PipelineError, PreflightError, UsageError
from build_hooks.freezing.licenses import INDEX_FILE, LICENSES_FOLDER, LicenseMissingError, notices, shipped
from build_hooks.freezing.manifest import RECORD_MAX_BYTES, UNREADABLE, data_problems, dist_changes, read_build_manifest
from build_hooks.freezing.plan import BuildPlan, make_plan, write_plan
from build_hooks.freezing.provenance import interpreter_facts, source_revision
from build_hooks.freezing.sbom import read_sbom, sbom_components, sbom_problems
from build_hooks.freezing.target import Builder, Target, manifest_path, sbom_path
from build_hooks.pipeline_steps import format_table
from build_hooks.verification.environment import BuildEnvironment, installed_roots
from build_hooks.verification.listing import Entry, list_artifact
from build_hooks.verification.lock import LockTree, default_wheelhouse, lock_tree
from build_hooks.verification.nuitka_reference import nuitka_reference
from build_hooks.verification.nuitka_rules import rules_reference
from build_hooks.verification.probe_check import probe_record_problems
from build_hooks.verification.pyinstaller_reference import pyinstaller_reference
from build_hooks.verification.reference import Expected, Reference, reference_problems
from build_hooks.verification.selfcheck import check_self_check
from embedding_runtime.build_api import (
    BUILD_INFO_FILE,
    DATA_FOLDER,
    MARKER_NAME,
    MODELS_FOLDER,
    PROBE_RECORD_FILE,
    FileDigest,
    ProbeRecord,
    data_path,
    read_json_record,
    read_probe_record,
    sha256_file,
)

# Markers of the vendored runtime: PyInstaller keeps .pyc files, Nuitka compiles module names in.
RUNTIME_MODULES = (
    "embedding_runtime/__init__",
    "embedding_runtime/_service",
    "embedding_runtime/_engine",
    "embedding_runtime/_resolve",
)
Log = Callable[[str], None]


@dataclass(frozen=True)
class Artifact:
    dist: Path
    data_root: Path  # holds data/; PyInstaller's contents folder, or the top level for Nuitka
    executable: Path
    builder: Builder

    @property
    def name(self) -> str:
        return f"{self.builder}:{self.dist.name}"


@dataclass
class Verdict:
    artifact: Artifact
    failures: list[str] = field(default_factory=list)
    checks: list[tuple[str, str]] = field(default_factory=list)  # (check, result)
    report: dict[str, Any] = field(default_factory=dict)
    # The build's manifest as verify read it (None: missing or invalid); SHA256SUMS is written from it.
    manifest: dict[str, FileDigest] | None = None

    def record(self, check: str, problems: Sequence[str], ok_detail: str = "ok") -> None:
        self.failures += [f"{check}: {p}" for p in problems]
        self.checks.append((check, ok_detail if not problems else f"FAILED ({len(problems)})"))

    @contextmanager
    def guarding(self, check: str, what: Path | str) -> Iterator[None]:
        """Whatever the check raises is a failure of it, naming ``what`` it was reading: never a
        traceback, never a pass."""
        try:
            yield
        except Exception as err:
            self.record(check, [f"{what} could not be checked ({type(err).__name__}: {err})"])

    @property
    def ok(self) -> bool:
        return not self.failures


def locate(dist: Path, target: Target, platform: str = sys.platform) -> Artifact:
    """Find the data root and executable of a PyInstaller or Nuitka onedir ``dist``."""
    return Artifact(dist, target.data_root(dist), target.executable(dist, platform), target.builder_of(dist))


@dataclass(frozen=True)
class Anchors:
    """What verify holds third-party files to: the lock, and the wheelhouse holding the files it pins."""

    lock: Path
    wheelhouse: Path
    # Distributions the build environment holds patched on purpose (the Wine smoke's numpy): their files
    # may differ from the lock's, and are then listed as not anchored (never passed as anchored).
    allow_patched: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, target: Target, lock: Path | None = None, wheelhouse: Path | None = None, allow_patched: Sequence[str] = ()
    ) -> Anchors:
        root = target.config.project_root
        return cls(lock or root / "uv.lock", wheelhouse or default_wheelhouse(root), tuple(allow_patched))


def verify(
    dist: Path,
    target: Target,
    *,
    run_self_check: bool = True,
    rebuild: bool = True,
    anchors: Anchors | None = None,
    log: Log = lambda _: None,
) -> Verdict:
    """Every check of one artifact (see the module docstring); ``rebuild=False`` holds a Nuitka artifact
    to rules instead of a rebuild (its program is then unanchored). Third-party files are held to the
    files ``anchors`` names (default: the project's uv.lock, and the wheelhouse)."""
    verdict = Verdict(locate(dist, target))
    started = time.monotonic()
    anchors = anchors or Anchors.of(target)
    with verdict.guarding("verify", dist):  # a check that raises past its own guard still fails the artifact
        _run_checks(verdict, target, anchors, run_self_check=run_self_check, rebuild=rebuild, log=log)
    verdict.report["seconds"] = round(time.monotonic() - started, 2)
    return verdict


def _run_checks(
    verdict: Verdict, target: Target, anchors: Anchors, *, run_self_check: bool, rebuild: bool, log: Log
) -> None:
    artifact, dist = verdict.artifact, verdict.artifact.dist
    started = time.monotonic()
    # Each file is hashed once per run, whichever check asks first (model files are ~1 GB at scale).
    digest = functools.cache(digest_or_why)
    listing = list_artifact(dist)
    verdict.record("executable", [] if artifact.executable.is_file() else [f"{artifact.executable} is missing"])
    probe: ProbeRecord | None = None
    with tempfile.TemporaryDirectory(prefix="verify-") as scratch_dir:
        scratch = Path(scratch_dir)
        plan = _plan(verdict, target, artifact, scratch)
        data_ok = False
        with verdict.guarding("data", artifact.data_root / DATA_FOLDER):
            problems = _data_problems(artifact, plan, listing, digest) if plan else ["there is no plan to hold it to"]
            verdict.record("data", problems, f"ok ({len(plan.data) if plan else 0} files, {target.pin})")
            data_ok = not problems
        with verdict.guarding("anchors", dist):
            _check_anchors(verdict, anchors, plan, listing, data_ok, digest, scratch, rebuild, log)
        if plan is not None:
            probe = read_probe_record(scratch / "generated" / PROBE_RECORD_FILE)
    with verdict.guarding("provenance", artifact.data_root / data_path(BUILD_INFO_FILE)):
        problems, notes = _provenance_problems(artifact, target)
        verdict.report["provenance"] = notes
        verdict.record("provenance", problems, f"ok ({'; '.join(notes.values())})")
    with verdict.guarding("runtime package", dist):
        verdict.record("runtime package", _runtime_problems(artifact))
    with verdict.guarding("manifest", manifest_path(dist)):
        verdict.manifest = read_build_manifest(dist)
        verdict.record("manifest", _manifest_problems(artifact, verdict, digest))
    with verdict.guarding("sbom", sbom_path(dist)):
        verdict.record("sbom", _sbom_problems(artifact, verdict))
    verdict.report["static_seconds"] = round(time.monotonic() - started, 2)
    if run_self_check and artifact.executable.is_file():
        with verdict.guarding("self-check", artifact.executable):
            check_self_check(verdict.record, verdict.report, dist, artifact.executable, target, probe)
    verdict.report["artifact_bytes"] = sum(e.size for e in listing.values() if e.kind == "file")


def digest_or_why(path: Path) -> str:
    """A file's sha256, or why it has none (never equal to a sha256, so it fails any comparison).
    Only a regular file is opened: a FIFO in the artifact would block verify."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return f"{UNREADABLE} (not a regular file)"
        return sha256_file(path)
    except OSError as err:
        return f"{UNREADABLE} ({err.strerror or type(err).__name__})"


# -- the reports ----------------------------------------------------------------


@contextmanager
def reports_lock(out_dir: Path, name: str, log: Log = lambda _: None) -> Iterator[None]:
    """Two verifies of one artifact take turns (a lock beside its reports); the second says it waits."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out_dir / f".{name}.verify.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log(f"another verify is checking {name}; waiting for it to finish")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def report_paths(out_dir: Path, dist: Path, name: str | None = None) -> tuple[Path, Path]:
    """``<name>.verify.json`` and ``<name>.SHA256SUMS`` in ``out_dir`` (``name``: the dist's, or for an
    archive the archive's, without its suffix)."""
    name = name or dist.name
    return out_dir / f"{name}.verify.json", out_dir / f"{name}.SHA256SUMS"


def publish(
    dist: Path | Callable[[], Path],
    out_dir: Path,
    run: Callable[[Path], Verdict],
    *,
    name: str | None = None,
    log: Log = lambda _: None,
) -> tuple[Verdict, Path, Path | None]:
    """Verify ``dist`` with ``run`` and write its reports as ``name`` (default: the dist's), in turn with
    any other verify of it: an earlier run's report and SHA256SUMS are removed before anything is
    checked (``dist`` may be the callable that unpacks an archive: after that), so nothing outlives a
    run that does not finish; SHA256SUMS is written only for a passing artifact."""
    if name is None:
        assert isinstance(dist, Path), "an archive's reports are named after it"
        name = dist.name
    report, sums = report_paths(out_dir, Path(name))
    with reports_lock(out_dir, name, log):
        sums.unlink(missing_ok=True)
        report.unlink(missing_ok=True)
        verdict = run(dist if isinstance(dist, Path) else dist())
        written = write_outputs(verdict, out_dir, name)
    return verdict, written[0], written[1]


def write_outputs(verdict: Verdict, out_dir: Path, name: str | None = None) -> tuple[Path, Path | None]:
    """The JSON report of one artifact, and its SHA256SUMS only when it passed (never inside it),
    from the verified build manifest (as ``sha256sum -c`` reads it, from the dist's parent folder).
    Called by :func:`publish`, which holds the reports' lock."""
    dist = verdict.artifact.dist
    report, sums = report_paths(out_dir, dist, name)
    payload = {
        "artifact": str(dist),
        "builder": verdict.artifact.builder,
        "verdict": "pass" if verdict.ok else "fail",
        "failures": verdict.failures,
        "checks": dict(verdict.checks),
        **verdict.report,
    }
    if verdict.ok and verdict.manifest is not None:
        fsutil.atomic_write_bytes(sums, sums_text(verdict).encode())
    else:
        sums.unlink(missing_ok=True)
    fsutil.atomic_write_bytes(report, (json.dumps(payload, indent=2, default=str) + "\n").encode())
    return report, sums if verdict.ok and verdict.manifest is not None else None


def sums_text(verdict: Verdict) -> str:
    """The SHA256SUMS of a verified artifact, from its verified manifest, as ``sha256sum -c`` reads it
    from the artifact's parent folder."""
    name = verdict.artifact.dist.name
    return "".join(f"{e.sha256}  {name}/{relative}\n" for relative, e in sorted((verdict.manifest or {}).items()))


def summary_table(verdicts: Sequence[Verdict]) -> str:
    rows = [("artifact", "check", "result")]
    for verdict in verdicts:
        for check, result in verdict.checks:
            rows.append((verdict.artifact.name, check, result))
        size = verdict.report.get("artifact_bytes", 0) / 2**20
        rows.append((verdict.artifact.name, "verdict", f"{'PASS' if verdict.ok else 'FAIL'} ({size:.0f} MiB)"))
    return format_table(rows)


def markdown_summary(verdicts: Sequence[Verdict]) -> str:
    lines = ["| artifact | check | result |", "| --- | --- | --- |"]
    for verdict in verdicts:
        lines += [f"| {verdict.artifact.name} | {check} | {result} |" for check, result in verdict.checks]
        lines += [f"| {verdict.artifact.name} | failure | {f} |" for f in verdict.failures]
    return "\n".join(lines) + "\n"


# -- static checks --------------------------------------------------------------


def _plan(verdict: Verdict, target: Target, artifact: Artifact, scratch: Path) -> BuildPlan | None:
    """The plan the artifact must match, made anew (its generated files in ``scratch``)."""
    try:
        plan = make_plan(target, artifact.builder, dist=artifact.dist, generated_dir=scratch / "generated")
    except PreflightError as refusal:
        verdict.record("plan", [f"the plan cannot be made: {problem}" for problem in refusal.problems])
        return None
    except PipelineError as err:
        verdict.record("plan", [f"the plan cannot be made: {err}"])
        return None
    write_plan(plan, scratch / "plan.json")
    return plan


def _data_problems(
    artifact: Artifact, plan: BuildPlan, listing: dict[str, Entry], digest: Callable[[Path], str]
) -> list[str]:
    """The one data check: data/ holds exactly the plan's files, each with the plan's size and sha256
    (the probe record by what it says), each a regular file."""
    prefix = (artifact.data_root / DATA_FOLDER).relative_to(artifact.dist).as_posix() + "/"
    shipped: dict[str, FileDigest] = {}
    problems = []
    for rel, entry in listing.items():
        if not rel.startswith(prefix):
            continue
        if entry.kind == "file":
            shipped[rel] = FileDigest(entry.size, digest(artifact.dist / rel))
        else:  # said here; the plan's check then finds no file there
            problems.append(f"{rel} {entry.problem or f'is a symlink to {entry.link}; the build copies a file there'}")
            shipped[rel] = FileDigest(entry.size, f"{UNREADABLE} (not a regular file)")
    probe = data_path(PROBE_RECORD_FILE)
    shipped_probe = artifact.data_root / probe
    expected_probe = next((f.source for f in plan.data if f.dest == probe), None)
    by_content = {}
    if expected_probe is not None:
        by_content[probe] = lambda: probe_record_problems(shipped_probe, expected_probe)
    marker = f"{data_path(MODELS_FOLDER)}/{plan.pin.profile_id}/{MARKER_NAME}"
    expected_marker = next((f.source for f in plan.data if f.dest == marker), None)
    if expected_marker is not None:
        shipped_marker = artifact.data_root / marker
        by_content[marker] = lambda: marker_problems(shipped_marker, expected_marker)
    return problems + data_problems(plan, artifact.dist, shipped, by_content)


# The profile marker's fields that are facts of the machine that prepared it, not of the model: where
# the files came from and when each was written. Another runner's prepare-model writes its own.
_PREPARED_HERE = ("source",)
_PREPARED_HERE_PER_FILE = ("mtime_ns",)


def marker_problems(shipped: Path, expected: Path) -> list[str]:
    """The shipped profile marker against the one prepare-model wrote here, by what it says: every
    field (repo, revision, profile, variants, licence, each file's size and sha256) but where and when
    the files were prepared. A field that is not compared is one this function names."""

    def what_it_says(path: Path) -> dict[str, Any] | None:
        record = read_json_record(path, RECORD_MAX_BYTES)
        if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
            return None
        files = {
            name: {k: v for k, v in entry.items() if k not in _PREPARED_HERE_PER_FILE}
            if isinstance(entry, dict)
            else entry
            for name, entry in record["files"].items()
        }
        return {**{k: v for k, v in record.items() if k not in _PREPARED_HERE}, "files": files}

    said, wanted = what_it_says(shipped), what_it_says(expected)
    if wanted is None:
        return [f"cannot be compared: the prepared profile's {expected} is not a marker"]
    if said is None:
        return ["is not a profile marker (unreadable, or no files)"]
    differing = sorted(k for k in said.keys() | wanted.keys() if said.get(k) != wanted.get(k))
    return [f"says another {', '.join(differing)} than the prepared profile's marker"] if differing else []


def _check_anchors(
    verdict: Verdict,
    anchors: Anchors,
    plan: BuildPlan | None,
    listing: dict[str, Entry],
    data_ok: bool,
    digest: Callable[[Path], str],
    scratch: Path,
    rebuild: bool,
    log: Log,
) -> None:
    """Every path against what its freezer makes of the build's sources; the coverage into the report."""
    artifact = verdict.artifact
    if plan is None:
        verdict.record("anchors", ["there is no plan to derive the artifact's files from"])
        return
    started = time.monotonic()
    try:
        tree = lock_tree(
            anchors.lock, anchors.wheelhouse, plan.target.build_dir / "verify", None, anchors.allow_patched
        )
        verdict.report["lock"] = {"lock": str(anchors.lock), "files": {f.filename: f.sha256 for f in tree.files}}
        reference = _reference(artifact, plan, listing, digest, tree, scratch, rebuild, log)
    except (AnchorUnavailableError, UsageError) as err:  # one line: what verify needs here, or --no-rebuild
        verdict.record("anchors", [str(err)])
        return
    record = tree.record
    try:
        texts = _expect_notices(reference, tree, listing, scratch)
        verdict.record("licences", [], f"ok ({texts} files, from uv.lock's distributions)")
    except LicenseMissingError as err:
        verdict.record("licences", [str(err)])
    verdict.report["reference"] = reference.how
    verdict.report["reference_seconds"] = round(time.monotonic() - started, 2)
    data_prefix = (artifact.data_root / DATA_FOLDER).relative_to(artifact.dist).as_posix() + "/"
    problems, coverage = reference_problems(
        artifact.dist, listing, reference, data_prefix=data_prefix, data_ok=data_ok, digest=digest, record=record,
        foreign=installed_roots(), allowed=_allowed(anchors, tree),
    )  # fmt: skip
    verdict.record("anchors", problems, f"ok ({coverage.summary()})")
    verdict.report["coverage"] = coverage.to_json()
    if coverage.allowed:
        verdict.report["not_anchored_allowed"] = coverage.allowed
        log(
            f"WARNING: {verdict.artifact.name}: {coverage.allowed_files} files differ from uv.lock's wheels and are "
            f"NOT ANCHORED, allowed by --allow-patched {' '.join(anchors.allow_patched)}: never ship this artifact"
        )


def _allowed(anchors: Anchors, tree: LockTree) -> dict[Path, str]:
    why = "NOT ANCHORED: {} is taken from the build environment, patched on purpose (--allow-patched)"
    return {path: why.format(tree.owners[path]) for path in tree.patched}


def _expect_notices(reference: Reference, tree: LockTree, listing: dict[str, Entry], scratch: Path) -> int:
    """``licenses/`` as the build must have written it for what the freezer collected, from the lock's
    distributions (:mod:`build_hooks.freezing.licenses`). From a rule's guess (``--no-rebuild``) only the texts
    it can name are required; the index and the rest are held to the manifest."""
    folder = scratch / LICENSES_FOLDER
    for name, data in notices(shipped(reference.sources, site=[tree.path])).items():
        if not reference.complete and name == INDEX_FILE:
            continue
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        what = f"with the licence texts of what it ships ({name.split('/')[0]}), as the build writes them"
        reference.files[f"{LICENSES_FOLDER}/{name}"] = Expected("file", path, label=what)
    if not reference.complete:
        for rel in listing:
            if rel.startswith(f"{LICENSES_FOLDER}/") and rel not in reference.files:
                reference.unanchored[rel] = "a licence text of what the program compiled in (not rebuilt)"
    return sum(1 for rel in reference.files if rel.startswith(f"{LICENSES_FOLDER}/"))


def _reference(
    artifact: Artifact,
    plan: BuildPlan,
    listing: dict[str, Entry],
    digest: Callable[[Path], str],
    tree: LockTree,
    scratch: Path,
    rebuild: bool,
    log: Log,
) -> Reference:
    work = plan.target.build_dir / "verify"
    if artifact.builder == "pyinstaller":
        return pyinstaller_reference(plan, artifact.executable, work / "pyinstaller", tree)
    if rebuild:
        return nuitka_reference(plan, work, tree=tree, digest=digest, log=log)
    data_prefix = (artifact.data_root / DATA_FOLDER).relative_to(artifact.dist).as_posix() + "/"
    env = BuildEnvironment.of_lock_tree(tree.path, tree.record)
    excluded = plan.target.config.exclude_modules
    return rules_reference(
        artifact.dist, listing, artifact.executable.name, data_prefix, scratch, digest, env, excluded=excluded
    )


def _manifest_problems(artifact: Artifact, verdict: Verdict, digest: Callable[[Path], str]) -> list[str]:
    """Every file outside data/ (the data check's) against the build's manifest."""
    recorded = verdict.manifest
    if recorded is None:
        return [f"{manifest_path(artifact.dist)} is missing or invalid: rebuild with the build step, which writes it"]
    verdict.report["manifest_files"] = len(recorded)
    data = (artifact.data_root / DATA_FOLDER).relative_to(artifact.dist).as_posix() + "/"
    return dist_changes(artifact.dist, recorded, digest, skip=data)


def _sbom_problems(artifact: Artifact, verdict: Verdict) -> list[str]:
    """The SBOM must describe this build: its files and hashes are the manifest's."""
    if verdict.manifest is None:
        return ["there is no build manifest to hold the SBOM to"]
    document = read_sbom(artifact.dist)
    problems = sbom_problems(document, sbom_path(artifact.dist), verdict.manifest, artifact.executable.name)
    if not problems:
        verdict.report["sbom_components"] = len(sbom_components(document or {}))
    return problems


def _provenance_problems(artifact: Artifact, target: Target) -> tuple[list[str], dict[str, str]]:
    """The interpreter and the app's commit build-info records, against what verify anchors to: the
    stdlib and libpython to the verifying interpreter, the app's modules to this checkout."""
    info = read_json_record(artifact.data_root / data_path(BUILD_INFO_FILE), 64 * 1024)
    if not isinstance(info, dict):
        return ["data/build-info.json is missing or unreadable: rebuild with the build step"], {}
    problems, notes = [], {}
    built, here = info.get("interpreter"), interpreter_facts()
    if built != here:
        problems.append(
            f"built with {_describe(built)}, but this is {_describe(here)}: the standard library and libpython are "
            "anchored to the verifying interpreter, so verify with the build's (the same version and files)"
        )
    notes["interpreter"] = f"stdlib and libpython anchored to this interpreter, {sys.executable}"
    source, current = info.get("source") or {}, source_revision(target.config.app_entry.parent)
    commit = source.get("commit") if isinstance(source, dict) else None
    if commit is None:
        notes["source"] = "no commit recorded (not a git checkout): app modules held to this tree as it is"
    elif commit != current["commit"]:
        problems.append(
            f"built from commit {commit}, but this checkout is at {current['commit']}: check out {commit} to "
            "verify its app modules (they are compared with the tree)"
        )
    elif source.get("dirty") or current["dirty"]:
        notes["source"] = f"commit {commit[:12]} with uncommitted changes: app modules held to this tree as it is"
    else:
        notes["source"] = f"app modules held to commit {commit[:12]}"
    return problems, notes


def _describe(facts: object) -> str:
    if not isinstance(facts, dict):
        return "an interpreter build-info does not record"
    return (
        f"{facts.get('implementation')} {facts.get('version')} (stdlib {str(facts.get('stdlib_sha256'))[:12]}, "
        f"libpython {str(facts.get('libpython_sha256'))[:12]})"
    )


def _runtime_problems(artifact: Artifact) -> list[str]:
    if artifact.builder == "pyinstaller":
        missing = [m for m in RUNTIME_MODULES if not (artifact.data_root / f"{m}.pyc").is_file()]
        return [f"vendored runtime module {m}.pyc is missing from {artifact.data_root}" for m in missing]
    if not artifact.executable.is_file():
        return []
    try:
        binary = artifact.executable.read_bytes()
    except OSError as err:
        return [f"{artifact.executable.name} cannot be read ({err.strerror})"]
    missing = [m for m in RUNTIME_MODULES if m.replace("/", ".").removesuffix(".__init__").encode() not in binary]
    return [f"{artifact.executable.name} does not contain the runtime module {m}" for m in missing]
