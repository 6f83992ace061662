"""CPU facts, read without executing machine code, without a child process and without the environment.

py-cpuinfo was dropped in the field: on Windows it runs generated CPUID code
(antivirus products flagged it), and it re-executes sys.executable, which in a
frozen app is the app itself. The ``platform`` module is no better: on Windows
with CPython 3.11 ``platform.machine()`` reads only ``PROCESSOR_ARCHITECTURE``
(absent from a stripped environment) and ``uname()`` runs ``cmd /c ver``;
``platform.processor()`` runs ``uname -p`` on Linux and macOS.

So each fact comes from where its OS keeps it, with no process:

- the instruction sets: numpy's feature table (numpy asks the CPU itself), plus
  what the OS adds below;
- the architecture: the interpreter's own build (``sys.version`` on Windows, as
  ``sysconfig.get_platform()`` reads it; ``os.uname()`` elsewhere);
- vendor, family, model and name, which the int8 block list needs: Linux's
  ``/proc/cpuinfo``; on Windows the registry key
  ``HKLM\\HARDWARE\\DESCRIPTION\\System\\CentralProcessor\\0`` (``winreg``); on macOS
  ``sysctlbyname`` from libSystem (``ctypes``).

Reading and parsing are separate: the parsers take the raw values each OS gives,
so every OS's branch is tested on real strings on any OS.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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


@dataclass(frozen=True)
class CpuIdentity:
    """What the OS says about the CPU beyond numpy's table: who made it, which one, and extra features."""

    vendor: str = ""
    family: int | None = None
    model: int | None = None
    model_name: str = ""
    features: frozenset[str] = frozenset()
    source: str = ""


_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64"}
# /proc/cpuinfo flag names -> numpy feature names, for CPUs numpy's table predates.
_PROC_FLAGS = {"avx_vnni": "AVXVNNI", "avx512_vnni": "AVX512VNNI", "avx2": "AVX2", "asimddp": "ASIMDDP"}

# Windows: the first processor's description in the registry (no process, no environment).
WINDOWS_CPU_KEY = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
WINDOWS_CPU_VALUES = ("VendorIdentifier", "Identifier", "ProcessorNameString")
# kernel32's IsProcessorFeaturePresent: the ARM64 dot-product instructions (ARMv8.2 DP).
PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE = 43
# "Intel64 Family 6 Model 63 Stepping 2", "AMD64 Family 25 Model 1 Stepping 1"; ARM ones give the model in hex.
_WINDOWS_IDENTIFIER = re.compile(r"^(?P<arch>.+?) Family (?P<family>\d+) Model (?P<model>[0-9A-Fa-f]+)\b")

# macOS: sysctlbyname names, as text or as a little-endian integer.
SYSCTL_TEXT = ("machdep.cpu.vendor", "machdep.cpu.brand_string")
SYSCTL_NUMBERS = ("machdep.cpu.family", "machdep.cpu.model", "hw.optional.arm.FEAT_DotProd")
_SYSCTL_FEATURES = {"hw.optional.arm.FEAT_DotProd": "ASIMDDP"}


def detect() -> CpuFacts:
    """The CPU facts of this machine (the service calls this once per load)."""
    return cpu_facts(_interpreter_machine(), _numpy_features(), _read_identity(sys.platform))


def cpu_facts(machine: str, numpy_features: Mapping[str, bool], identity: CpuIdentity) -> CpuFacts:
    """Combine what each source said into the facts the variant choice reads."""
    features = {name.upper() for name, present in numpy_features.items() if present} | identity.features
    sources = (["numpy"] if numpy_features else []) + ([identity.source] if identity.source else [])
    return CpuFacts(
        arch=_ARCH_ALIASES.get(machine.lower(), machine.lower()),
        features=frozenset(features),
        vendor=identity.vendor,
        family=identity.family,
        model=identity.model,
        model_name=identity.model_name,
        sources=tuple(sources),
    )


def _interpreter_machine(system: str = sys.platform, version: str = sys.version) -> str:
    """The architecture this interpreter was built for, from the interpreter alone.

    On Windows that is ``sys.version``'s build tag, as ``sysconfig.get_platform()``
    reads it ("[MSC v.1938 64 bit (AMD64)]"): the code onnxruntime runs is this
    build's, whatever the OS emulates. Elsewhere ``os.uname()``, a system call.
    """
    if system == "win32":
        tag = version.lower()
        return "arm64" if "(arm64)" in tag else "amd64" if "amd64" in tag else "x86"
    uname = getattr(os, "uname", None)
    return uname().machine if uname is not None else ""


def _numpy_features() -> Mapping[str, bool]:
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # numpy 2, numpy 1
        try:
            return dict(importlib.import_module(module).__cpu_features__)
        except (ImportError, AttributeError):
            continue
    return {}


