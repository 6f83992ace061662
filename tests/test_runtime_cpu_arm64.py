"""ARM64 CPU facts on Linux, Windows and macOS, from what each OS gives, on real strings.

Linux: util-linux's lscpu dumps (tests/cpu_dumps, read by the runtime's own reader from a folder laid
out as / is); the auxiliary vector's words as the kernel's uapi hwcap.h numbers them. Windows: the
registry's per-core ``CP 4000`` (MIDR_EL1). macOS: ``hw.cpufamily``. A source that contradicts the
interpreter's architecture (qemu 7.2's x86 /proc/cpuinfo under an arm64 process; x64 Python emulated
on an ARM machine) is ignored with its reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from embedding_runtime import EmbeddingService, ModelRoot
from embedding_runtime._cli import _readable
from embedding_runtime._cpu import (
    ARM64_HWCAP2_NAMES,
    ARM64_HWCAP_NAMES,
    AT_HWCAP,
    AT_HWCAP2,
    CpuIdentity,
    _interpreter_machine,
    auxv_names,
    cpu_facts,
    features_from_auxv,
    identity_from_cpuinfo,
    identity_from_linux,
    identity_from_sysctl,
    part_from_midr,
    part_key,
    read_auxv,
    read_linux,
    read_sysctl,
)
from embedding_runtime._settings import FORCE_INT8_ENV
from embedding_runtime._variant import INT8_BLOCK_LIST, BlockedArmPart, decide_variant
from tests.runtime_fixtures import FIXTURE_PROFILE, write_profile
from tests.simulated_windows import MSVC_ARM64_VERSION, MSVC_X64_VERSION
from tests.test_runtime_platforms import APPLE_M2, SimulatedSysctl, windows_identity

DUMPS = Path(__file__).parent / "cpu_dumps"
BIG_LITTLE = DUMPS / "arm-A510-A710-A715-X3"
EPYC = DUMPS / "x86_64-epyc_7451"
# The 8 cores' parts: Cortex-A510 x3, Cortex-A715 x2, Cortex-A710 x2, Cortex-X3 (kernel cputype.h numbers).
BIG_LITTLE_PARTS = {"0x41:0xd46", "0x41:0xd4d", "0x41:0xd47", "0x41:0xd4e"}
# Arm's Neoverse-N1: Graviton 2 and Ampere Altra alike.
NEOVERSE_N1 = "0x41:0xd0c"


def auxv_words(features: str) -> tuple[int, int]:
    """AT_HWCAP and AT_HWCAP2 as the kernel sets them for a CPU whose Features line is ``features``."""
    names = set(features.split())
    return (
        sum(1 << bit for bit, name in enumerate(ARM64_HWCAP_NAMES) if name in names),
        sum(1 << bit for bit, name in enumerate(ARM64_HWCAP2_NAMES) if name in names),
    )


# What qemu-user 7.2's emulated CPUs put in the auxiliary vector (their Features as qemu 8 prints them).
CORTEX_A53 = auxv_words("fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid")
NEOVERSE_N1_AUXV = auxv_words(
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs"
)


def big_little_features() -> str:
    return next(
        line for line in (BIG_LITTLE / "proc" / "cpuinfo").read_text().splitlines() if line.startswith("Features")
    )


# -- Linux ------------------------------------------------------------------------------------------


def test_a_big_little_chip_names_every_core_part_from_proc_cpuinfo_and_from_sysfs() -> None:
    cpuinfo, midrs = read_linux(BIG_LITTLE)
    assert len(midrs) == 8 and cpuinfo.count("processor") == 8
    assert read_linux(BIG_LITTLE, with_midrs=False) == (cpuinfo, {}), "an x86 process reads no sysfs MIDR"
    from_file = identity_from_cpuinfo(cpuinfo)
    from_sysfs = identity_from_linux("", midrs, None)
    assert from_file.parts == from_sysfs.parts == BIG_LITTLE_PARTS
    assert from_file.arch == from_sysfs.arch == "arm64"
    assert from_file.model_name == "Cortex-A510 + Cortex-A710 + Cortex-A715 + Cortex-X3"
    assert from_file.vendor == "ARM" and "ASIMDDP" in from_file.features
    assert from_sysfs.source == "sysfs"
    both = identity_from_linux(cpuinfo, midrs, None)
    assert both.parts == BIG_LITTLE_PARTS and both.source == "/proc/cpuinfo+sysfs"


def test_midr_fields_are_the_architecture_manuals() -> None:
    # cpu7's midr_el1 in the dump: implementer 0x41, variant 1, architecture 0xf, part 0xd4e (Cortex-X3), revision 0.
    assert (
        BIG_LITTLE / "sys/devices/system/cpu/cpu7/regs/identification/midr_el1"
    ).read_text().strip() == "0x00000000411fd4e0"
    assert part_from_midr(0x411FD4E0) == "0x41:0xd4e"
    assert part_from_midr(0x413FD0C1) == NEOVERSE_N1  # Graviton 2's r3p1


def test_the_auxiliary_vector_decodes_as_the_kernel_numbers_it() -> None:
    """The kernel's own bit numbers (uapi asm/hwcap.h), and the real dump's Features line as AT_HWCAP
    words: they decode to the names the file prints, in its order."""
    assert features_from_auxv(1 << 1, 0) == {"ASIMD"}  # HWCAP_ASIMD
    assert features_from_auxv(1 << 20, 0) == {"ASIMDDP"}  # HWCAP_ASIMDDP
    assert features_from_auxv(1 << 22 | 1 << 23, 0) == {"SVE", "ASIMDFHM"}  # HWCAP_SVE, HWCAP_ASIMDFHM
    assert features_from_auxv(0, 1 << 1 | 1 << 13 | 1 << 14) == {"SVE2", "I8MM", "BF16"}  # HWCAP2_SVE2, _I8MM, _BF16
    line = big_little_features().split(":", 1)[1]
    hwcap, hwcap2 = auxv_words(line)
    assert auxv_names(hwcap, hwcap2) == line.split(), "every name the kernel printed, in the kernel's order"
    assert features_from_auxv(hwcap, hwcap2) == {"ASIMD", "ASIMDDP", "ASIMDFHM", "I8MM", "BF16"}
    assert features_from_auxv(*CORTEX_A53) == {"ASIMD"}
    assert features_from_auxv(*NEOVERSE_N1_AUXV) == {"ASIMD", "ASIMDDP"}


def test_this_process_auxiliary_vector_is_read_through_libc() -> None:
    """getauxval through ctypes, on this machine (x86 or arm64 Linux alike give a non-zero AT_HWCAP)."""
    hwcap, hwcap2 = read_auxv()
    assert hwcap > 0 and hwcap2 >= 0
    calls: list[int] = []

    def getauxval(kind: int) -> int:
        calls.append(kind)
        return 7

    assert read_auxv(getauxval) == (7, 7)
    assert calls == [AT_HWCAP, AT_HWCAP2]


@pytest.mark.parametrize(("auxv", "variant"), [(CORTEX_A53, "fp32"), (NEOVERSE_N1_AUXV, "int8")])
def test_arm64_linux_features_come_from_the_auxiliary_vector(auxv: tuple[int, int], variant: str) -> None:
    cpuinfo, midrs = read_linux(BIG_LITTLE)  # its Features line has asimddp; the vector decides
    facts = cpu_facts("aarch64", {"NEON": True, "ASIMD": True}, identity_from_linux(cpuinfo, midrs, auxv))
    assert facts.arch == "arm64" and facts.parts == BIG_LITTLE_PARTS
    assert decide_variant(facts, {}).preferred == variant
    assert "auxv" in facts.sources[-1]


# -- contradictions -----------------------------------------------------------------------------------


def test_qemu_s_x86_proc_cpuinfo_is_ignored_by_an_arm64_process_with_the_reason() -> None:
    """Debian 12's qemu-user shows an arm64 process the x86 host's /proc/cpuinfo (no midr_el1 in sysfs)."""
    host_cpuinfo, midrs = read_linux(EPYC)
    assert midrs == {} and identity_from_cpuinfo(host_cpuinfo).arch == "x86_64"
    facts = cpu_facts("aarch64", {"ASIMD": True}, identity_from_linux(host_cpuinfo, midrs, NEOVERSE_N1_AUXV))
    assert facts.arch == "arm64"
    assert facts.features == {"ASIMD", "ASIMDDP"}, "no x86 flag merged into an arm64 process's facts"
    assert (facts.vendor, facts.family, facts.model, facts.model_name) == ("", None, None, "")
    (reason,) = facts.ignored
    assert reason.startswith("/proc/cpuinfo describes an x86_64 CPU (AMD EPYC 7451 24-Core Processor)")
    assert "runs arm64 code" in reason
    assert decide_variant(facts, {}).reason == "arm64 CPU has ASIMDDP (dot product)"
    without_dp = cpu_facts("aarch64", {"ASIMD": True}, identity_from_linux(host_cpuinfo, midrs, CORTEX_A53))
    assert decide_variant(without_dp, {}).preferred == "fp32"


def test_doctor_says_what_was_ignored_and_why(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    host_cpuinfo, midrs = read_linux(EPYC)
    facts = cpu_facts("aarch64", {"ASIMD": True}, identity_from_linux(host_cpuinfo, midrs, NEOVERSE_N1_AUXV))
    write_profile(tmp_path / "models", repo_files_a)
    service = EmbeddingService(FIXTURE_PROFILE, roots=[ModelRoot(tmp_path / "models", "bundled")], env={}, cpu=facts)
    service.load()
    report = {"runtime_version": "test", **service.explain(), "tiktoken": None}
    assert report["cpu"]["ignored"] == list(facts.ignored)
    lines = _readable(report).splitlines()
    assert any(line.startswith("cpu") and "AMD EPYC 7451" in line and line.endswith("ignored") for line in lines)


def test_an_x86_interpreter_ignores_an_arm_proc_cpuinfo() -> None:
    """x86 emulated on arm64 (FEX, box64): the file is the ARM host's; the code that runs is x86."""
    cpuinfo, midrs = read_linux(BIG_LITTLE)
    facts = cpu_facts("x86_64", {"AVX2": True}, identity_from_linux(cpuinfo, midrs, None))
    assert facts.parts == frozenset() and "ASIMDDP" not in facts.features
    assert facts.ignored and "describes an arm64 CPU" in facts.ignored[0]
    assert decide_variant(facts, {}).reason == "x86_64 CPU has AVX2"


