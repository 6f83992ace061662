"""What any app's PyInstaller spec needs from the suite, in a few lines.

    from build_hooks.pyinstaller_spec import SpecInputs

    spec = SpecInputs.for_spec(SPECPATH)  # refuses before analysis: profile, cache, pin
    a = Analysis([spec.entry], pathex=spec.pathex, datas=spec.datas,
                 hiddenimports=spec.hiddenimports, excludes=spec.excludes, noarchive=True)
    ...  # PYZ, EXE(name=spec.name, exclude_binaries=True), COLLECT(name=spec.name) as usual
    spec.finish(a)  # the manifest and SBOM beside the dist, which verify-artifact checks

The hooks (runtime, tiktoken's plugins and their data) come through the
``pyinstaller40`` entry point of this distribution: no ``hookspath`` needed.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from build_hooks.bundle import (
    COLLECTED_PACKAGES,
    EXCLUDED_MODULES,
    PLUGIN_MODULES,
    BundlePlan,
    PreflightError,
    plan_for,
    prepare_build,
)
from build_hooks.config import find_pyproject, load_config, project_holding
from build_hooks.manifest import data_copy_problems, write_manifest
from build_hooks.sbom import Analysis, pyinstaller_collection, write_sbom
from embedding_runtime import STDLIB_ACCELERATORS


@dataclass(frozen=True)
class SpecInputs:
    """The analysis inputs of the app configured in the spec's project, after the refusal checks."""

    plan: BundlePlan

    @classmethod
    def for_spec(cls, spec_path: str | os.PathLike[str]) -> SpecInputs:
        """Read the table of the project being built (the working directory's, as for every step;
        else the one holding the spec); refuse (SystemExit, one line per problem) when the build
        must not start. Without ``--distpath``, build where the build step does."""
        spec_folder = Path(spec_path).resolve()
        config = load_config(project_holding(Path.cwd().resolve()) or find_pyproject(spec_folder))
        plan = plan_for(config)
        try:
            prepare_build(plan, "pyinstaller")
        except PreflightError as refusal:
            for problem in refusal.problems:
                print(f"ERROR: {problem}", file=sys.stderr)
            raise SystemExit(
                f"ERROR: refusing to build {config.app_name}: {len(refusal.problems)} problem(s) above"
            ) from None
        from PyInstaller.config import CONF

        if Path(CONF["distpath"]).absolute() == Path("dist").absolute():
            CONF["distpath"] = str(plan.dist_dir("pyinstaller").parent)
        return cls(plan)

    @property
    def name(self) -> str:
        return self.plan.config.app_name

    @property
    def entry(self) -> str:
        return str(self.plan.config.app_entry)

    @property
    def pathex(self) -> list[str]:
        return [str(self.plan.config.source_root)]

    @property
    def datas(self) -> list[tuple[str, str]]:
        """The model profile, the tiktoken cache and the provenance files, file by file."""
        return self.plan.pyinstaller_datas()

    @property
    def hiddenimports(self) -> list[str]:
        return [*COLLECTED_PACKAGES, *PLUGIN_MODULES, *STDLIB_ACCELERATORS]

    @property
    def excludes(self) -> list[str]:
        """HTTP clients and build-time packages: an offline artifact carries none."""
        return list(EXCLUDED_MODULES)

    def finish(self, analysis: Analysis) -> Path:
        """After COLLECT: write the manifest of every file, check the data copies by its hashes (one
        hash of the model per build), and write the SBOM of what ``analysis`` collected."""
        from PyInstaller.config import CONF

        dist = Path(CONF["distpath"]) / self.name
        if problems := data_copy_problems(self.plan, dist, write_manifest(self.plan, dist, "pyinstaller")):
            raise SystemExit(f"ERROR: the dist is incomplete: {'; '.join(problems)}")
        write_sbom(self.plan, dist, pyinstaller_collection(analysis))
        return dist
