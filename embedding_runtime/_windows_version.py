"""The Windows version for the ``platform`` module, without the process it would start.

On Windows, ``os.uname`` does not exist, so ``platform.uname()`` (and with it
``platform.system()``, ``machine()``, ``release()``) asks ``win32_ver()``, which on
CPython 3.11 runs ``cmd /c ver`` through ``platform._syscmd_ver`` every time it is
called; 3.12 and later ask WMI first and run the same command when WMI does not
answer (a disabled service, a sandbox). ``import onnxruntime`` calls
``platform.system()``, so an app that embeds one text would start a shell, and in
a frozen app every process started is suspect (see ``_self_check``).

``_syscmd_ver`` is documented in ``platform.py`` to return its arguments when the
command fails, and every caller then reads the version from
``sys.getwindowsversion().platform_version``: the true version of the running
Windows, the same numbers ``ver`` prints. So the runtime answers as a failed
command would, before anything imports onnxruntime: ``platform`` computes every
value itself, from the interpreter, and no process starts. Checked against the
``platform.py`` of CPython 3.11, 3.12 and 3.13 run as on Windows
(tests/test_windows_platform.py) and under Wine (``nox -s windows-smoke``).
"""

from __future__ import annotations

import sys
from types import ModuleType


def ver_without_a_process(platform_module: ModuleType | None = None, *, system: str = sys.platform) -> bool:
    """On Windows, make ``platform`` take the version from the interpreter instead of ``cmd /c ver``.

    Returns whether ``platform`` was changed (never on other systems, nor where a later
    CPython has no ``_syscmd_ver`` any more).
    """
    if system != "win32":
        return False
    if platform_module is None:
        import platform

        platform_module = platform
    if not callable(getattr(platform_module, "_syscmd_ver", None)):
        return False
    setattr(platform_module, "_syscmd_ver", _ver_as_if_the_command_failed)  # noqa: B010 (a private name)
    return True


def _ver_as_if_the_command_failed(
    system: str = "", release: str = "", version: str = "", *_: object, **__: object
) -> tuple[str, str, str]:
    """``platform._syscmd_ver`` when ``ver`` cannot run: the defaults it was given."""
    return system, release, version
