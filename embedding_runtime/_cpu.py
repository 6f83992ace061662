"""CPU facts, read without executing machine code and without child processes.

py-cpuinfo was dropped in the field: on Windows it runs generated CPUID code
(antivirus products flagged it), and it re-executes sys.executable, which in a
frozen app is the app itself. numpy's feature table, /proc/cpuinfo and the
platform module tell enough.
"""

from __future__ import annotations

import importlib
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CpuFacts:
    arch: str  # "x86_64" or "arm64" (normalised), else as reported
    features: frozenset[str]  # upper-case names as numpy spells them (AVX2, AVX512VNNI, ASIMDDP, ...)
    vendor: str = ""
    family: int | None = None
    model: int | None = None
    model_name: str = ""
    sources: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "arch": self.arch,
            "features": sorted(self.features),
            "vendor": self.vendor,
            "family": self.family,
            "model": self.model,
            "model_name": self.model_name,
            "sources": list(self.sources),
        }


_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64"}
# /proc/cpuinfo flag names -> numpy feature names, for CPUs numpy's table predates.
_PROC_FLAGS = {"avx_vnni": "AVXVNNI", "avx512_vnni": "AVX512VNNI", "avx2": "AVX2", "asimddp": "ASIMDDP"}


def detect(
    *,
    machine: str | None = None,
    numpy_features: Mapping[str, bool] | None = None,
    cpuinfo_text: str | None = None,
) -> CpuFacts:
    """The CPU facts of this machine; each argument replaces one source (for tests)."""
    sources: list[str] = []
    arch = _ARCH_ALIASES.get((machine or platform.machine()).lower(), (machine or platform.machine()).lower())
    table = _numpy_features() if numpy_features is None else numpy_features
    features = {name.upper() for name, present in table.items() if present}
    if table:
        sources.append("numpy")
    text = _read_cpuinfo() if cpuinfo_text is None else cpuinfo_text
    info = _parse_cpuinfo(text)
    if text:
        sources.append("/proc/cpuinfo")
        features |= {_PROC_FLAGS[f] for f in info.get("flags", "").split() if f in _PROC_FLAGS}
        features |= {_PROC_FLAGS[f] for f in info.get("features", "").split() if f in _PROC_FLAGS}
    if not info.get("model name") and sys.platform == "win32":
        sources.append("platform")
    return CpuFacts(
        arch=arch,
        features=frozenset(features),
        vendor=info.get("vendor_id", ""),
        family=_int(info.get("cpu family")),
        model=_int(info.get("model")),
        model_name=info.get("model name") or (platform.processor() if cpuinfo_text is None else ""),
        sources=tuple(sources),
    )


def _numpy_features() -> Mapping[str, bool]:
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # numpy 2, numpy 1
        try:
            return dict(importlib.import_module(module).__cpu_features__)
        except (ImportError, AttributeError):
            continue
    return {}


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _parse_cpuinfo(text: str) -> dict[str, str]:
    """The first processor block of /proc/cpuinfo as a dict (keys lower-case)."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip().lower(), value.strip())
    return info


def _int(value: str | None) -> int | None:
    try:
        return int(value, 0) if value else None
    except ValueError:
        return None
