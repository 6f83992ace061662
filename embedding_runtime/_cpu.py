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
  ``sysctlbyname`` from libSystem (``ctypes``);
- on ARM64, every core's part (big.LITTLE chips mix them), which an ARM64 block-list
  row names: Linux's ``/proc/cpuinfo`` blocks or ``/sys/.../regs/identification/midr_el1``;
  the registry's ``CP 4000`` value (MIDR_EL1) of every ``CentralProcessor\\N`` key on
  Windows; ``hw.cpufamily`` on macOS, which shows programs no MIDR. Linux ARM64
  features come from the auxiliary vector (``getauxval(AT_HWCAP)``, ``ctypes``),
  which is exact under emulation too, where ``/proc/cpuinfo`` may be the host's.

A source that describes another architecture than the interpreter's own (qemu-user
7.2 shows the x86 host's ``/proc/cpuinfo`` to an arm64 process; x64 Python under
Windows's or macOS's emulation reads an ARM machine's registry or sysctl) is
ignored, and ``CpuFacts.ignored`` says why: the code that runs is the
interpreter's architecture.

Reading and parsing are separate: the parsers take the raw values each OS gives,
so every OS's branch is tested on real strings on any OS.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
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
    parts: frozenset[str] = frozenset()  # ARM64: every core's part, "0x41:0xd0c" (see ``part_key``)
    ignored: tuple[str, ...] = field(default=())  # sources left out, each with the reason

    def to_json(self) -> dict[str, object]:
        return {
            "arch": self.arch,
            "features": sorted(self.features),
            "vendor": self.vendor,
            "family": self.family,
            "model": self.model,
            "model_name": self.model_name,
            "parts": sorted(self.parts),
            "sources": list(self.sources),
            "ignored": list(self.ignored),
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
    parts: frozenset[str] = frozenset()
    arch: str = ""  # the architecture the source describes ("x86_64", "arm64"), "" when it does not say
    ignored: tuple[str, ...] = ()  # what a reader left out, with the reason

    def contradiction(self, arch: str) -> str:
        """Why this identity is not ``arch``'s (the interpreter's), or "" when it does not contradict it."""
        if not (self.arch and arch and self.arch != arch):
            return ""
        what = f" ({self.model_name or self.vendor})" if self.model_name or self.vendor else ""
        return (
            f"{self.source} describes an {self.arch} CPU{what}, but this interpreter runs {arch} code"
            " (an emulator shows its host's): ignored"
        )


_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64"}
# /proc/cpuinfo flag names -> numpy feature names, for CPUs numpy's table predates.
_PROC_FLAGS = {"avx_vnni": "AVXVNNI", "avx512_vnni": "AVX512VNNI", "avx2": "AVX2", "asimddp": "ASIMDDP"}

# Windows: the first processor's description in the registry (no process, no environment).
WINDOWS_CPU_KEY = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
WINDOWS_CPU_VALUES = ("VendorIdentifier", "Identifier", "ProcessorNameString")
WINDOWS_CPUS_KEY = r"HARDWARE\DESCRIPTION\System\CentralProcessor"
# ARM64 Windows writes each core's system registers as "CP <op0 op1 CRn CRm op2>" REG_QWORD values:
# "CP 4000" is MIDR_EL1 (op0=3 encoded as 4, the rest 0), as LLVM's and pytorch/cpuinfo's readers use it.
WINDOWS_MIDR_VALUE = "CP 4000"
# kernel32's IsProcessorFeaturePresent: the ARM64 dot-product instructions (ARMv8.2 DP).
PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE = 43
# "Intel64 Family 6 Model 63 Stepping 2", "AMD64 Family 25 Model 1 Stepping 1"; ARM ones give the model in hex.
_WINDOWS_IDENTIFIER = re.compile(r"^(?P<arch>.+?) Family (?P<family>\d+) Model (?P<model>[0-9A-Fa-f]+)\b")

# macOS: sysctlbyname names, as text or as a little-endian integer.
SYSCTL_TEXT = ("machdep.cpu.vendor", "machdep.cpu.brand_string")
SYSCTL_NUMBERS = ("machdep.cpu.family", "machdep.cpu.model", "hw.optional.arm.FEAT_DotProd", "hw.cpufamily")
# Apple's MIDR implementer: its cores are named by hw.cpufamily, one value per core pair
# (0x1b588bb3 Firestorm/Icestorm: M1; 0xda33d83d Blizzard/Avalanche: M2; mach/machine.h).
APPLE_IMPLEMENTER = 0x61
_SYSCTL_FEATURES = {"hw.optional.arm.FEAT_DotProd": "ASIMDDP"}


def detect() -> CpuFacts:
    """The CPU facts of this machine (the service calls this once per load)."""
    machine = _interpreter_machine()
    return cpu_facts(machine, _numpy_features(), _read_identity(sys.platform, normal_arch(machine)))


def normal_arch(machine: str) -> str:
    """``x86_64`` or ``arm64`` for the names OSes and interpreters use ("AMD64", "aarch64"), else lower case."""
    return _ARCH_ALIASES.get(machine.lower(), machine.lower())


def cpu_facts(machine: str, numpy_features: Mapping[str, bool], identity: CpuIdentity) -> CpuFacts:
    """Combine what each source said into the facts the variant choice reads.

    An identity that describes another architecture than ``machine`` (the interpreter's) is
    left out, and ``ignored`` says so: the variant is chosen for the code that runs.
    """
    arch = normal_arch(machine)
    ignored = identity.ignored
    if reason := identity.contradiction(arch):
        ignored, identity = (*ignored, reason), CpuIdentity()
    features = {name.upper() for name, present in numpy_features.items() if present} | identity.features
    sources = (["numpy"] if numpy_features else []) + ([identity.source] if identity.source else [])
    return CpuFacts(
        arch=arch,
        features=frozenset(features),
        vendor=identity.vendor,
        family=identity.family,
        model=identity.model,
        model_name=identity.model_name,
        sources=tuple(sources),
        parts=identity.parts,
        ignored=ignored,
    )


def part_key(implementer: int, part: int) -> str:
    """How facts and block-list rows name an ARM64 core: MIDR_EL1's implementer and primary part
    number, ``"0x41:0xd0c"`` (Arm's Neoverse-N1, in Graviton 2 and Ampere Altra alike). On macOS,
    which shows programs no MIDR, Apple's (0x61) part is ``hw.cpufamily``: ``"0x61:0x1b588bb3"``."""
    return f"0x{implementer:02x}:0x{part:03x}"


def part_from_midr(midr: int) -> str:
    """The part key of a MIDR_EL1 value (implementer bits 31-24, part number bits 15-4)."""
    return part_key(midr >> 24 & 0xFF, midr >> 4 & 0xFFF)


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


def _read_identity(system: str, arch: str) -> CpuIdentity:
    try:
        if system == "win32":
            return identity_from_windows(read_windows())
        if system == "darwin":
            return identity_from_sysctl(read_sysctl())
        # MIDR_EL1 and the auxiliary vector's arm64 words mean nothing to an x86 process: not read there.
        arm64 = arch == "arm64"
        cpuinfo, midrs = read_linux(with_midrs=arm64)
        return identity_from_linux(cpuinfo, midrs, read_auxv() if arm64 else None)
    except (OSError, ValueError, AttributeError):  # a locked-down registry, a missing symbol: numpy still answers
        return CpuIdentity()


# -- Linux --------------------------------------------------------------------------

# getauxval's types (elf.h), and the name of each arm64 AT_HWCAP / AT_HWCAP2 bit in bit order
# (arch/arm64/include/uapi/asm/hwcap.h; /proc/cpuinfo's Features spells them so).
AT_HWCAP, AT_HWCAP2 = 16, 26
ARM64_HWCAP_NAMES = (
    "fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "fphp", "asimdhp", "cpuid",
    "asimdrdm", "jscvt", "fcma", "lrcpc", "dcpop", "sha3", "sm3", "sm4", "asimddp", "sha512", "sve", "asimdfhm",
    "dit", "uscat", "ilrcpc", "flagm", "ssbs", "sb", "paca", "pacg",
)  # fmt: skip
ARM64_HWCAP2_NAMES = (
    "dcpodp", "sve2", "sveaes", "svepmull", "svebitperm", "svesha3", "svesm4", "flagm2", "frint", "svei8mm",
    "svef32mm", "svef64mm", "svebf16", "i8mm", "bf16", "dgh", "rng", "bti", "mte", "ecv", "afp", "rpres", "mte3",
    "sme", "smei16i64", "smef64f64", "smei8i32", "smef16f32", "smeb16f32", "smef32f32", "smefa64", "wfxt", "ebf16",
    "sveebf16",
)  # fmt: skip
# The ones the variant choice and doctor read, as numpy names them.
_AUXV_FEATURES = {
    "asimd": "ASIMD", "asimddp": "ASIMDDP", "sve": "SVE", "asimdfhm": "ASIMDFHM", "sve2": "SVE2",
    "i8mm": "I8MM", "bf16": "BF16",
}  # fmt: skip
# MIDR_EL1 implementers and parts (arch/arm64/include/asm/cputype.h): names for doctor only;
# the block list matches the numbers.
ARM_IMPLEMENTERS = {
    0x41: "ARM", 0x42: "Broadcom", 0x43: "Cavium", 0x46: "Fujitsu", 0x48: "HiSilicon", 0x4E: "NVIDIA",
    0x50: "APM", 0x51: "Qualcomm", 0x61: "Apple", 0x6D: "Microsoft", 0xC0: "Ampere",
}  # fmt: skip
ARM_PART_NAMES = {
    "0x41:0xd03": "Cortex-A53", "0x41:0xd04": "Cortex-A35", "0x41:0xd05": "Cortex-A55",
    "0x41:0xd07": "Cortex-A57", "0x41:0xd08": "Cortex-A72", "0x41:0xd09": "Cortex-A73",
    "0x41:0xd0a": "Cortex-A75", "0x41:0xd0b": "Cortex-A76", "0x41:0xd0c": "Neoverse-N1",
    "0x41:0xd0d": "Cortex-A77", "0x41:0xd40": "Neoverse-V1", "0x41:0xd41": "Cortex-A78",
    "0x41:0xd44": "Cortex-X1", "0x41:0xd46": "Cortex-A510", "0x41:0xd47": "Cortex-A710",
    "0x41:0xd48": "Cortex-X2", "0x41:0xd49": "Neoverse-N2", "0x41:0xd4d": "Cortex-A715",
    "0x41:0xd4e": "Cortex-X3", "0x41:0xd4f": "Neoverse-V2", "0x41:0xd80": "Cortex-A520",
    "0x41:0xd81": "Cortex-A720", "0x41:0xd82": "Cortex-X4", "0x41:0xd84": "Neoverse-V3",
    "0x41:0xd8e": "Neoverse-N3", "0xc0:0xac3": "AmpereOne",
}  # fmt: skip
_MIDR_FILES = "sys/devices/system/cpu/cpu*/regs/identification/midr_el1"


def read_linux(root: Path = Path("/"), *, with_midrs: bool = True) -> tuple[str, dict[str, str]]:
    """``/proc/cpuinfo`` and (``with_midrs``) every core's ``midr_el1`` (ARM64 kernels since 4.7) under
    ``root``.

    Either may be missing (x86 has no MIDR; a container may hide sysfs): empty then.
    """
    try:
        cpuinfo = (root / "proc" / "cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        cpuinfo = ""
    midrs: dict[str, str] = {}
    for path in sorted(root.glob(_MIDR_FILES)) if with_midrs else ():
        try:
            midrs[path.parents[2].name] = path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:  # a core gone offline between the listing and the read
            continue
    return cpuinfo, midrs


def read_auxv(getauxval: Callable[[int], int] | None = None) -> tuple[int, int]:
    """``AT_HWCAP`` and ``AT_HWCAP2`` from the auxiliary vector: what the kernel (or qemu-user)
    says this process may execute. ``getauxval`` defaults to libc's, through ctypes."""
    if getauxval is None:
        import ctypes

        function = ctypes.CDLL(None).getauxval
        function.restype, function.argtypes = ctypes.c_ulong, [ctypes.c_ulong]
        getauxval = function
    return int(getauxval(AT_HWCAP)), int(getauxval(AT_HWCAP2))


def auxv_names(hwcap: int, hwcap2: int) -> list[str]:
    """Every arm64 feature the two words set, as the kernel names them."""
    return [name for bit, name in enumerate(ARM64_HWCAP_NAMES) if hwcap >> bit & 1] + [
        name for bit, name in enumerate(ARM64_HWCAP2_NAMES) if hwcap2 >> bit & 1
    ]


def features_from_auxv(hwcap: int, hwcap2: int) -> frozenset[str]:
    """The arm64 features the variant choice and doctor read, from the two words."""
    return frozenset(_AUXV_FEATURES[name] for name in auxv_names(hwcap, hwcap2) if name in _AUXV_FEATURES)


def _cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = [{}]
    for line in text.splitlines():
        if not line.strip():
            if blocks[-1]:
                blocks.append({})
            continue
        key, _, value = line.partition(":")
        blocks[-1].setdefault(key.strip().lower(), value.strip())
    return [block for block in blocks if block]


def identity_from_cpuinfo(text: str) -> CpuIdentity:
    """What /proc/cpuinfo says: x86 identity from the first block (``vendor_id``, ``flags``), or an
    ARM64 one from every block (``CPU implementer``, ``CPU part``, ``Features``)."""
    blocks = _cpuinfo_blocks(text)
    if not blocks:
        return CpuIdentity()
    info = blocks[0]
    flags = info.get("flags", "").split() + info.get("features", "").split()
    features = frozenset(_PROC_FLAGS[f] for f in flags if f in _PROC_FLAGS)
    parts = frozenset(
        part_key(implementer, part)
        for block in blocks
        if (implementer := _int(block.get("cpu implementer"))) is not None
        and (part := _int(block.get("cpu part"))) is not None
    )
    if parts or (info.get("features") and "vendor_id" not in info):
        return _arm64_identity(parts, features, "/proc/cpuinfo")
    arch = "x86_64" if "vendor_id" in info or "flags" in info else ""
    return CpuIdentity(
        vendor=info.get("vendor_id", ""),
        family=_int(info.get("cpu family")),
        model=_int(info.get("model")),
        model_name=info.get("model name", ""),
        features=features,
        source="/proc/cpuinfo",
        arch=arch,
    )


def identity_from_linux(cpuinfo: str, midrs: Mapping[str, str], auxv: tuple[int, int] | None) -> CpuIdentity:
    """Linux's identity: /proc/cpuinfo's, with every core's part also from sysfs (``midrs``, from
    ``read_linux``) and, on ARM64, the features from the auxiliary vector (``auxv``, from
    ``read_auxv``) in place of /proc/cpuinfo's: an emulator may show the host's file, never its
    auxiliary vector."""
    identity = identity_from_cpuinfo(cpuinfo)
    sysfs_parts = frozenset(part_from_midr(midr) for text in midrs.values() if (midr := _int(text)) is not None)
    if auxv is None and not sysfs_parts:
        return identity
    if identity.arch == "x86_64":  # an x86 file beside ARM64 facts: the file is not this process's CPU
        if auxv is None:
            return identity
        arm64 = _arm64_identity(sysfs_parts, features_from_auxv(*auxv), "auxv")
        return dataclasses.replace(arm64, ignored=(identity.contradiction("arm64"),))
    features = features_from_auxv(*auxv) if auxv is not None else identity.features
    sources = "+".join(s for s in (identity.source, "sysfs" if sysfs_parts else "", "auxv" if auxv else "") if s)
    return _arm64_identity(identity.parts | sysfs_parts, features, sources)


def _arm64_identity(parts: frozenset[str], features: frozenset[str], source: str) -> CpuIdentity:
    implementers = sorted({int(part.split(":")[0], 16) for part in parts})
    vendor = " + ".join(ARM_IMPLEMENTERS.get(i, f"0x{i:02x}") for i in implementers if i)
    names = [ARM_PART_NAMES.get(part, part) for part in sorted(parts)]
    return CpuIdentity(
        vendor=vendor,
        model_name=" + ".join(dict.fromkeys(names)),
        features=features,
        source=source,
        parts=parts,
        arch="arm64",
    )


# -- Windows ------------------------------------------------------------------------


def read_windows(winreg: Any = None, kernel32: Any = None) -> dict[str, Any]:
    """The registry's description of the first CPU, every core's MIDR_EL1 (ARM64: the ``CP 4000``
    value of each ``CentralProcessor\\N`` key, as ``"CP 4000"``: a list), and kernel32's
    dot-product feature bit (ARM64).

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
    midrs: list[int] = []
    with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, WINDOWS_CPUS_KEY) as cpus:
        for index in itertools.count():
            try:
                core = winreg.EnumKey(cpus, index)
            except OSError:  # ERROR_NO_MORE_ITEMS
                break
            try:
                with winreg.OpenKey(cpus, core) as key:
                    midrs.append(int(winreg.QueryValueEx(key, WINDOWS_MIDR_VALUE)[0]))
            except (OSError, TypeError, ValueError):  # x86 writes no MIDR
                continue
    values[WINDOWS_MIDR_VALUE] = midrs
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
    arm = identifier.upper().startswith("ARM")
    return CpuIdentity(
        vendor=str(values.get("VendorIdentifier", "")).strip(),
        family=family,
        model=model,
        model_name=" ".join(str(values.get("ProcessorNameString", "")).split()),
        features=frozenset({"ASIMDDP"} if dot_product else ()),
        source="registry" if identifier or values.get("VendorIdentifier") else "",
        parts=frozenset(part_from_midr(midr) for midr in values.get(WINDOWS_MIDR_VALUE, ()) if midr),
        arch="arm64" if arm else "x86_64" if re.match(r"(Intel64|AMD64|EM64T|x86)\b", identifier) else "",
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
    brand = " ".join(text.get("machdep.cpu.brand_string", "").split())
    # Apple silicon has the hw.optional.arm names and an "Apple ..." brand; an Intel Mac a vendor.
    arm = brand.startswith("Apple") or "hw.optional.arm.FEAT_DotProd" in numbers
    family = numbers.get("hw.cpufamily")
    return CpuIdentity(
        vendor=text.get("machdep.cpu.vendor", "Apple" if arm else ""),
        family=numbers.get("machdep.cpu.family"),
        model=numbers.get("machdep.cpu.model"),
        model_name=brand,
        features=frozenset(feature for name, feature in _SYSCTL_FEATURES.items() if numbers.get(name)),
        source="sysctl" if values else "",
        parts=frozenset({part_key(APPLE_IMPLEMENTER, family)} if arm and family else ()),
        arch="arm64" if arm else "x86_64" if "machdep.cpu.vendor" in text else "",
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value, 0) if value else None
    except ValueError:
        return None
