"""The runtime on Windows and macOS, simulated on Linux: what each OS gives, never a changed runtime.

Each test reproduces one condition a real Windows or macOS machine creates (a
cp1252 pipe, ``platform.py`` as CPython runs it on Windows, an environment
without ``PROCESSOR_*``, the registry and sysctl values of real CPUs, a
junction's stat result) and checks what the runtime promises there.
"""

from __future__ import annotations

import ctypes
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from build_hooks.verification.selfcheck import offline_env, why
from devtools.demo_project import Project
from embedding_runtime._completeness import leads_elsewhere
from embedding_runtime._cpu import (
    PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE,
    WINDOWS_CPUS_KEY,
    CpuIdentity,
    _interpreter_machine,
    cpu_facts,
    identity_from_cpuinfo,
    identity_from_sysctl,
    identity_from_windows,
    read_sysctl,
    read_windows,
)
from embedding_runtime._locations import OVERRIDE_ENV, ProcessFacts, override_root
from embedding_runtime._variant import decide_variant
from embedding_runtime._windows_version import ver_without_a_process
from embedding_runtime.build_api import SELF_CHECK_TEXTS, folder_problem
from tests.runtime_fixtures import write_profile
from tests.simulated_windows import (
    CONSOLE_ENV,
    MSVC_ARM64_VERSION,
    MSVC_X64_VERSION,
    platform_sources,
    windows_platform,
)
from tests.support import REPO_ROOT, child_env

PLATFORM_SOURCES = platform_sources()
# A stdout that is a pipe on Windows: the ANSI code page, strict (a frozen app ignores PYTHONUTF8).
CP1252_PIPE = {"PYTHONIOENCODING": "cp1252"}
NON_CP1252 = "Łukasz 数字"


# -- W2: importing onnxruntime must not start `cmd /c ver` ----------------------------------------


@pytest.mark.parametrize("version", PLATFORM_SOURCES)
def test_platform_on_windows_runs_ver_until_the_runtime_answers_it(version: str) -> None:
    """The simulation is faithful: CPython's own platform.py starts `cmd /c ver` on Windows."""
    windows = windows_platform(PLATFORM_SOURCES[version])
    assert windows.platform.system() == "Windows"
    assert windows.commands == ["ver"], "platform.system() on Windows starts a shell (what onnxruntime calls)"


@pytest.mark.parametrize("version", PLATFORM_SOURCES)
def test_windows_platform_facts_need_no_process_once_the_runtime_is_imported(version: str) -> None:
    source = PLATFORM_SOURCES[version]
    with_ver = windows_platform(source)
    expected = (with_ver.platform.uname(), with_ver.platform.platform(), with_ver.platform.win32_ver())
    windows = windows_platform(source)
    assert ver_without_a_process(windows.platform, system="win32")
    platform = windows.platform
    answers = (platform.uname(), platform.platform(), platform.win32_ver())
    assert (platform.system(), platform.machine(), platform.release()) == ("Windows", "AMD64", expected[0].release)
    assert answers == expected, "the same facts as `ver` gives, from sys.getwindowsversion()"
    _ = (platform.architecture(), platform.processor(), platform.version(), platform.node())
    assert windows.commands == [], f"platform started {windows.commands}"


def test_the_runtime_leaves_platform_alone_elsewhere() -> None:
    windows = windows_platform(PLATFORM_SOURCES[f"{sys.version_info.major}.{sys.version_info.minor}"])
    assert not ver_without_a_process(windows.platform, system="linux")
    assert not ver_without_a_process(windows.platform, system="darwin")
    windows.platform.system()
    assert windows.commands == ["ver"]


# -- W3: the architecture comes from the interpreter, not the environment -------------------------


def test_windows_architecture_needs_no_environment() -> None:
    windows = windows_platform(PLATFORM_SOURCES["3.11"], env={"SYSTEMROOT": r"C:\Windows"})
    assert windows.platform.machine() == "", "CPython 3.11's platform.machine() reads only PROCESSOR_*"
    assert cpu_facts(_interpreter_machine("win32", MSVC_X64_VERSION), {}, CpuIdentity()).arch == "x86_64"
    assert cpu_facts(_interpreter_machine("win32", MSVC_ARM64_VERSION), {}, CpuIdentity()).arch == "arm64"
    assert _interpreter_machine("win32", "3.11.9 (main) [MSC v.1938 32 bit (Intel)]") == "x86"


