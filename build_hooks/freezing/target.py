"""What is built and where it lands: the target of a build and every path of its artifact.

The runtime's constants say where a frozen app finds its data
(``embedding_runtime.build_api.DATA_FOLDER`` and friends); :class:`Target` builds on them
each builder's dist folder, data root and executable, and the build's working files.
This is the one module of the suite that spells the artifact's layout
(:data:`PYINSTALLER_CONTENTS`); what goes *into* a build is its plan
(:mod:`build_hooks.freezing.plan`), made from a target once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from build_hooks.config import Pin, PipelineConfig, resolve_pin

Builder = Literal["nuitka", "pyinstaller"]
BUILDERS: tuple[Builder, ...] = ("nuitka", "pyinstaller")
# Set to 1 to build an artifact without the model (vectors disabled, and the self-check says so).
WITHOUT_VECTORS_ENV = "EMBEDDING_PIPELINE_WITHOUT_VECTORS"
# PyInstaller >= 6 puts a onedir app's modules and data under this folder (sys._MEIPASS).
PYINSTALLER_CONTENTS = "_internal"


@dataclass(frozen=True)
class Target:
    """What is built: this app (its configuration), this pin, with or without the model.

    Where things are, computed from the configuration alone: the profile, each builder's dist
    folder, data root and executable, and the build's working files. What goes *into* a build is
    the :class:`build_hooks.freezing.plan.BuildPlan`, made from a target once per build.
    """

    config: PipelineConfig
    pin: Pin
    with_vectors: bool

    @property
    def profile_dir(self) -> Path:
        return self.config.output_root / self.pin.profile_id

    @property
    def build_dir(self) -> Path:
        """The project's working folder of builds (plans, generated data, freezer work)."""
        return self.config.project_root / "build"

    def generated_dir(self, builder: Builder) -> Path:
        """Provenance, notice and probe record of ``builder``'s build (build-info.json names it)."""
        return self.build_dir / "bundle-info" / builder

    def plan_path(self, builder: Builder) -> Path:
        return self.build_dir / f"{self.config.app_name}.{builder}.plan.json"

    @property
    def dist_root(self) -> Path:
        return self.config.project_root / "dist"

    def dist_dir(self, builder: Builder, dist_root: Path | None = None) -> Path:
        """The onedir artifact of ``builder``: ``dist/nuitka/<app>.dist`` or ``dist/pyinstaller/<app>``."""
        root = (dist_root or self.dist_root) / builder
        return root / (f"{self.config.app_name}.dist" if builder == "nuitka" else self.config.app_name)

    def builder_of(self, dist: Path) -> Builder:
        """Which freezer made the onedir ``dist`` (PyInstaller's has its contents folder)."""
        return "pyinstaller" if (dist / PYINSTALLER_CONTENTS).is_dir() else "nuitka"

    def data_root(self, dist: Path) -> Path:
        """The folder holding ``data/`` inside ``dist`` (sys._MEIPASS, or the executable's folder)."""
        return dist / PYINSTALLER_CONTENTS if self.builder_of(dist) == "pyinstaller" else dist

    def executable(self, dist: Path, platform: str = sys.platform) -> Path:
        return dist / (self.config.app_name + (".exe" if platform == "win32" else ""))

    def artifacts(self, dist_root: Path | None = None) -> list[Path]:
        """Every artifact the build steps have produced under ``dist_root``."""
        return [d for builder in BUILDERS if (d := self.dist_dir(builder, dist_root)).is_dir()]


def target_for(config: PipelineConfig, pin: Pin | None = None, env: Mapping[str, str] | None = None) -> Target:
    """The target of ``config``'s app for ``pin`` (default: the pin in effect, flags aside: the
    environment's ``EMBEDDING_MODEL_*``, then the table). The pin is resolved here, once."""
    env = os.environ if env is None else env
    return Target(
        config=config,
        pin=pin or resolve_pin(config, env=env),
        with_vectors=env.get(WITHOUT_VECTORS_ENV, "").strip() != "1",
    )


# The records a build writes beside its artifact, never inside it (the manifest hashes the dist).
def manifest_path(dist: Path) -> Path:
    """``<dist>.manifest.json``: every file of the dist with its size and sha256."""
    return dist.with_name(dist.name + ".manifest.json")


def sbom_path(dist: Path) -> Path:
    """``<dist>.cdx.json``: the CycloneDX SBOM of what the freezer collected."""
    return dist.with_name(dist.name + ".cdx.json")


def stamp_path(dist: Path) -> Path:
    """``<dist>.inputs.json``: the inputs the dist was built from (the up-to-date check)."""
    return dist.with_name(dist.name + ".inputs.json")


def nuitka_report_path(dist: Path) -> Path:
    """``<dist>.compilation-report.xml``: Nuitka's report of what it compiled and copied."""
    return dist.with_name(dist.name + ".compilation-report.xml")


def record_paths(dist: Path) -> tuple[Path, Path, Path]:
    """The build's records beside ``dist``: manifest, SBOM and stamp (removed with a failed build)."""
    return manifest_path(dist), sbom_path(dist), stamp_path(dist)
