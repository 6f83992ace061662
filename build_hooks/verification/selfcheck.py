"""The dynamic half of verify: the artifact's own ``--self-check``, run as a user with nothing would.

It runs with only PATH, an empty HOME and temp folder, and no network (the kernel's
cut on Linux, a sandbox profile on macOS, the self-check's audit hook on Windows),
and its report is compared with the source runtime's: the bundled folder served,
the variant this CPU prefers, its canary proven, vectors that agree with the
source runtime's, identical token counts, nothing written, no connection and no
child process.
"""

from __future__ import annotations

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from build_hooks.freezing.content import profile_contract
from build_hooks.freezing.selection import excludes
from build_hooks.freezing.target import Target
from embedding_runtime import EmbeddingService, ModelRoot
from embedding_runtime.build_api import (
    FORBID_NETWORK_ENV,
    SELF_CHECK_TEXTS,
    STDLIB_ACCELERATORS,
    TIKTOKEN_CACHE_ENV,
    ProbeRecord,
    SelfCheckReport,
    decide_variant,
    detect_cpu,
)

# fp32 computed twice, on one CPU or two, agrees to about 1e-6.
GOLDEN_MIN_COSINE = 0.9999
SELF_CHECK_TIMEOUT = 300.0
# What a Windows child needs from the parent's environment: SYSTEMROOT to start at all (sockets,
# crypto), COMSPEC and WINDIR as every Windows process has them, and PROCESSOR_*, the only source of
# Python 3.11's platform.machine() there (without them a library asking for it gets '').
_WINDOWS_KEEP = ("SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "NUMBER_OF_PROCESSORS")

Record = Callable[[str, Sequence[str], str], None]  # Verdict.record: (check, problems, ok detail)


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


def run_self_check(executable: Path) -> SelfCheckRun:
    """Run ``--self-check`` offline with an empty HOME and temp folder, and list what it left there."""
    with tempfile.TemporaryDirectory(prefix="verify-") as scratch:
        home, tmp = Path(scratch) / "home", Path(scratch) / "tmp"
        home.mkdir()
        tmp.mkdir()
        started = time.monotonic()
        result = run_offline(executable, ["--self-check"], home, tmp)
        seconds = time.monotonic() - started
        written = [str(p.relative_to(scratch)) for folder in (home, tmp) for p in sorted(folder.rglob("*"))]
        return SelfCheckRun(result.returncode, result.stdout, result.stderr, seconds, written)


def check_self_check(
    record: Record, report_into: dict[str, Any], dist: Path, executable: Path, target: Target, probe: ProbeRecord | None
) -> None:
    """Run the artifact's self-check and record each of its checks; ``probe`` is the record verify made
    here (its calibrated int8 floor holds int8 vectors computed on two CPUs)."""
    try:
        run = run_self_check(executable)
    except (OSError, subprocess.SubprocessError) as err:
        record("self-check", [f"{executable.name} cannot be run ({err})"], "")
        return
    report_into["self_check_seconds"] = round(run.seconds, 2)
    record("nothing written", [f"the self-check wrote {path}" for path in run.written[:10]], "ok")
    try:
        report: SelfCheckReport = json.loads(run.stdout)
        if not isinstance(report, dict):
            raise ValueError("not a JSON object")
    except ValueError:
        crashed = crashed_on_exclusion(run.stderr, target.config.exclude_modules)
        record("self-check", [crashed or f"exit {run.exit_code}, no JSON report ({why(run.stderr)})"], "")
        return
    report_into["self_check"] = {k: v for k, v in report.items() if k != "vectors"}
    problems = [] if run.exit_code == 0 else [f"exit {run.exit_code}: disabled_reason={report.get('disabled_reason')}"]
    if (crashed := crashed_on_exclusion(run.stdout, target.config.exclude_modules)) is not None:
        problems.append(crashed)
    problems += placement_problems(report, dist, target)
    record("self-check", problems, f"ok ({run.seconds:.1f} s)")
    record("contents", contents_problems(report, report_into), "ok")
    if target.with_vectors:
        record("golden vectors", golden_problems(report, target, report_into, probe), "ok")
        record("int8 vs fp32", agreement_problems(report, target, report_into), "ok")
    record("token counts", token_count_problems(report, target), "ok")


def exclusion_problem(executable: Path, excluded: Sequence[str]) -> str | None:
    """Whether the artifact needs a module ``exclude-modules`` left out: its self-check, run offline as
    verify runs it, failed importing one (a crash, or a check's error). The one line saying so, or why
    it cannot be told (no report at all); ``None``: it needs none of them."""
    run = run_self_check(executable)
    if (problem := crashed_on_exclusion(run.stderr + run.stdout, excluded)) is not None:
        return problem
    try:
        report = json.loads(run.stdout)
        report["imports"]["modules"]
    except (ValueError, KeyError, TypeError):
        return (
            f"its self-check gave no import audit (exit {run.exit_code}: {why(run.stderr)}), so what "
            "exclude-modules leaves out is not proven unneeded"
        )
    return None


def crashed_on_exclusion(output: str, excluded: Sequence[str]) -> str | None:
    """The one line for a run whose output says it failed importing a module ``excluded`` leaves out
    (a traceback's last line, or a check's error in the report); ``None``: it says no such thing."""
    names = re.findall(r"ModuleNotFoundError: No module named '([\w.]+)'", output)
    wanted = [name for name in names if any(excludes(gone, name) for gone in excluded)]
    return needed_but_excluded(sorted(set(wanted))) if wanted else None


def needed_but_excluded(wanted: Sequence[str]) -> str:
    return (
        f"the app imports {', '.join(wanted)}, which exclude-modules leaves out: take it out of exclude-modules "
        "in [tool.embedding-pipeline] and build again"
    )


def why(stderr: str) -> str:
    """The line of a failed run's stderr that says why: its error (the exception of a traceback),
    not whatever a library printed last (onnxruntime's "Failed to create DXGI factory." on Windows)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^(ERROR\b|[\w.]*(Error|Exception|Interrupt)\b)", line)]
    return (errors or lines or ["no output"])[-1]


def placement_problems(report: SelfCheckReport, dist: Path, target: Target) -> list[str]:
    problems = []
    if report.get("network_connections_attempted"):
        problems.append(f"network connections attempted: {report['network_connections_attempted']}")
    if report.get("processes_started"):
        problems.append(f"processes started: {report['processes_started']}")
    if not target.with_vectors:
        return problems
    folder: dict[str, Any] = dict(report.get("folder") or {})
    if folder.get("kind") != "bundled" or not str(folder.get("path", "")).startswith(str(dist)):
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


def contents_problems(report: SelfCheckReport, report_into: dict[str, Any]) -> list[str]:
    """No HTTP client may be importable inside the artifact, and no C accelerator the build had may be lost."""
    problems = [
        f"HTTP client {name} ships in the artifact (the app makes no request)"
        for name in report.get("http_clients", [])
    ]
    accelerators = report.get("accelerators", {})
    report_into["accelerators"] = accelerators
    for name in STDLIB_ACCELERATORS:
        if importlib.util.find_spec(name) is not None and not accelerators.get(name):
            problems.append(f"the C accelerator {name} is missing: the standard library falls back to slow Python")
    return problems


def golden_problems(
    report: SelfCheckReport, target: Target, report_into: dict[str, Any], probe: ProbeRecord | None
) -> list[str]:
    """The artifact's vectors against the source runtime's, computed here: fp32 at 0.9999; int8 at the
    canary's calibrated floor (int8 kernels differ between CPUs, and verify may not run the
    artifact's int8 on the CPU it computes its own with: an emulated one, say)."""
    vectors = report.get("vectors") or {}
    problems = [f"no {v} vectors in the self-check" for v in target.pin.variants if v not in vectors]
    cosines: dict[str, float] = {}
    for variant, values in vectors.items():
        golden = EmbeddingService(
            profile_contract(target.config, target.pin.profile_id),
            roots=[ModelRoot(target.config.output_root, "source")],
            env={},
            variant=variant,
        ).embed_documents(list(SELF_CHECK_TEXTS))
        cosine = float(row_cosines(np.array(values, dtype=np.float32), golden).min())
        cosines[variant] = round(cosine, 6)
        floor = GOLDEN_MIN_COSINE if variant == "fp32" or probe is None else probe.int8_floor
        if cosine < floor:
            problems.append(
                f"{variant} vectors differ from the source runtime's (min cosine {cosine:.4f} < {floor:.4f})"
            )
    report_into["golden_min_cosine"] = cosines
    return problems


def agreement_problems(report: SelfCheckReport, target: Target, report_into: dict[str, Any]) -> list[str]:
    vectors = report.get("vectors") or {}
    if not {"fp32", "int8"} <= set(vectors):
        return []
    cosines = row_cosines(np.array(vectors["int8"], dtype=np.float32), np.array(vectors["fp32"], dtype=np.float32))
    low, mean = float(cosines.min()), float(cosines.mean())
    report_into["int8_vs_fp32"] = {"min_cosine": round(low, 6), "mean_cosine": round(mean, 6)}
    floor = target.config.int8_min_cosine
    if low < floor:
        return [f"int8 agrees with fp32 at min cosine {low:.3f} (mean {mean:.3f}), below the floor {floor}: "
                "the quantized model computes garbage"]  # fmt: skip
    return []


def token_count_problems(report: SelfCheckReport, target: Target) -> list[str]:
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
        raise RuntimeError(f"counting tokens from {target.config.tiktoken_cache} failed: {why(result.stderr)}")
    return {str(name): list(counts) for name, counts in json.loads(result.stdout).items()}


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
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