def test_verify_keeps_what_a_windows_child_needs_and_nothing_of_the_user() -> None:
    user = {**CONSOLE_ENV, "Path": r"C:\Windows", "LOCALAPPDATA": r"C:\Users\ada\AppData\Local", "HF_TOKEN": "x"}
    env = offline_env(Path(r"C:\scratch\home"), platform="win32", environ=user)
    for name in ("PROCESSOR_ARCHITECTURE", "PROCESSOR_IDENTIFIER", "COMSPEC", "SYSTEMROOT"):
        assert env[name] == CONSOLE_ENV[name]
    assert env["LOCALAPPDATA"] == env["USERPROFILE"] == str(Path(r"C:\scratch\home"))
    assert "HF_TOKEN" not in env
    linux = offline_env(Path("/scratch/home"), platform="linux", environ={**CONSOLE_ENV, "PATH": "/usr/bin"})
    assert linux == {"PATH": "/usr/bin", "HOME": "/scratch/home"}


def test_verify_names_the_childs_error_not_the_last_line_a_library_printed() -> None:
    stderr = (
        'Traceback (most recent call last):\n  File "launcher.py", line 135, in <module>\n'
        "UnicodeEncodeError: 'charmap' codec can't encode characters in position 338-342\n"
        "[PYI-1234:ERROR] Failed to execute script 'launcher' due to unhandled exception!\n"
        "Failed to create DXGI factory.\n"
    )
    assert why(stderr).startswith("UnicodeEncodeError: 'charmap' codec")
    assert why("something went wrong\n") == "something went wrong"
    assert why("") == "no output"


# -- W4: the int8 block list on every OS, from what each OS gives -----------------------------------

# (VendorIdentifier, Identifier, ProcessorNameString) as real Windows machines have them.
WINDOWS_CPUS = {
    "ec2-c4": ("GenuineIntel", "Intel64 Family 6 Model 63 Stepping 2", "Intel(R) Xeon(R) CPU E5-2666 v3 @ 2.90GHz"),
    "ec2-m6i": (
        "GenuineIntel",
        "Intel64 Family 6 Model 106 Stepping 6",
        "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz",
    ),
    "alder-lake": ("GenuineIntel", "Intel64 Family 6 Model 154 Stepping 3", "12th Gen Intel(R) Core(TM) i7-12700H"),
    "github-runner": (
        "AuthenticAMD",
        "AMD64 Family 25 Model 1 Stepping 1",
        "AMD EPYC 7763 64-Core Processor                ",
    ),
    "ryzen": ("AuthenticAMD", "AMD64 Family 25 Model 33 Stepping 0", "AMD Ryzen 7 5800X 8-Core Processor             "),
    "snapdragon": (
        "Qualcomm Technologies Inc",
        "ARMv8 (64-bit) Family 8 Model 1 Revision 201",
        "Snapdragon(R) X Elite - X1E78100 - Qualcomm(R) Oryon(TM) CPU",
    ),
}


class RegistryKey(str):
    """An open key: its path, and a context manager as winreg's handles are."""

    def __enter__(self) -> RegistryKey:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class SimulatedWinreg:
    """The ``winreg`` calls the runtime makes, over one machine's ``CentralProcessor`` keys: core 0
    has ``values``; every core of ``midrs`` (ARM64) has its ``CP 4000`` REG_QWORD, as Windows writes it."""

    HKEY_LOCAL_MACHINE = 0x80000002

    def __init__(self, values: Mapping[str, object], midrs: Sequence[int] = ()) -> None:
        cores = max(len(midrs), 1)
        self.keys: dict[str, dict[str, object]] = {
            f"{WINDOWS_CPUS_KEY}\\{n}": {**(values if n == 0 else {}), **({"CP 4000": midrs[n]} if midrs else {})}
            for n in range(cores)
        }
        self.keys[WINDOWS_CPUS_KEY] = {}
        self.opened: list[tuple[int | str, str]] = []

    def OpenKey(self, root: int | str, path: str) -> RegistryKey:  # noqa: N802 (winreg's names)
        self.opened.append((root, path))
        full = path if root == self.HKEY_LOCAL_MACHINE else f"{root}\\{path}"
        if full not in self.keys:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return RegistryKey(full)

    def EnumKey(self, key: str, index: int) -> str:  # noqa: N802
        children = [k.rsplit("\\", 1)[1] for k in self.keys if k.rsplit("\\", 1)[0] == key]
        if index >= len(children):
            raise OSError(259, "No more data is available")
        return children[index]

    def QueryValueEx(self, key: str, name: str) -> tuple[object, int]:  # noqa: N802
        if name not in self.keys[key]:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        value = self.keys[key][name]
        return value, 11 if isinstance(value, int) else 1  # REG_QWORD, REG_SZ


