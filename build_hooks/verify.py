"""Prove a built artifact complete, intact and able to run offline.

Static checks read the artifact's files against the prepared profile's
``.prepared.json``, the tiktoken manifest and the pin in effect (the pinned
bytes and their provenance); the dynamic check runs the artifact's self-check
with an empty HOME, only PATH, and no network, and compares its vectors and
token counts with the source runtime's. Every failure is collected, never
just the first.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from build_hooks.bundle import MODEL_NOTICE_FILE, Builder, BundlePlan, build_info, model_notice, profile_contract
from build_hooks.manifest import ManifestEntry, dist_changes, manifest_path
from build_hooks.manifest import read_manifest as read_build_manifest
from build_hooks.sbom import read_sbom, sbom_components, sbom_path, sbom_problems
from embedding_runtime import (
    BUILD_INFO_FILE,
    DATA_FOLDER,
    FORBID_NETWORK_ENV,
    MARKER_NAME,
    MODELS_FOLDER,
    SELF_CHECK_TEXTS,
    STDLIB_ACCELERATORS,
    TIKTOKEN_CACHE_ENV,
    TIKTOKEN_FOLDER,
    VARIANT_ENV,
    VARIANT_FILES,
    EmbeddingService,
    ModelRoot,
    SelfCheckReport,
    data_path,
    decide_variant,
    detect_cpu,
    encoding_problems,
    read_marker,
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
    manifest: dict[str, ManifestEntry] | None = None

    def record(self, check: str, problems: Sequence[str], ok_detail: str = "ok") -> None:
        self.failures += [f"{check}: {p}" for p in problems]
        self.checks.append((check, ok_detail if not problems else f"FAILED ({len(problems)})"))

    @property
    def ok(self) -> bool:
        return not self.failures


def locate(dist: Path, plan: BundlePlan, platform: str = sys.platform) -> Artifact:
    """Find the data root and executable of a PyInstaller or Nuitka onedir ``dist``."""
    return Artifact(dist, plan.data_root(dist), plan.executable(dist, platform), plan.builder_of(dist))


def verify(dist: Path, plan: BundlePlan, *, run_self_check: bool = True) -> Verdict:
    artifact = locate(dist, plan)
    verdict = Verdict(artifact)
    started = time.monotonic()
    verdict.record("executable", [] if artifact.executable.is_file() else [f"{artifact.executable} is missing"])
    # Each file is hashed once per run, whichever check asks first (model files are ~1 GB at scale).
    digest = functools.cache(sha256_file)
    model_problems = _model_problems(artifact, plan, digest) if plan.with_vectors else []
    verdict.record("model files", model_problems, _variants(plan))
    verdict.record("tiktoken cache", _tiktoken_problems(artifact, plan))
    verdict.record("provenance", _provenance_problems(artifact, plan), f"ok ({plan.pin})")
    verdict.record("runtime package", _runtime_problems(artifact))
    verdict.manifest = read_build_manifest(dist)
    verdict.record("manifest", _manifest_problems(artifact, plan, verdict, digest))
    verdict.record("sbom", _sbom_problems(artifact, verdict))
    verdict.report["static_seconds"] = round(time.monotonic() - started, 2)
    if run_self_check and artifact.executable.is_file():
        _check_self_check(verdict, plan)
    verdict.report["artifact_bytes"] = sum(p.stat().st_size for p in dist.rglob("*") if p.is_file())
    verdict.report["seconds"] = round(time.monotonic() - started, 2)
    return verdict


def write_outputs(verdict: Verdict, out_dir: Path) -> tuple[Path, Path]:
    """The JSON report and SHA256SUMS of one artifact, beside it (never inside it).

    SHA256SUMS comes from the build's manifest (as ``sha256sum -c`` reads it, from the dist's
    parent folder), not from whatever the dist holds now.
    """
    dist = verdict.artifact.dist
    out_dir.mkdir(parents=True, exist_ok=True)
    sums = out_dir / f"{dist.name}.SHA256SUMS"
    recorded = verdict.manifest or {}
    lines = [f"{entry.sha256}  {dist.name}/{relative}" for relative, entry in sorted(recorded.items())]
    sums.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = out_dir / f"{dist.name}.verify.json"
    payload = {
        "artifact": str(dist),
        "builder": verdict.artifact.builder,
        "verdict": "pass" if verdict.ok else "fail",
        "failures": verdict.failures,
        "checks": dict(verdict.checks),
        **verdict.report,
    }
    report.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return report, sums


def summary_table(verdicts: Sequence[Verdict]) -> str:
    rows = [("artifact", "check", "result")]
    for verdict in verdicts:
        for check, result in verdict.checks:
            rows.append((verdict.artifact.name, check, result))
        size = verdict.report.get("artifact_bytes", 0) / 2**20
        rows.append((verdict.artifact.name, "verdict", f"{'PASS' if verdict.ok else 'FAIL'} ({size:.0f} MiB)"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_summary(verdicts: Sequence[Verdict]) -> str:
    lines = ["| artifact | check | result |", "| --- | --- | --- |"]
    for verdict in verdicts:
        lines += [f"| {verdict.artifact.name} | {check} | {result} |" for check, result in verdict.checks]
        lines += [f"| {verdict.artifact.name} | failure | {f} |" for f in verdict.failures]
    return "\n".join(lines) + "\n"


# -- static checks --------------------------------------------------------------


def _model_problems(artifact: Artifact, plan: BundlePlan, digest: Callable[[Path], str]) -> list[str]:
    folder = artifact.data_root / data_path(MODELS_FOLDER, plan.pin.profile_id)
    source = read_marker(plan.profile_dir)
    bundled = read_marker(folder)
    if bundled is None:
        return [f"{folder / MARKER_NAME} is missing or invalid"]
    problems = []
    if (bundled.repo, bundled.revision) != (plan.pin.repo, plan.pin.revision):
        problems.append(f"bundled pin {bundled.repo}@{bundled.revision} is not the pin in effect ({plan.pin})")
    for variant in plan.pin.variants:
        for name in VARIANT_FILES[variant]:
            path = folder / name
            recorded = bundled.files.get(name)
            pinned = source.files.get(name) if source else recorded
            if recorded is None or pinned is None:
                problems.append(f"{name} is not recorded in the bundled {MARKER_NAME}")
            elif not path.is_file():
                problems.append(f"{name} is missing")
            elif (size := path.stat().st_size) == 0:
                problems.append(f"{name} is empty")
            elif size != pinned.size:
                problems.append(f"{name} has {size} bytes, the prepared profile has {pinned.size}")
            elif (actual := digest(path)) != pinned.sha256:
                problems.append(f"{name} sha256 {actual[:16]}… differs from the prepared {pinned.sha256[:16]}…")
    return problems


def _tiktoken_problems(artifact: Artifact, plan: BundlePlan) -> list[str]:
    folder = artifact.data_root / data_path(TIKTOKEN_FOLDER)
    found = encoding_problems(folder, plan.config.tiktoken_encodings)
    return [f"{encoding}: {problem}" for encoding, problems in found.items() for problem in problems]


def _provenance_problems(artifact: Artifact, plan: BundlePlan) -> list[str]:
    """build-info.json and the licence notice must say what this build was made from."""
    data = artifact.data_root
    try:
        info = json.loads((data / data_path(BUILD_INFO_FILE)).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return [f"{data_path(BUILD_INFO_FILE)} is missing or invalid ({err})"]
    expected = build_info(plan, artifact.builder)
    problems = [
        f"{data_path(BUILD_INFO_FILE)} says {key}={info.get(key)!r}, the build's inputs say {value!r}"
        for key, value in expected.items()
        if info.get(key) != value
    ]
    notice = data / data_path(MODEL_NOTICE_FILE)
    if not notice.is_file() or notice.read_text(encoding="utf-8") != model_notice(plan):
        problems.append(f"{data_path(MODEL_NOTICE_FILE)} does not state the model, revision and licence of {plan.pin}")
    return problems


def _manifest_problems(
    artifact: Artifact, plan: BundlePlan, verdict: Verdict, digest: Callable[[Path], str]
) -> list[str]:
    """Every file against the build's manifest, and data/ against the artifact description."""
    recorded = verdict.manifest
    if recorded is None:
        return [f"{manifest_path(artifact.dist)} is missing or invalid: rebuild with the build step, which writes it"]
    problems = dist_changes(artifact.dist, recorded, digest)
    data = artifact.data_root / DATA_FOLDER
    expected = set(plan.expected_data())
    shipped = {p.relative_to(artifact.data_root).as_posix() for p in data.rglob("*") if p.is_file() or p.is_symlink()}
    problems += [f"{name} is not part of the artifact description" for name in sorted(shipped - expected)]
    problems += [f"{name} is missing from {DATA_FOLDER}/" for name in sorted(expected - shipped)]
    verdict.report["manifest_files"] = len(recorded)
    return problems


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
    binary = artifact.executable.read_bytes()
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


