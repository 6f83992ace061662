"""Prove a built artifact complete, intact and able to run offline.

Static checks read the artifact's files against the prepared profile's
``.prepared.json`` and the tiktoken manifest (the pinned bytes); the dynamic
check runs the artifact's self-check with an empty HOME, only PATH, and no
network, and compares its vectors and token counts with the source runtime's.
Every failure is collected, never just the first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from build_hooks.bundle import BundlePlan
from build_hooks.hashing import sha256_file
from embedding_runtime import EmbeddingService, ModelRoot
from embedding_runtime.cpu import detect
from embedding_runtime.layout import MARKER_NAME, VARIANT_FILES, read_marker
from embedding_runtime.self_check import SELF_CHECK_TEXTS
from embedding_runtime.tiktoken_cache import CACHE_ENV, MANIFEST_NAME, read_manifest
from embedding_runtime.variant import decide_variant

GOLDEN_MIN_COSINE = 0.9999
SELF_CHECK_TIMEOUT = 300.0
# Markers of the vendored runtime: PyInstaller keeps .pyc files, Nuitka compiles module names in.
RUNTIME_MODULES = ("embedding_runtime/__init__", "embedding_runtime/service", "embedding_runtime/resolve")


@dataclass(frozen=True)
class Artifact:
    dist: Path
    data_root: Path  # holds data/; _internal/ for PyInstaller 6, the top level for Nuitka
    executable: Path
    builder: str

    @property
    def name(self) -> str:
        return f"{self.builder}:{self.dist.name}"


@dataclass
class Verdict:
    artifact: Artifact
    failures: list[str] = field(default_factory=list)
    checks: list[tuple[str, str]] = field(default_factory=list)  # (check, result)
    report: dict[str, Any] = field(default_factory=dict)

    def record(self, check: str, problems: Sequence[str], ok_detail: str = "ok") -> None:
        self.failures += [f"{check}: {p}" for p in problems]
        self.checks.append((check, ok_detail if not problems else f"FAILED ({len(problems)})"))

    @property
    def ok(self) -> bool:
        return not self.failures


def locate(dist: Path, app_name: str, platform: str = sys.platform) -> Artifact:
    """Find the data root and executable of a PyInstaller or Nuitka onedir ``dist``."""
    internal = dist / "_internal"
    data_root = internal if internal.is_dir() else dist
    builder = "pyinstaller" if data_root == internal else "nuitka"
    suffix = ".exe" if platform == "win32" else ""
    return Artifact(dist, data_root, dist / f"{app_name}{suffix}", builder)


def find_artifacts(dist_root: Path, app_name: str) -> list[Path]:
    """Every artifact the build steps produce under ``dist_root``."""
    candidates = [dist_root / "nuitka" / f"{app_name}.dist", dist_root / "pyinstaller" / app_name]
    return [c for c in candidates if c.is_dir()]


def verify(dist: Path, plan: BundlePlan, *, run_self_check: bool = True) -> Verdict:
    artifact = locate(dist, plan.config.app_name)
    verdict = Verdict(artifact)
    started = time.monotonic()
    verdict.record("executable", [] if artifact.executable.is_file() else [f"{artifact.executable} is missing"])
    verdict.record("model files", _model_problems(artifact, plan) if plan.with_vectors else [], _variants(plan))
    verdict.record("tiktoken cache", _tiktoken_problems(artifact, plan))
    verdict.record("runtime package", _runtime_problems(artifact))
    verdict.report["static_seconds"] = round(time.monotonic() - started, 2)
    if run_self_check and artifact.executable.is_file():
        _check_self_check(verdict, plan)
    verdict.report["artifact_bytes"] = sum(p.stat().st_size for p in dist.rglob("*") if p.is_file())
    verdict.report["seconds"] = round(time.monotonic() - started, 2)
    return verdict


def write_outputs(verdict: Verdict, out_dir: Path) -> tuple[Path, Path]:
    """The JSON report and SHA256SUMS of one artifact, beside it (never inside it)."""
    dist = verdict.artifact.dist
    sums = out_dir / f"{dist.name}.SHA256SUMS"
    lines = [f"{sha256_file(p)}  {p.relative_to(dist).as_posix()}" for p in sorted(dist.rglob("*")) if p.is_file()]
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


def _model_problems(artifact: Artifact, plan: BundlePlan) -> list[str]:
    folder = artifact.data_root / "data" / "embedding_models" / plan.profile_id
    source = read_marker(plan.profile_dir)
    bundled = read_marker(folder)
    if bundled is None:
        return [f"{folder / MARKER_NAME} is missing or invalid"]
    problems = []
    if source is not None and (bundled.repo, bundled.revision) != (source.repo, source.revision):
        problems.append(f"bundled pin {bundled.repo}@{bundled.revision} is not the prepared one")
    for variant in plan.variants:
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
            elif (digest := sha256_file(path)) != pinned.sha256:
                problems.append(f"{name} sha256 {digest[:16]}… differs from the prepared {pinned.sha256[:16]}…")
    return problems


def _tiktoken_problems(artifact: Artifact, plan: BundlePlan) -> list[str]:
    folder = artifact.data_root / "data" / "tiktoken_cache"
    bundled = read_manifest(folder)
    if bundled is None:
        return [f"{folder / MANIFEST_NAME} is missing or invalid"]
    problems = []
    for encoding in plan.config.tiktoken_encodings:
        blobs = [b for b in bundled if b.encoding == encoding]
        if not blobs:
            problems.append(f"{encoding} is not in the bundled manifest")
        for blob in blobs:
            path = folder / blob.file
            if not path.is_file():
                problems.append(f"{encoding}: {blob.file} is missing")
            elif sha256_file(path) != blob.sha256:
                problems.append(f"{encoding}: {blob.file} does not match its manifest sha256")
    return problems


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


def run_offline(executable: Path, args: Sequence[str], home: Path) -> subprocess.CompletedProcess[str]:
    """Run a frozen binary with only PATH, ``home`` as every app-data root, and no network."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    if sys.platform == "win32":
        app_data = {"LOCALAPPDATA": str(home), "APPDATA": str(home), "USERPROFILE": str(home)}
        env |= {**app_data, "SYSTEMROOT": os.environ.get("SYSTEMROOT", "")}
    command = [str(executable), *args]
    if _unshare_works():
        command = ["unshare", "-n", *command]
    else:
        env["LOCAL_NOTES_FORBID_NETWORK"] = "1"  # the launcher's audit hook then fails every connect
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=SELF_CHECK_TIMEOUT)


