"""Which quantization to prefer on this CPU, and why.

int8 needs fast integer dot products (VNNI, or at least AVX2, on x86; the
dot-product extension on ARM64); fp32 runs everywhere. Some CPUs are known to
crash in onnxruntime's int8 kernels and are blocked from int8.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from embedding_runtime._cpu import CpuFacts
from embedding_runtime._settings import FORCE_INT8_ENV, VARIANT_ENV, switch

__all__ = [
    "FORCE_INT8_ENV",
    "INT8_BLOCK_LIST",
    "VARIANT_ENV",
    "BlockedArmPart",
    "BlockedCpu",
    "VariantDecision",
    "decide_variant",
]


@dataclass(frozen=True)
class BlockedCpu:
    """An x86 CPU: vendor, family and model as CPUID gives them, and a piece of its name."""

    vendor: str
    family: int
    model: int
    name_contains: str
    why: str


_PART_KEY = re.compile(r"0x[0-9a-f]{2}:0x[0-9a-f]{3}|0x61:0x[0-9a-f]{8}")  # MIDR's, or macOS's hw.cpufamily


@dataclass(frozen=True)
class BlockedArmPart:
    """An ARM64 core by its part, ``part_key(implementer, part)`` ("0x41:0xd0c"), never by product:
    Graviton 2 and Ampere Altra are both Neoverse-N1. A chip with the part among its cores (big.LITTLE
    mixes them) is blocked, since any thread may run there. On macOS the part is ``hw.cpufamily``."""

    part: str
    why: str

    def __post_init__(self) -> None:
        # A row spelt otherwise than the facts spell parts would never match: refused when written.
        if not _PART_KEY.fullmatch(self.part):
            raise ValueError(f"BlockedArmPart({self.part!r}): write the part as part_key does, '0x41:0xd0c'")


# Data, not code: add a row when the field reports another CPU crashing in int8 kernels.
INT8_BLOCK_LIST: tuple[BlockedCpu | BlockedArmPart, ...] = (
    BlockedCpu("GenuineIntel", 6, 63, "E5-2666 v3", "SIGILL in onnxruntime int8 kernels (Haswell-EP, EC2 c4)"),
)


@dataclass(frozen=True)
class VariantDecision:
    preferred: str
    int8_allowed: bool
    reason: str
    blocked_by: str = ""

    def to_json(self) -> dict[str, object]:
        return {"preferred": self.preferred, "int8_allowed": self.int8_allowed, "reason": self.reason}


def decide_variant(
    cpu: CpuFacts,
    env: Mapping[str, str],
    requested: str | None = None,
    block_list: Sequence[BlockedCpu | BlockedArmPart] = INT8_BLOCK_LIST,
) -> VariantDecision:
    """The preferred variant for ``cpu``, with the reason: ``requested`` (the caller's ``variant=``)
    when given, else the environment's ``EMBEDDING_RUNTIME_VARIANT``; ``auto`` lets the CPU choose."""
    blocked = _blocked(cpu, block_list)
    forced_int8 = switch(env, FORCE_INT8_ENV)
    int8_allowed = blocked is None or forced_int8
    source = "variant" if requested is not None else VARIANT_ENV
    requested = (env.get(VARIANT_ENV, "auto") if requested is None else requested).strip().lower() or "auto"
    if requested == "fp32":
        return VariantDecision("fp32", int8_allowed, f"{source}=fp32")
    if requested == "int8":
        if not int8_allowed and blocked is not None:
            return VariantDecision("fp32", False, f"{source}=int8 but {blocked.why}", blocked.why)
        return VariantDecision("int8", True, f"{source}=int8")
    # A value that is none of the three is said, not silently taken for "auto".
    ignored = f"{source}={requested[:20]!r} is not fp32, int8 or auto, so ignored; " if requested != "auto" else ""
    if blocked is not None and not forced_int8:
        return VariantDecision("fp32", False, f"{ignored}int8 blocked on this CPU: {blocked.why}", blocked.why)
    if kernel := _int8_kernel(cpu):
        suffix = f" ({FORCE_INT8_ENV}=1 overrides the block list)" if blocked else ""
        return VariantDecision("int8", True, f"{ignored}{cpu.arch} CPU has {kernel}{suffix}")
    return VariantDecision("fp32", int8_allowed, f"{ignored}{cpu.arch} CPU lacks fast int8 dot products")


def _int8_kernel(cpu: CpuFacts) -> str:
    if cpu.arch == "x86_64":
        for feature in ("AVX512VNNI", "AVXVNNI", "AVX2"):
            if feature in cpu.features:
                return feature
    if cpu.arch == "arm64" and "ASIMDDP" in cpu.features:
        return "ASIMDDP (dot product)"
    return ""


def _blocked(cpu: CpuFacts, block_list: Sequence[BlockedCpu | BlockedArmPart]) -> BlockedCpu | BlockedArmPart | None:
    for row in block_list:
        if isinstance(row, BlockedArmPart):
            if row.part in cpu.parts:
                return row
        elif (cpu.vendor, cpu.family, cpu.model) == (row.vendor, row.family, row.model) and (
            row.name_contains in cpu.model_name
        ):
            return row
    return None