def _read_identity(system: str) -> CpuIdentity:
    try:
        if system == "win32":
            return identity_from_windows(read_windows())
        if system == "darwin":
            return identity_from_sysctl(read_sysctl())
        return identity_from_cpuinfo(_read_cpuinfo())
    except (OSError, ValueError, AttributeError):  # a locked-down registry, a missing symbol: numpy still answers
        return CpuIdentity()


# -- Linux --------------------------------------------------------------------------


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def identity_from_cpuinfo(text: str) -> CpuIdentity:
    """The first processor block of /proc/cpuinfo (x86: ``flags``; ARM: ``Features``)."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip().lower(), value.strip())
    if not info:
        return CpuIdentity()
    flags = info.get("flags", "").split() + info.get("features", "").split()
    return CpuIdentity(
        vendor=info.get("vendor_id", ""),
        family=_int(info.get("cpu family")),
        model=_int(info.get("model")),
        model_name=info.get("model name", ""),
        features=frozenset(_PROC_FLAGS[f] for f in flags if f in _PROC_FLAGS),
        source="/proc/cpuinfo",
    )


# -- Windows ------------------------------------------------------------------------


def read_windows(winreg: Any = None, kernel32: Any = None) -> dict[str, Any]:
    """The registry's description of the first CPU, and kernel32's dot-product feature bit (ARM64).

    ``winreg`` and ``kernel32`` default to this Windows's own.
    """
    if winreg is None:
        import winreg
    if kernel32 is None:
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    values: dict[str, Any] = {}
    with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, WINDOWS_CPU_KEY) as key:
        for name in WINDOWS_CPU_VALUES:
            try:
                values[name] = winreg.QueryValueEx(key, name)[0]
            except OSError:  # a value this Windows does not write
                continue
    # 0 on every x86 CPU; on ARM64, whether the ARMv8.2 dot-product instructions are there.
    values["PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE"] = int(
        bool(kernel32.IsProcessorFeaturePresent(PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE))
    )
    return values


def identity_from_windows(values: Mapping[str, Any]) -> CpuIdentity:
    """Vendor, family, model and name from the registry values ``_read_windows`` returns."""
    identifier = str(values.get("Identifier", "")).strip()
    family = model = None
    if match := _WINDOWS_IDENTIFIER.match(identifier):
        family = int(match["family"])
        # x86 identifiers give the model in decimal; ARM ones ("ARMv8 (64-bit) Family 8 Model D4B") in hex.
        model = int(match["model"], 16 if match["arch"].upper().startswith("ARM") else 10)
    dot_product = values.get("PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE") == 1
    return CpuIdentity(
        vendor=str(values.get("VendorIdentifier", "")).strip(),
        family=family,
        model=model,
        model_name=" ".join(str(values.get("ProcessorNameString", "")).split()),
        features=frozenset({"ASIMDDP"} if dot_product else ()),
        source="registry" if identifier or values.get("VendorIdentifier") else "",
    )


# -- macOS --------------------------------------------------------------------------


def read_sysctl(sysctlbyname: Callable[..., int] | None = None) -> dict[str, bytes]:
    """The raw bytes of every ``SYSCTL_*`` name this Mac has (names it lacks are left out).

    ``sysctlbyname`` is libSystem's (through ctypes; ``sysctl`` the command would be a process).
    """
    import ctypes

    if sysctlbyname is None:
        # dlopen finds libSystem in the shared cache even where the file is not on disk (macOS 11+).
        sysctlbyname = ctypes.CDLL("/usr/lib/libSystem.B.dylib", use_errno=True).sysctlbyname
    values: dict[str, bytes] = {}
    for name in (*SYSCTL_TEXT, *SYSCTL_NUMBERS):
        size = ctypes.c_size_t(0)
        if sysctlbyname(name.encode(), None, ctypes.byref(size), None, ctypes.c_size_t(0)) != 0 or not size.value:
            continue
        buffer = ctypes.create_string_buffer(size.value)
        if sysctlbyname(name.encode(), buffer, ctypes.byref(size), None, ctypes.c_size_t(0)) == 0:
            values[name] = buffer.raw[: size.value]
    return values


def identity_from_sysctl(values: Mapping[str, bytes]) -> CpuIdentity:
    """Vendor, family, model, name and extra features from ``read_sysctl``'s raw values."""
    text = {
        name: values[name].split(b"\0", 1)[0].decode("utf-8", "replace").strip()
        for name in SYSCTL_TEXT
        if name in values
    }
    numbers = {name: int.from_bytes(values[name], "little") for name in SYSCTL_NUMBERS if name in values}
    return CpuIdentity(
        vendor=text.get("machdep.cpu.vendor", ""),
        family=numbers.get("machdep.cpu.family"),
        model=numbers.get("machdep.cpu.model"),
        model_name=" ".join(text.get("machdep.cpu.brand_string", "").split()),
        features=frozenset(feature for name, feature in _SYSCTL_FEATURES.items() if numbers.get(name)),
        source="sysctl" if values else "",
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value, 0) if value else None
    except ValueError:
        return None
