"""Prove a built artifact complete, intact and able to run offline.

The static checks trust nothing that sits beside the artifact. They make the
build's plan anew, from the prepared profile, the tiktoken cache and the
configuration (never from anything the build wrote), and hold the artifact's
``data/`` to it in one check: every file the plan lists, with its size and
sha256, and nothing else. Every other file is held to its independent anchor
(:mod:`build_hooks.anchors`: its source, its installed distribution, the
system library it was collected from) and to the build's manifest, and the
SBOM to the manifest. The dynamic check runs the artifact's self-check with an
empty HOME, only PATH, and no network, and compares its vectors and token
counts with the source runtime's. Every failure is collected, never just the
first; only a passing artifact gets its SHA256SUMS.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from build_hooks import fsutil
from build_hooks.anchors import BuildEnvironment, anchor_problems
from build_hooks.bundle import Builder, Target, profile_contract
from build_hooks.errors import PreflightError
from build_hooks.manifest import UNREADABLE, data_problems, dist_changes, manifest_path, read_build_manifest
from build_hooks.pipeline_steps import format_table
from build_hooks.plan import BuildPlan, make_plan
from build_hooks.sbom import read_sbom, sbom_components, sbom_path, sbom_problems
from embedding_runtime import EmbeddingService, ModelRoot
from embedding_runtime.build_api import (
    DATA_FOLDER,
    FORBID_NETWORK_ENV,
    SELF_CHECK_TEXTS,
    STDLIB_ACCELERATORS,
    TIKTOKEN_CACHE_ENV,
    VARIANT_ENV,
    FileDigest,
    SelfCheckReport,
    decide_variant,
    detect_cpu,
    sha256_file,
)

GOLDEN_MIN_COSINE = 0.9999
SELF_CHECK_TIMEOUT = 300.0
# Markers of the vendored runtime: PyInstaller keeps .pyc files, Nuitka compiles module names in.
RUNTIME_MODULES = ("embedding_runtime/__init__", "embedding_runtime/_service", "embedding_runtime/_resolve")


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

    @property
    def ok(self) -> bool:
        return not self.failures


def locate(dist: Path, target: Target, platform: str = sys.platform) -> Artifact:
    """Find the data root and executable of a PyInstaller or Nuitka onedir ``dist``."""
    return Artifact(dist, target.data_root(dist), target.executable(dist, platform), target.builder_of(dist))


def verify(dist: Path, target: Target, *, run_self_check: bool = True) -> Verdict:
    artifact = locate(dist, target)
    verdict = Verdict(artifact)
    started = time.monotonic()
    verdict.record("executable", [] if artifact.executable.is_file() else [f"{artifact.executable} is missing"])
    # Each file is hashed once per run, whichever check asks first (model files are ~1 GB at scale).
    digest = functools.cache(_digest_or_why)
    plan = _plan(verdict, target, artifact)
    data_problems = _data_problems(artifact, plan, digest) if plan is not None else ["there is no plan to hold it to"]
    verdict.record("data", data_problems, f"ok ({len(plan.data) if plan else 0} files, {target.pin})")
    _check_anchors(verdict, target, not data_problems, digest)
    verdict.record("runtime package", _runtime_problems(artifact))
    verdict.manifest = read_build_manifest(dist)
    verdict.record("manifest", _manifest_problems(artifact, verdict, digest))
    verdict.record("sbom", _sbom_problems(artifact, verdict))
    verdict.report["static_seconds"] = round(time.monotonic() - started, 2)
    if run_self_check and artifact.executable.is_file():
        _check_self_check(verdict, target)
    verdict.report["artifact_bytes"] = fsutil.folder_bytes(dist)
    verdict.report["seconds"] = round(time.monotonic() - started, 2)
    return verdict


def _digest_or_why(path: Path) -> str:
    """A file's sha256, or why it has none (never equal to a sha256, so it fails any comparison).
    Only a regular file is opened: a FIFO in the artifact would block verify."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return f"{UNREADABLE} (not a regular file)"
        return sha256_file(path)
    except OSError as err:
        return f"{UNREADABLE} ({err.strerror or type(err).__name__})"