class SimulatedKernel32:
    def __init__(self, dot_product: bool) -> None:
        self.dot_product = dot_product

    def IsProcessorFeaturePresent(self, feature: int) -> int:  # noqa: N802
        return int(feature == PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE and self.dot_product)


def windows_identity(machine: str, *, dot_product: bool = False, midrs: Sequence[int] = ()) -> CpuIdentity:
    vendor, identifier, name = WINDOWS_CPUS[machine]
    values = {"VendorIdentifier": vendor, "Identifier": identifier, "ProcessorNameString": name}
    registry = SimulatedWinreg(values, midrs)
    return identity_from_windows(read_windows(registry, SimulatedKernel32(dot_product)))


@pytest.mark.parametrize(
    ("machine", "vendor", "family", "model", "name"),
    [
        ("ec2-c4", "GenuineIntel", 6, 63, "Intel(R) Xeon(R) CPU E5-2666 v3 @ 2.90GHz"),
        ("alder-lake", "GenuineIntel", 6, 154, "12th Gen Intel(R) Core(TM) i7-12700H"),
        ("github-runner", "AuthenticAMD", 25, 1, "AMD EPYC 7763 64-Core Processor"),
        ("ryzen", "AuthenticAMD", 25, 33, "AMD Ryzen 7 5800X 8-Core Processor"),
        (
            "snapdragon",
            "Qualcomm Technologies Inc",
            8,
            1,
            "Snapdragon(R) X Elite - X1E78100 - Qualcomm(R) Oryon(TM) CPU",
        ),
    ],
)
def test_windows_cpu_identity_comes_from_the_registry(
    machine: str, vendor: str, family: int, model: int, name: str
) -> None:
    identity = windows_identity(machine)
    assert (identity.vendor, identity.family, identity.model, identity.model_name) == (vendor, family, model, name)
    assert identity.source == "registry"


def test_windows_arm64_dot_product_comes_from_kernel32() -> None:
    with_dp = cpu_facts(
        _interpreter_machine("win32", MSVC_ARM64_VERSION), {}, windows_identity("snapdragon", dot_product=True)
    )
    assert decide_variant(with_dp, {}).preferred == "int8"
    without = cpu_facts("arm64", {}, windows_identity("snapdragon", dot_product=False))
    assert decide_variant(without, {}).preferred == "fp32"


INTEL_MAC = {
    "machdep.cpu.vendor": b"GenuineIntel\0",
    "machdep.cpu.family": (6).to_bytes(4, "little"),
    "machdep.cpu.model": (158).to_bytes(4, "little"),
    "machdep.cpu.brand_string": b"Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz\0",
}
# hw.cpufamily: CPUFAMILY_ARM_BLIZZARD_AVALANCHE (mach/machine.h), the M2's cores.
APPLE_M2 = {
    "machdep.cpu.brand_string": b"Apple M2\0",
    "hw.optional.arm.FEAT_DotProd": (1).to_bytes(4, "little"),
    "hw.cpufamily": (0xDA33D83D).to_bytes(4, "little"),
}
XEON_MAC = {
    "machdep.cpu.vendor": b"GenuineIntel\0",
    "machdep.cpu.family": (6).to_bytes(4, "little"),
    "machdep.cpu.model": (63).to_bytes(4, "little"),
    "machdep.cpu.brand_string": b"Intel(R) Xeon(R) CPU E5-2666 v3 @ 2.90GHz\0",
}