def test_a_source_that_agrees_is_never_ignored() -> None:
    host_cpuinfo, _ = read_linux(EPYC)
    assert cpu_facts("x86_64", {"AVX2": True}, identity_from_cpuinfo(host_cpuinfo)).ignored == ()
    assert cpu_facts("arm64", {}, CpuIdentity()).ignored == ()


# -- the block list names a part, on each OS ----------------------------------------------------------

ROWS = (*INT8_BLOCK_LIST, BlockedArmPart("0x41:0xd4e", "SIGILL in int8 kernels (Cortex-X3)"))


def test_a_big_little_chip_is_blocked_when_any_core_is() -> None:
    cpuinfo, midrs = read_linux(BIG_LITTLE)
    facts = cpu_facts("aarch64", {}, identity_from_linux(cpuinfo, midrs, NEOVERSE_N1_AUXV))
    decision = decide_variant(facts, {}, block_list=ROWS)
    assert (decision.preferred, decision.int8_allowed) == ("fp32", False)
    assert "Cortex-X3" in decision.reason
    assert decide_variant(facts, {}).preferred == "int8", "the shipped list blocks no ARM part"
    assert decide_variant(facts, {FORCE_INT8_ENV: "1"}, block_list=ROWS).preferred == "int8"


@pytest.mark.parametrize("part", ["0x41:0xD0C", "0x41:0x0d0c", "41:d0c", "Neoverse-N1", "0x61:0x1b588bb"])
def test_a_row_spelt_otherwise_than_the_facts_is_refused_when_written(part: str) -> None:
    with pytest.raises(ValueError, match="write the part as part_key does"):
        BlockedArmPart(part, "never matches")
    assert BlockedArmPart("0x61:0x1b588bb3", "M1").part == part_key(0x61, 0x1B588BB3)