def write_outputs(
    verdict: Verdict, out_dir: Path, *, log: Callable[[str], None] = lambda message: None
) -> tuple[Path, Path | None]:
    """The JSON report of one artifact, and its SHA256SUMS only when it passed (never inside it).

    SHA256SUMS comes from the verified build manifest (as ``sha256sum -c`` reads it, from the
    dist's parent folder), and only a passing artifact has one: a failing run removes what an
    earlier passing run wrote, so nothing blesses an artifact that fails now. Two runs over the
    same artifact take turns (a lock beside the outputs), each writing its files whole.
    """
    dist = verdict.artifact.dist
    out_dir.mkdir(parents=True, exist_ok=True)
    sums = out_dir / f"{dist.name}.SHA256SUMS"
    report = out_dir / f"{dist.name}.verify.json"
    payload = {
        "artifact": str(dist),
        "builder": verdict.artifact.builder,
        "verdict": "pass" if verdict.ok else "fail",
        "failures": verdict.failures,
        "checks": dict(verdict.checks),
        **verdict.report,
    }
    lock = FileLock(out_dir / f".{dist.name}.verify.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log(f"another verify is writing the reports of {dist.name}; waiting for it to finish")
        lock.acquire()
    try:
        if verdict.ok and verdict.manifest is not None:
            lines = [f"{e.sha256}  {dist.name}/{relative}" for relative, e in sorted(verdict.manifest.items())]
            fsutil.atomic_write_bytes(sums, ("\n".join(lines) + "\n").encode())
        else:
            sums.unlink(missing_ok=True)
        fsutil.atomic_write_bytes(report, (json.dumps(payload, indent=2, default=str) + "\n").encode())
    finally:
        lock.release()
    return report, sums if verdict.ok else None


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


def _plan(verdict: Verdict, target: Target, artifact: Artifact) -> BuildPlan | None:
    """The plan the artifact must match, made anew: what verify holds its data to."""
    try:
        return make_plan(target, artifact.builder, dist=artifact.dist)
    except PreflightError as refusal:
        verdict.record("plan", [f"the plan cannot be made: {problem}" for problem in refusal.problems])
        return None


def _data_problems(artifact: Artifact, plan: BuildPlan, digest: Callable[[Path], str]) -> list[str]:
    """The one data check: data/ holds exactly the plan's files, each with the plan's size and sha256."""
    data = artifact.data_root / DATA_FOLDER
    shipped = {
        p.relative_to(artifact.dist).as_posix(): FileDigest(p.lstat().st_size, digest(p))
        for p in sorted(data.rglob("*"))
        if p.is_file() or p.is_symlink()
    }
    return data_problems(plan, artifact.dist, shipped)


def _check_anchors(verdict: Verdict, target: Target, data_ok: bool, digest: Callable[[Path], str]) -> None:
    """Every file against its independent anchor; the coverage goes into the report and the table."""
    artifact = verdict.artifact
    env = BuildEnvironment.current([target.config.source_root, target.config.app_entry.parent])
    problems, coverage = anchor_problems(artifact.dist, artifact.builder, artifact.executable, data_ok, env, digest)
    verdict.record("anchors", problems, f"ok ({coverage.summary()})")
    verdict.report["coverage"] = coverage.to_json()


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
    verdict.report["sbom_components"] = len(sbom_components(document or {}))
    return sbom_problems(document, sbom_path(artifact.dist), verdict.manifest, artifact.executable.name)


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


# -- the self-check -------------------------------------------------------------


# What a Windows child needs from the parent's environment: SYSTEMROOT to start at all (sockets,
# crypto), COMSPEC and WINDIR as every Windows process has them, and PROCESSOR_*, the only source of
# Python 3.11's platform.machine() there (without them a library asking for it gets '').
_WINDOWS_KEEP = ("SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "NUMBER_OF_PROCESSORS")


def offline_env(
    home: Path, tmp: Path | None = None, *, platform: str = sys.platform, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The environment of a run with nothing of the user's: only PATH, ``home`` as HOME and every
    app-data root, ``tmp`` as the temp folder (plus what Windows itself cannot run without)."""
    env = {"PATH": environ.get("PATH", os.defpath), "HOME": str(home)}
    if tmp is not None:
        env |= {"TMPDIR": str(tmp), "TEMP": str(tmp), "TMP": str(tmp)}
    if platform == "win32":
        upper = {name.upper(): value for name, value in environ.items()}  # Windows names ignore case
        env |= {name: value for name, value in upper.items() if name in _WINDOWS_KEEP or name.startswith("PROCESSOR_")}
        env |= {"LOCALAPPDATA": str(home), "APPDATA": str(home), "USERPROFILE": str(home)}
    return env


def run_offline(
    executable: Path, args: Sequence[str], home: Path, tmp: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a frozen binary in ``offline_env`` and with no network: the kernel's cut on Linux
    (``unshare -n``), a sandbox profile on macOS, the self-check's audit hook elsewhere.

    Its output is read as UTF-8 (the self-check prints ASCII JSON; anything else is only shown).
    """
    env = offline_env(home, tmp)
    command = [str(executable), *args]
    if _unshare_works():
        command = ["unshare", "-n", *command]
    elif sys.platform == "darwin" and shutil.which("sandbox-exec"):
        command = ["sandbox-exec", "-p", "(version 1)(allow default)(deny network*)", *command]
    else:
        env[FORBID_NETWORK_ENV] = "1"  # the self-check's audit hook then fails every connect
    return subprocess.run(
        command, env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=SELF_CHECK_TIMEOUT
    )


@dataclass(frozen=True)
class SelfCheckRun:
    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    written: list[str]  # files that appeared in the empty HOME (app-data) and temp folders


def run_self_check(artifact: Artifact) -> SelfCheckRun:
    """Run ``--self-check`` offline with an empty HOME and temp folder, and list what it left there."""
    with tempfile.TemporaryDirectory(prefix="verify-") as scratch:
        home, tmp = Path(scratch) / "home", Path(scratch) / "tmp"
        home.mkdir()
        tmp.mkdir()
        started = time.monotonic()
        result = run_offline(artifact.executable, ["--self-check"], home, tmp)
        seconds = time.monotonic() - started
        written = [str(p.relative_to(scratch)) for folder in (home, tmp) for p in sorted(folder.rglob("*"))]
        return SelfCheckRun(result.returncode, result.stdout, result.stderr, seconds, written)


def _check_self_check(verdict: Verdict, target: Target) -> None:
    try:
        run = run_self_check(verdict.artifact)
    except (OSError, subprocess.SubprocessError) as err:
        verdict.record("self-check", [f"{verdict.artifact.executable.name} cannot be run ({err})"])
        return
    code, stdout, stderr, seconds = run.exit_code, run.stdout, run.stderr, run.seconds
    verdict.report["self_check_seconds"] = round(seconds, 2)
    verdict.record("nothing written", [f"the self-check wrote {path}" for path in run.written[:10]])
    try:
        report: SelfCheckReport = json.loads(stdout)
    except ValueError:
        verdict.record("self-check", [f"exit {code}, no JSON report ({_why(stderr)})"])
        return
    verdict.report["self_check"] = {k: v for k, v in report.items() if k != "vectors"}
    problems = [] if code == 0 else [f"exit {code}: disabled_reason={report.get('disabled_reason')}"]
    problems += _placement_problems(report, verdict.artifact, target)
    verdict.record("self-check", problems, f"ok ({seconds:.1f} s)")
    verdict.record("contents", _contents_problems(report, verdict))
    if target.with_vectors:
        verdict.record("golden vectors", _golden_problems(report, target, verdict))
        verdict.record("int8 vs fp32", _agreement_problems(report, target, verdict))
    verdict.record("token counts", _token_count_problems(report, target))


def _why(stderr: str) -> str:
    """The line of a failed run's stderr that says why: its error (the exception of a traceback),
    not whatever a library printed last (onnxruntime's "Failed to create DXGI factory." on Windows)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^(ERROR\b|[\w.]*(Error|Exception|Interrupt)\b)", line)]
    return (errors or lines or ["no output"])[-1]


def _placement_problems(report: SelfCheckReport, artifact: Artifact, target: Target) -> list[str]:
    problems = []
    if report.get("network_connections_attempted"):
        problems.append(f"network connections attempted: {report['network_connections_attempted']}")
    if report.get("processes_started"):
        problems.append(f"processes started: {report['processes_started']}")
    if not target.with_vectors:
        return problems
    folder: dict[str, Any] = dict(report.get("folder") or {})
    if folder.get("kind") != "bundled" or not str(folder.get("path", "")).startswith(str(artifact.dist)):
        problems.append(f"used {folder.get('kind')} folder {folder.get('path')}, not the artifact's bundled profile")
    canary = report.get("canary") or {}
    if canary.get("state") != "proven":
        problems.append(f"the bundled folder served without proving its weights (canary {canary.get('state')})")
    served = (folder.get("profile_id"), folder.get("revision"))
    if served != (target.pin.profile_id, target.pin.revision):
        problems.append(f"serves {served[0]}@{served[1]}, not the pin in effect ({target.pin})")
    preferred = decide_variant(detect_cpu(), {}).preferred
    variant = report.get("variant") or {}
    chosen = variant.get("chosen")
    # A CPU whose int8 kernels fail the canary serves fp32, and says so: that is the product working.
    if preferred in target.pin.variants and chosen != preferred and not variant.get("canary_fallback"):
        problems.append(f"chose {chosen}, but this CPU prefers {preferred} and the artifact bundles it")
    return problems


def _contents_problems(report: SelfCheckReport, verdict: Verdict) -> list[str]:
    """No HTTP client may be importable inside the artifact, and no C accelerator the build had may be lost."""
    problems = [
        f"HTTP client {name} ships in the artifact (the app makes no request)"
        for name in report.get("http_clients", [])
    ]
    accelerators = report.get("accelerators", {})
    verdict.report["accelerators"] = accelerators
    for name in STDLIB_ACCELERATORS:
        if importlib.util.find_spec(name) is not None and not accelerators.get(name):
            problems.append(f"the C accelerator {name} is missing: the standard library falls back to slow Python")
    return problems


def _golden_problems(report: SelfCheckReport, target: Target, verdict: Verdict) -> list[str]:
    vectors = report.get("vectors") or {}
    problems = [f"no {v} vectors in the self-check" for v in target.pin.variants if v not in vectors]
    cosines: dict[str, float] = {}
    for variant, values in vectors.items():
        golden = EmbeddingService(
            profile_contract(target.config, target.pin.profile_id),
            roots=[ModelRoot(target.config.output_root, "source")],
            env={VARIANT_ENV: variant},
        ).embed_documents(list(SELF_CHECK_TEXTS))
        cosine = float(_row_cosines(np.array(values, dtype=np.float32), golden).min())
        cosines[variant] = round(cosine, 6)
        if cosine < GOLDEN_MIN_COSINE:
            problems.append(
                f"{variant} vectors differ from the source runtime's (min cosine {cosine:.4f} < {GOLDEN_MIN_COSINE})"
            )
    verdict.report["golden_min_cosine"] = cosines
    return problems


def _agreement_problems(report: SelfCheckReport, target: Target, verdict: Verdict) -> list[str]:
    vectors = report.get("vectors") or {}
    if not {"fp32", "int8"} <= set(vectors):
        return []
    cosines = _row_cosines(np.array(vectors["int8"], dtype=np.float32), np.array(vectors["fp32"], dtype=np.float32))
    low, mean = float(cosines.min()), float(cosines.mean())
    verdict.report["int8_vs_fp32"] = {"min_cosine": round(low, 6), "mean_cosine": round(mean, 6)}
    floor = target.config.int8_min_cosine
    if low < floor:
        return [f"int8 agrees with fp32 at min cosine {low:.3f} (mean {mean:.3f}), below the floor {floor}: "
                "the quantized model computes garbage"]  # fmt: skip
    return []


def _token_count_problems(report: SelfCheckReport, target: Target) -> list[str]:
    expected = expected_token_counts(target)
    actual = report.get("token_counts") or {}
    return [
        f"{name}: counted {actual.get(name)}, expected {counts}"
        for name, counts in expected.items()
        if actual.get(name) != counts
    ]


# Counted in a child: tiktoken finds its cache only through the environment, which verify leaves alone.
_COUNT_TOKENS = (
    "import json, sys, tiktoken\n"
    "texts = json.loads(sys.argv[1])\n"
    "print(json.dumps({name: [len(tiktoken.get_encoding(name).encode(t)) for t in texts] for name in sys.argv[2:]}))\n"
)


def expected_token_counts(target: Target) -> dict[str, list[int]]:
    """Token counts of the self-check texts from the source tiktoken cache (no network)."""
    encodings = list(target.config.tiktoken_encodings)
    env = {**os.environ, TIKTOKEN_CACHE_ENV: str(target.config.tiktoken_cache)}
    command = [sys.executable, "-c", _COUNT_TOKENS, json.dumps(list(SELF_CHECK_TEXTS)), *encodings]
    result = subprocess.run(command, env=env, capture_output=True, encoding="utf-8", timeout=SELF_CHECK_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"counting tokens from {target.config.tiktoken_cache} failed: {_why(result.stderr)}")
    return {str(name): list(counts) for name, counts in json.loads(result.stdout).items()}


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape != b.shape:
        return np.zeros(max(len(a), 1))
    return np.asarray((a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))


def _unshare_works() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