def run_self_check(artifact: Artifact) -> tuple[int, str, str, float]:
    """Run ``--self-check`` offline with an empty HOME, so no user override can leak in."""
    with tempfile.TemporaryDirectory(prefix="verify-home-") as home:
        started = time.monotonic()
        result = run_offline(artifact.executable, ["--self-check"], Path(home))
        return result.returncode, result.stdout, result.stderr, time.monotonic() - started


def _check_self_check(verdict: Verdict, plan: BundlePlan) -> None:
    code, stdout, stderr, seconds = run_self_check(verdict.artifact)
    verdict.report["self_check_seconds"] = round(seconds, 2)
    try:
        report = json.loads(stdout)
    except ValueError:
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        verdict.record("self-check", [f"exit {code}, no JSON report ({tail})"])
        return
    verdict.report["self_check"] = {k: v for k, v in report.items() if k != "vectors"}
    problems = [] if code == 0 else [f"exit {code}: disabled_reason={report.get('disabled_reason')}"]
    problems += _placement_problems(report, verdict.artifact, plan)
    verdict.record("self-check", problems, f"ok ({seconds:.1f} s)")
    if plan.with_vectors:
        verdict.record("golden vectors", _golden_problems(report, plan, verdict))
        verdict.record("int8 vs fp32", _agreement_problems(report, plan, verdict))
    verdict.record("token counts", _token_count_problems(report, plan))


def _placement_problems(report: dict[str, Any], artifact: Artifact, plan: BundlePlan) -> list[str]:
    problems = []
    if report.get("network_connections_attempted"):
        problems.append(f"network connections attempted: {report['network_connections_attempted']}")
    if report.get("processes_started"):
        problems.append(f"processes started: {report['processes_started']}")
    if not plan.with_vectors:
        return problems
    folder = report.get("folder") or {}
    if folder.get("kind") != "bundled" or not str(folder.get("path", "")).startswith(str(artifact.dist)):
        problems.append(f"used {folder.get('kind')} folder {folder.get('path')}, not the artifact's bundled profile")
    preferred = decide_variant(detect(), {}).preferred
    chosen = (report.get("variant") or {}).get("chosen")
    if preferred in plan.variants and chosen != preferred:
        problems.append(f"chose {chosen}, but this CPU prefers {preferred} and the artifact bundles it")
    return problems


def _golden_problems(report: dict[str, Any], plan: BundlePlan, verdict: Verdict) -> list[str]:
    vectors = report.get("vectors") or {}
    problems = [f"no {v} vectors in the self-check" for v in plan.variants if v not in vectors]
    cosines: dict[str, float] = {}
    for variant, values in vectors.items():
        golden = EmbeddingService(
            plan.profile_id,
            roots=[ModelRoot(plan.config.output_root, "source")],
            env={"EMBEDDING_RUNTIME_VARIANT": variant},
        ).embed_documents(list(SELF_CHECK_TEXTS))
        cosine = float(_row_cosines(np.array(values, dtype=np.float32), golden).min())
        cosines[variant] = round(cosine, 6)
        if cosine < GOLDEN_MIN_COSINE:
            problems.append(
                f"{variant} vectors differ from the source runtime's (min cosine {cosine:.4f} < {GOLDEN_MIN_COSINE})"
            )
    verdict.report["golden_min_cosine"] = cosines
    return problems


def _agreement_problems(report: dict[str, Any], plan: BundlePlan, verdict: Verdict) -> list[str]:
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


def _token_count_problems(report: dict[str, Any], plan: BundlePlan) -> list[str]:
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

    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(plan.config.tiktoken_cache)
    try:
        return {
            name: [len(tiktoken.get_encoding(name).encode(t)) for t in SELF_CHECK_TEXTS]
            for name in plan.config.tiktoken_encodings
        }
    finally:
        if previous is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = previous


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape != b.shape:
        return np.zeros(max(len(a), 1))
    return np.asarray((a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))


def _variants(plan: BundlePlan) -> str:
    return f"ok ({'+'.join(plan.variants)})"


def _unshare_works() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
