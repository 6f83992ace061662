"""The canary's probe record, checked by what it says rather than by its bytes.

verify makes the plan anew, and with it the probe record, on the CPU it runs on.
fp32 vectors move by about 1e-6 between CPUs and int8 kernels differ, so a good
artifact's record need not be byte-identical to verify's. It is held instead to:

- exactly the bytes the runtime's own writer makes of what it holds (nothing else
  hides in the file), readable by the runtime;
- the same profile, probe texts, configured int8 floor and model files (their sha256), exactly;
- fp32 vectors that agree with verify's at cosine 0.9999 (the runtime's own fp32 floor);
- an int8 figure within the measured cross-CPU spread of verify's own: a forged
  lower figure cannot lower the floor the runtime derives from it, nor a forged
  higher one refuse honest int8 on users' CPUs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedding_runtime.build_api import FP32_MIN_COSINE, read_probe_record

# The widest int8 agreement two CPUs gave for one model (a real MiniLM and the fixtures, AVX-512 VNNI,
# AVX2-only and emulated Haswell, arm64): see embedding_runtime._probe.INT8_CPU_MARGIN.
INT8_CROSS_CPU_SPREAD = 0.019


def probe_record_problems(shipped: Path, expected: Path) -> list[str]:
    """``shipped`` (the artifact's record) against ``expected`` (the one verify made here)."""
    record = read_probe_record(shipped)
    mine = read_probe_record(expected)
    if mine is None:
        return ["cannot be checked: the probe record verify made here cannot be read"]
    if record is None:
        return ["is not a probe record the runtime can read"]
    if shipped.read_bytes() != record.to_bytes():
        return ["is not a probe record as the build writes one (other bytes than its content)"]
    problems = []
    if (record.profile_id, record.texts) != (mine.profile_id, mine.texts):
        problems.append("records another profile or other probe texts than the plan")
    if dict(record.sources) != dict(mine.sources):
        problems.append("records other model files than the prepared profile's (their sha256 differ)")
    if record.int8_min_cosine != mine.int8_min_cosine:
        problems.append(f"records the int8 floor {record.int8_min_cosine}, the configuration {mine.int8_min_cosine}")
    if record.fp32.shape != mine.fp32.shape:
        return [*problems, f"records fp32 vectors of shape {record.fp32.shape}, not {mine.fp32.shape}"]
    low = float(_row_cosines(record.fp32, mine.fp32).min())
    if low < FP32_MIN_COSINE:
        problems.append(f"records fp32 vectors that agree with the model's at min cosine {low:.6f} < {FP32_MIN_COSINE}")
    problems += _agreement_problems(record.int8_agreement, mine.int8_agreement)
    return problems


def _agreement_problems(recorded: float | None, here: float | None) -> list[str]:
    if recorded is None or here is None:
        return [] if recorded == here else [f"records the int8 agreement {recorded}, verify found {here}"]
    if abs(recorded - here) > INT8_CROSS_CPU_SPREAD:
        return [
            f"records int8 agreeing with fp32 at {recorded:.4f}, {here:.4f} here: further apart than two CPUs "
            f"compute it ({INT8_CROSS_CPU_SPREAD})"
        ]
    return []


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))
