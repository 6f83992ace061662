"""Windows as the standard library sees it, on Linux: for code whose Windows branch must be tested here.

``windows_platform(source)`` executes a CPython ``platform.py`` (this interpreter's,
or another version's) with the modules it imports replaced by what Windows gives:
``sys.platform`` is ``win32`` with ``getwindowsversion()`` and an MSVC build's
``sys.version``, ``os`` has no ``uname`` and a Windows environment, WMI does not
answer (``_wmi`` is missing, as on Wine or with the service disabled), and
``subprocess`` records every command instead of starting it, answering ``ver`` as
cmd.exe does on Windows 11. The code under test is never changed: only the
operating system around it is simulated.
"""

from __future__ import annotations

import builtins
import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

# sys.version of the python.org 3.11.9 build for x64 Windows, and for ARM64 Windows.
MSVC_X64_VERSION = "3.11.9 (tags/v3.11.9:de54cf5, Apr  2 2024, 10:12:12) [MSC v.1938 64 bit (AMD64)]"
MSVC_ARM64_VERSION = "3.11.9 (tags/v3.11.9:de54cf5, Apr  2 2024, 10:25:46) [MSC v.1938 64 bit (ARM64)]"
# What `cmd /c ver` prints on Windows 11 23H2, and the version sys.getwindowsversion() reports there.
VER_OUTPUT = "\nMicrosoft Windows [Version 10.0.22631.4460]\n"
WINDOWS_11 = (10, 0, 22631)
# A Windows environment as a user's console has it (verify's child gets far less).
CONSOLE_ENV = {
    "COMSPEC": r"C:\Windows\system32\cmd.exe",
    "PROCESSOR_ARCHITECTURE": "AMD64",
    "PROCESSOR_IDENTIFIER": "Intel64 Family 6 Model 63 Stepping 2, GenuineIntel",
    "SYSTEMROOT": r"C:\Windows",
}


class WindowsVersion(tuple[int, int, int, int, str]):
    """sys.getwindowsversion()'s result: a 5-tuple with named fields and a few more attributes."""

    def __new__(cls, version: tuple[int, int, int] = WINDOWS_11) -> WindowsVersion:
        return super().__new__(cls, (*version, 2, ""))

    major = property(lambda self: self[0])
    minor = property(lambda self: self[1])
    build = property(lambda self: self[2])
    platform = property(lambda self: self[3])
    service_pack = property(lambda self: self[4])
    service_pack_major = 0
    service_pack_minor = 0
    suite_mask = 256
    product_type = 1  # a workstation (3 would be a server)

    @property
    def platform_version(self) -> tuple[int, int, int]:
        return (self[0], self[1], self[2])


@dataclass
class SimulatedWindows:
    """A platform module running as on Windows, and the commands it tried to start."""

    platform: Any
    commands: list[str] = field(default_factory=list)


def platform_sources() -> dict[str, Path]:
    """CPython ``platform.py`` files on this machine: this interpreter's, and those of the newer
    interpreters installed beside it (pyenv's versions folder, uv's managed Pythons)."""
    found = {f"{sys.version_info.major}.{sys.version_info.minor}": Path(os.__file__).parent / "platform.py"}
    beside = [Path(sys.base_prefix).parent, Path.home() / ".local" / "share" / "uv" / "python"]
    for lib in sorted(lib for folder in beside for lib in folder.glob("*/lib/python3.*")):
        version = lib.name.removeprefix("python")
        if version.replace(".", "").isdigit() and tuple(map(int, version.split("."))) > sys.version_info[:2]:
            if (lib / "platform.py").is_file():
                found.setdefault(version, lib / "platform.py")
    return found


def windows_platform(
    source: Path, *, env: Mapping[str, str] = CONSOLE_ENV, version: str = MSVC_X64_VERSION
) -> SimulatedWindows:
    """Execute ``source`` (a CPython platform.py) as it runs on Windows; see the module docstring."""
    simulated = SimulatedWindows(platform=None)
    modules: dict[str, ModuleType | None] = {
        "sys": _windows_sys(version),
        "os": _windows_os(env),
        "subprocess": _recording_subprocess(simulated.commands),
        "_wmi": None,
        "winreg": None,
        "_winreg": None,
    }

    def windows_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if level == 0 and name in modules:
            module = modules[name]
            if module is None:
                raise ImportError(f"No module named {name!r} (simulated Windows)")
            return module
        return builtins.__import__(name, globals, locals, fromlist, level)

    spec = importlib.util.spec_from_file_location(f"simulated_windows_platform_{id(simulated)}", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.__dict__["__builtins__"] = {**builtins.__dict__, "__import__": windows_import}
    spec.loader.exec_module(module)
    simulated.platform = module
    return simulated


def _copy(module: ModuleType, changes: Mapping[str, Any]) -> ModuleType:
    copy = ModuleType(module.__name__)
    copy.__dict__.update(module.__dict__)
    copy.__dict__.update(changes)
    return copy


def _windows_sys(version: str) -> ModuleType:
    return _copy(sys, {"platform": "win32", "version": version, "getwindowsversion": WindowsVersion})


def _windows_os(env: Mapping[str, str]) -> ModuleType:
    windows_os = _copy(os, {"name": "nt", "environ": dict(env)})
    del windows_os.uname  # Windows has no os.uname: platform.uname() falls back to win32_ver()
    return windows_os


def _recording_subprocess(commands: list[str]) -> ModuleType:
    import subprocess

    def check_output(args: Any, **_: Any) -> str:
        commands.append(args if isinstance(args, str) else " ".join(args))
        if "ver" in str(args):
            return VER_OUTPUT
        raise subprocess.CalledProcessError(1, args)

    return _copy(subprocess, {"check_output": check_output})