def _check_self_check(verdict: Verdict, plan: BundlePlan) -> None:
    run = run_self_check(verdict.artifact)
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
    problems += _placement_problems(report, verdict.artifact, plan)
    verdict.record("self-check", problems, f"ok ({seconds:.1f} s)")
    verdict.record("contents", _contents_problems(report, verdict))
    if plan.with_vectors:
        verdict.record("golden vectors", _golden_problems(report, plan, verdict))
        verdict.record("int8 vs fp32", _agreement_problems(report, plan, verdict))
    verdict.record("token counts", _token_count_problems(report, plan))


def _why(stderr: str) -> str:
    """The line of a failed run's stderr that says why: its error (the exception of a traceback),
    not whatever a library printed last (onnxruntime's "Failed to create DXGI factory." on Windows)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^(ERROR\b|[\w.]*(Error|Exception|Interrupt)\b)", line)]
    return (errors or lines or ["no output"])[-1]


def _placement_problems(report: SelfCheckReport, artifact: Artifact, plan: BundlePlan) -> list[str]:
    problems = []
    if report.get("network_connections_attempted"):
        problems.append(f"network connections attempted: {report['network_connections_attempted']}")
    if report.get("processes_started"):
        problems.append(f"processes started: {report['processes_started']}")
    if not plan.with_vectors:
        return problems
    folder: dict[str, Any] = dict(report.get("folder") or {})
    if folder.get("kind") != "bundled" or not str(folder.get("path", "")).startswith(str(artifact.dist)):
        problems.append(f"used {folder.get('kind')} folder {folder.get('path')}, not the artifact's bundled profile")
    canary = report.get("canary") or {}
    if canary.get("state") != "proven":
        problems.append(f"the bundled folder served without proving its weights (canary {canary.get('state')})")
    served = (folder.get("profile_id"), folder.get("revision"))
    if served != (plan.pin.profile_id, plan.pin.revision):
        problems.append(f"serves {served[0]}@{served[1]}, not the pin in effect ({plan.pin})")
    preferred = decide_variant(detect_cpu(), {}).preferred
    variant = report.get("variant") or {}
    chosen = variant.get("chosen")
    # A CPU whose int8 kernels fail the canary serves fp32, and says so: that is the product working.
    if preferred in plan.pin.variants and chosen != preferred and not variant.get("canary_fallback"):
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


def _golden_problems(report: SelfCheckReport, plan: BundlePlan, verdict: Verdict) -> list[str]:
    vectors = report.get("vectors") or {}
    problems = [f"no {v} vectors in the self-check" for v in plan.pin.variants if v not in vectors]
    cosines: dict[str, float] = {}
    for variant, values in vectors.items():
        golden = EmbeddingService(
            profile_contract(plan.config, plan.pin.profile_id),
            roots=[ModelRoot(plan.config.output_root, "source")],
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


def _agreement_problems(report: SelfCheckReport, plan: BundlePlan, verdict: Verdict) -> list[str]:
    vectors = report.get("vectors") or {}
    if not {"fp32", "int8"} <= set(vectors):
        return []
    cosines = _row_cosines(np.array(vectors["int8"], dtype=np.float32), np.array(vectors["fp32"], dtype=np.float32))
    low, mean = float(cosines.min()), float(cosines.mean())
    verdict.report["int8_vs_fp32"] = {"min_cosine": round(low, 6), "mean_cosine": round(mean, 6)}
    floor = plan.config.int8_min_cosine
    if low < floor:
        return [f"int8 agrees with fp32 at min cosine {low:.3f} (mean {mean:.3f}), below the floor {floor}: "
                "the quantized model computes garbage"]  # fmt: skip
    return []


def _token_count_problems(report: SelfCheckReport, plan: BundlePlan) -> list[str]:
    expected = expected_token_counts(plan)
    actual = report.get("token_counts") or {}
    return [
        f"{name}: counted {actual.get(name)}, expected {counts}"
        for name, counts in expected.items()
        if actual.get(name) != counts
    ]


def expected_token_counts(plan: BundlePlan) -> dict[str, list[int]]:
    """Token counts of the self-check texts from the source tiktoken cache (no network)."""
    import tiktoken

    previous = os.environ.get(TIKTOKEN_CACHE_ENV)
    os.environ[TIKTOKEN_CACHE_ENV] = str(plan.config.tiktoken_cache)
    try:
        return {
            name: [len(tiktoken.get_encoding(name).encode(t)) for t in SELF_CHECK_TEXTS]
            for name in plan.config.tiktoken_encodings
        }
    finally:
        if previous is None:
            os.environ.pop(TIKTOKEN_CACHE_ENV, None)
        else:
            os.environ[TIKTOKEN_CACHE_ENV] = previous


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape != b.shape:
        return np.zeros(max(len(a), 1))
    return np.asarray((a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))


def _variants(plan: BundlePlan) -> str:
    return f"ok ({'+'.join(plan.pin.variants)})"


def _unshare_works() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