def test_a_row_names_a_part_not_a_product() -> None:
    """Graviton 2 and Ampere Altra are both Neoverse-N1: one row blocks both, and nothing else."""
    core = "processor\t: {n}\nFeatures\t: fp asimd asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
    n1 = "CPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n"
    graviton2 = "".join(core.format(n=n) + n1 for n in range(2))  # an EC2 c6g.large
    altra = "".join(core.format(n=n) + n1 for n in range(80))  # an Ampere Altra Q80-30
    rows = (BlockedArmPart(NEOVERSE_N1, "SIGILL (Neoverse-N1)"),)
    for cpuinfo in (graviton2, altra):
        facts = cpu_facts("aarch64", {}, identity_from_linux(cpuinfo, {}, NEOVERSE_N1_AUXV))
        assert facts.model_name == "Neoverse-N1"
        assert decide_variant(facts, {}, block_list=rows).preferred == "fp32"
    other = cpu_facts("aarch64", {}, identity_from_linux(*read_linux(BIG_LITTLE), NEOVERSE_N1_AUXV))
    assert decide_variant(other, {}, block_list=rows).preferred == "int8"


# Windows Dev Kit 2023 (Snapdragon 8cx Gen 3): Cortex-A78 x4 and Cortex-X1 x4; "CP 4000" per core.
DEV_KIT_MIDRS = [0x410FD411] * 4 + [0x411FD440] * 4


