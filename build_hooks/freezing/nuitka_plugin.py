"""A Nuitka user plugin (``--user-plugin=``, set by :func:`build_hooks.freezing.nuitka_options.nuitka_options`):
a Ctrl-C during the program's own start-up ends it with one line, never a crash.

It hands Nuitka two things :mod:`build_hooks.freezing.nuitka_startup` makes (and
explains): a C handler set before ``main``, and the code run before the app's
main module. Nuitka imports this file itself, so importing it anywhere else
imports Nuitka.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nuitka.plugins.PluginBase import NuitkaPluginBase

from build_hooks.freezing.nuitka_startup import EARLY_INTERRUPT_C, preload_code


class EarlyInterruptPlugin(NuitkaPluginBase):  # type: ignore[misc]
    """Ctrl-C during Nuitka's own start-up: one line and exit 130 (see the module docstring)."""

    plugin_name = "embedding-pipeline-early-interrupt"
    plugin_desc = "A Ctrl-C during the program's start-up ends it with one line, never a crash."

    def getExtraCodeFiles(self) -> dict[str, str]:  # noqa: N802 - Nuitka's name
        return {"early_interrupt.c": EARLY_INTERRUPT_C}

    def createPreModuleLoadCode(self, module: Any) -> Iterator[tuple[str, str]]:  # noqa: N802 - Nuitka's name
        if module.isMainModule():
            from nuitka.HardImportRegistry import isHardModule

            source = Path(module.getCompileTimeFilename()).read_text(encoding="utf-8")
            yield preload_code(source, isHardModule), "Ctrl-C before the app's first line: see build_hooks."
