"""Run in a child process by :mod:`build_hooks.verification.pyinstaller_reference`: the app's own spec,
through PyInstaller's own ``run()``, up to the point where COLLECT would copy files.

It records what COLLECT was given (every destination with its source and typecode),
the module each collected ``.pyc`` was compiled from, and, for every binary,
the file PyInstaller itself makes of it (``process_collected_binary``: unchanged on
Linux and Windows; thinned, rewritten to ``@rpath`` and ad-hoc signed on macOS,
in a fresh cache). The executable is assembled for real, by PyInstaller's EXE,
with the artifact's own archive in place of the one it made (which is kept for
the entry-by-entry comparison): the bytes EXE writes are what this bootloader
makes of that archive on this OS (the ELF section on Linux, resources, build
time and PE checksum on Windows, the load commands and signature on macOS).
Nothing is copied into any dist.

    python -m build_hooks.verification._pyinstaller_child SPEC PLAN WORK OUT [ARCHIVE]
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any


class _CollectedError(Exception):
    """Raised by the recording COLLECT: the spec stops where files would be copied."""


SITE_ENV = "EMBEDDING_PIPELINE_VERIFY_SITE"


def stand_in_for_site_packages(folder: str) -> None:
    """The lock tree is this analysis's site-packages (the child runs with -S): PyInstaller asks
    ``site.getsitepackages()`` where a library's folder is kept (``numpy.libs/`` and the like)."""
    import site

    site.getsitepackages = lambda prefixes=None: [folder]
    site.getusersitepackages = lambda: folder


def main(argv: list[str]) -> int:
    spec, plan, work, out, *archive = argv
    if os.environ.get(SITE_ENV):
        stand_in_for_site_packages(os.environ[SITE_ENV])
    import PyInstaller
    import PyInstaller.__main__
    from PyInstaller.building import api, build_main
    from PyInstaller.building.utils import process_collected_binary

    work_path = Path(work)
    analyses: list[Any] = []
    recorded: dict[str, Any] = {}

    class RecordingAnalysis(build_main.Analysis):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            analyses.append(self)

        def _check_guts(self, data: dict[str, Any], last_build: float) -> bool:
            changed = bool(super()._check_guts(data, last_build))
            if not changed:  # PyInstaller restores the lists it collects, not where each .pyc came from
                self._modules_outside_pyz = data["_modules_outside_pyz"]
            return changed

    class SwappingPKG(api.PKG):  # type: ignore[misc]
        def assemble(self) -> None:
            super().assemble()
            recorded["fresh_pkg"] = str(shutil.copyfile(self.name, work_path / "fresh.pkg"))
            if archive:
                shutil.copyfile(archive[0], self.name)

    class RecordingCOLLECT(api.COLLECT):  # type: ignore[misc]
        def assemble(self) -> None:
            entries = []
            for dest, source, typecode in self.toc:
                made = source
                if typecode in ("BINARY", "EXTENSION"):
                    made = process_collected_binary(
                        source, dest, use_strip=self.strip_binaries, use_upx=self.upx_binaries,
                        upx_exclude=self.upx_exclude, target_arch=self.target_arch,
                        codesign_identity=self.codesign_identity, entitlements_file=self.entitlements_file,
                        strict_arch_validation=(typecode == "EXTENSION"),
                    )  # fmt: skip
                entries.append([dest, str(made), typecode, str(source)])
            recorded["toc"] = entries
            recorded["contents_directory"] = self.contents_directory
            raise _CollectedError

    build_main.Analysis = RecordingAnalysis
    build_main.COLLECT = RecordingCOLLECT
    api.PKG = SwappingPKG
    # The EXE and its archive are made anew on every run; the analysis is PyInstaller's own
    # incremental one (its guts files in WORK), redone whenever a source it collected changed.
    for stale in (*work_path.glob("*/*EXE-*.toc"), *work_path.glob("*/*PKG-*.toc")):
        stale.unlink()
    started = time.monotonic()
    try:
        PyInstaller.__main__.run(
            [spec, "--noconfirm", f"--distpath={work_path / 'dist'}", f"--workpath={work_path}", "--", "--plan", plan]
        )
    except _CollectedError:
        pass
    else:
        print("the spec never called COLLECT: verify knows only onedir builds", file=sys.stderr)
        return 1
    modules = {}
    for analysis in analyses:
        for name, source, _kind in analysis._modules_outside_pyz:
            if source not in (None, "-"):
                modules[name] = source
    recorded |= {
        "pyinstaller": PyInstaller.__version__,
        "seconds": round(time.monotonic() - started, 2),
        "modules": modules,
        "scripts": [[name, source] for analysis in analyses for name, source, _kind in analysis.scripts],
    }
    Path(out).write_text(json.dumps(recorded, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    # PyInstaller's cache of processed binaries (macOS), made anew for every run.
    config = Path(sys.argv[3]) / "config"
    shutil.rmtree(config, ignore_errors=True)
    os.environ["PYINSTALLER_CONFIG_DIR"] = str(config)
    sys.exit(main(sys.argv[1:]))