class SimulatedSysctl:
    """libSystem's sysctlbyname(name, oldp, oldlenp, newp, newlen): the size when oldp is NULL,
    the bytes otherwise, -1 (ENOENT) for a name this Mac does not have."""

    def __init__(self, values: Mapping[str, bytes]) -> None:
        self.values = values

    def __call__(self, name: bytes, oldp: Any, oldlenp: Any, newp: Any, newlen: Any) -> int:
        value = self.values.get(name.decode())
        if value is None:
            return -1
        size = ctypes.cast(oldlenp, ctypes.POINTER(ctypes.c_size_t)).contents
        if oldp is not None:
            ctypes.memmove(oldp, value, min(size.value, len(value)))
        size.value = len(value)
        return 0


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (INTEL_MAC, ("GenuineIntel", 6, 158, "Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz", frozenset())),
        (APPLE_M2, ("Apple", None, None, "Apple M2", frozenset({"ASIMDDP"}))),
    ],
    ids=["intel-mac", "apple-m2"],
)
def test_macos_cpu_identity_comes_from_sysctlbyname(values: dict[str, bytes], expected: tuple[object, ...]) -> None:
    raw = read_sysctl(SimulatedSysctl(values))
    assert raw == values
    identity = identity_from_sysctl(raw)
    assert (identity.vendor, identity.family, identity.model, identity.model_name, identity.features) == expected
    assert identity.source == "sysctl"


def test_apple_silicon_prefers_int8_from_sysctl_alone() -> None:
    facts = cpu_facts("arm64", {"NEON": True, "ASIMD": True}, identity_from_sysctl(APPLE_M2))
    assert decide_variant(facts, {}).preferred == "int8"


E5_2666_V3_CPUINFO = (
    "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 63\n"
    "model name\t: Intel(R) Xeon(R) CPU E5-2666 v3 @ 2.90GHz\nflags\t\t: fpu avx avx2\n"
)


@pytest.mark.parametrize("system", ["linux", "win32", "darwin"])
def test_the_block_list_blocks_an_e5_2666_v3_on_every_os(system: str) -> None:
    identity = {
        "linux": lambda: identity_from_cpuinfo(E5_2666_V3_CPUINFO),
        "win32": lambda: windows_identity("ec2-c4"),
        "darwin": lambda: identity_from_sysctl(read_sysctl(SimulatedSysctl(XEON_MAC))),
    }[system]()
    facts = cpu_facts("x86_64", {"AVX2": True, "FMA3": True}, identity)
    decision = decide_variant(facts, {})
    assert (decision.preferred, decision.int8_allowed) == ("fp32", False)
    assert "SIGILL" in decision.reason
    unblocked = cpu_facts("x86_64", {"AVX2": True}, windows_identity("ec2-m6i"))
    assert decide_variant(unblocked, {}).preferred == "int8"


# -- W8: a junction is a link ---------------------------------------------------------------------