def test_windows_arm64_parts_come_from_every_core_cp_4000() -> None:
    identity = windows_identity("snapdragon", dot_product=True, midrs=DEV_KIT_MIDRS)
    assert identity.parts == {"0x41:0xd41", "0x41:0xd44"} and identity.arch == "arm64"
    facts = cpu_facts(_interpreter_machine("win32", MSVC_ARM64_VERSION), {}, identity)
    assert decide_variant(facts, {}).preferred == "int8"
    rows = (BlockedArmPart("0x41:0xd44", "SIGILL (Cortex-X1)"),)
    assert decide_variant(facts, {}, block_list=rows).preferred == "fp32"
    assert windows_identity("ec2-m6i").parts == frozenset(), "x86 Windows writes no MIDR"


def test_x64_python_emulated_on_windows_arm_ignores_the_arm_registry() -> None:
    identity = windows_identity("snapdragon", dot_product=True, midrs=DEV_KIT_MIDRS)
    facts = cpu_facts(_interpreter_machine("win32", MSVC_X64_VERSION), {"AVX2": False, "SSE42": True}, identity)
    assert facts.arch == "x86_64" and "ASIMDDP" not in facts.features and not facts.parts
    assert facts.ignored[0].startswith("registry describes an arm64 CPU (Snapdragon(R) X Elite")
    assert decide_variant(facts, {}).preferred == "fp32"


def test_macos_names_apple_cores_by_hw_cpufamily_and_rosetta_ignores_them() -> None:
    identity = identity_from_sysctl(read_sysctl(SimulatedSysctl(APPLE_M2)))
    assert identity.parts == {"0x61:0xda33d83d"} and identity.arch == "arm64"
    native = cpu_facts("arm64", {"ASIMD": True}, identity)
    assert decide_variant(native, {}).preferred == "int8"
    rows = (BlockedArmPart("0x61:0xda33d83d", "SIGILL (M2)"),)
    assert decide_variant(native, {}, block_list=rows).preferred == "fp32"
    rosetta = cpu_facts("x86_64", {"SSE42": True}, identity)  # x86_64 Python under Rosetta 2
    assert rosetta.ignored and not rosetta.parts and "ASIMDDP" not in rosetta.features