class WindowsStat:
    """An ``os.lstat`` result as Windows gives it for a directory junction (``mklink /J``)."""

    FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_REPARSE_POINT = 0x10, 0x400
    IO_REPARSE_TAG_MOUNT_POINT = 0xA0000003

    def __init__(self, real: os.stat_result, tag: int = IO_REPARSE_TAG_MOUNT_POINT) -> None:
        self.real = real
        self.st_mode = stat.S_IFDIR | 0o777  # not S_IFLNK: stat says "directory"
        self.st_file_attributes = self.FILE_ATTRIBUTE_DIRECTORY | self.FILE_ATTRIBUTE_REPARSE_POINT
        self.st_reparse_tag = tag

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_junction_inside_the_profile_folder_is_refused(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    folder = write_profile(tmp_path, repo_files_a)

    def windows_lstat(junction: Path) -> Callable[[Path], os.stat_result]:
        """os.lstat as Windows answers it where ``junction`` is a directory junction."""

        def lstat(path: Path) -> os.stat_result:
            real = os.lstat(path)
            return cast(os.stat_result, WindowsStat(real)) if Path(path) == junction else real

        return lstat

    assert folder_problem(folder, "int8") is None
    problem = folder_problem(folder, "int8", lstat=windows_lstat(folder / "onnx"))
    assert problem == "onnx/model_quantized.onnx is (or sits under) a symlink or junction (refused)"
    whole = folder_problem(folder, "int8", lstat=windows_lstat(folder))
    assert whole == "folder is a symlink or junction (refused: it could lead anywhere)"


def test_reparse_points_that_name_no_other_path_are_plain_files() -> None:
    onedrive_placeholder = WindowsStat(os.lstat(REPO_ROOT), tag=0x9000001A)  # IO_REPARSE_TAG_CLOUD_1
    assert not leads_elsewhere(cast(os.stat_result, onedrive_placeholder))
    assert leads_elsewhere(cast(os.stat_result, WindowsStat(os.lstat(REPO_ROOT), tag=0xA000000C)))  # a symlink


# -- "Copy as path" -------------------------------------------------------------------------------


def test_an_override_path_pasted_with_quotes_is_the_path() -> None:
    env = {OVERRIDE_ENV: '"C:\\Users\\ada\\My Models" '}
    facts = ProcessFacts("win32", env, Path(r"C:\Users\ada"), Path("app.exe"), True, None)
    assert override_root("local-notes", facts) == Path("C:\\Users\\ada\\My Models")


# -- W1, W5, W6: a stdout that cannot encode the text ----------------------------------------------

SELF_CHECK_FROM_SOURCE = (
    "import sys\n"
    "from embedding_runtime import ProfileContract, register_profile, self_check_main\n"
    "register_profile(ProfileContract('fixture-v1', 32, (8, 16, 32), 'last_token', max_tokens=64))\n"
    "sys.exit(self_check_main({'profile_id': 'fixture-v1', 'app_name': 'notes', 'tiktoken_encodings': []}))\n"
)


def test_the_self_check_prints_its_document_through_a_cp1252_pipe(
    tmp_path: Path, repo_files_a: dict[str, bytes]
) -> None:
    write_profile(tmp_path, repo_files_a)
    env = child_env({**CP1252_PIPE, OVERRIDE_ENV: str(tmp_path), "HOME": str(tmp_path)})
    result = subprocess.run(
        [sys.executable, "-c", SELF_CHECK_FROM_SOURCE], cwd=REPO_ROOT, env=env, capture_output=True, timeout=300
    )
    assert "Error" not in result.stderr.decode(), result.stderr.decode()[-2000:]
    report = json.loads(result.stdout.decode("ascii"))
    assert report["texts"] == list(SELF_CHECK_TEXTS), "the escapes parse back to the same texts"
    assert report["disabled_reason"] is None and set(report["vectors"]) == {"fp32", "int8"}


def test_doctor_prints_a_path_outside_the_code_page_through_a_cp1252_pipe(tmp_path: Path) -> None:
    home = tmp_path / NON_CP1252
    env = child_env({**CP1252_PIPE, "HOME": str(home), "XDG_DATA_HOME": str(home / "data")})
    command = [sys.executable, "-m", "embedding_runtime", "doctor"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert result.returncode == 1, result.stderr.decode()  # no model anywhere: disabled, not a usage error
    assert b"ERROR" not in result.stderr and b"Traceback" not in result.stderr
    escaped = str(home).encode("cp1252", "backslashreplace").decode("cp1252")
    assert f"override    create {escaped}" in result.stdout.decode("cp1252")


def test_the_launcher_finds_notes_outside_the_code_page_through_a_cp1252_pipe(
    tmp_path: Path, artifact_project: Project
) -> None:
    env = child_env({OVERRIDE_ENV: str(artifact_project.models), "XDG_DATA_HOME": str(tmp_path)})
    launcher = [sys.executable, str(REPO_ROOT / "app" / "launcher.py")]
    note = f"{NON_CP1252}: notes about the weather 🙂"
    added = subprocess.run([*launcher, "add", note], env=env, capture_output=True, text=True, timeout=300)
    assert added.returncode == 0, added.stderr
    found = subprocess.run(
        [*launcher, "search", "weather"], env={**env, **CP1252_PIPE}, capture_output=True, timeout=300
    )
    assert found.returncode == 0, found.stderr.decode()
    assert found.stdout.decode("cp1252").split("  ", 1)[1].strip() == note.encode("cp1252", "backslashreplace").decode(
        "cp1252"
    )
